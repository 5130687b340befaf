import { Hono } from "hono";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createOidcIssuer,
  type OidcIssuerServer,
  startOidcIssuerServer,
} from "../../src/sandbox/gitlab-oidc.ts";
import { startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON and assert on its exact shape
type Json = any;

let server: OidcIssuerServer;
beforeAll(async () => {
  server = await startOidcIssuerServer();
});
afterAll(async () => {
  await server.close();
});

const fixtureClaims = fixtureJson("gitlab/id-token-claims.json");

describe("GitLab OIDC issuer simulator", () => {
  it("serves GitLab's discovery document and keys over HTTPS, and its tokens verify against them", async () => {
    const discovery: Json = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json();
    expect(discovery).toMatchObject({
      issuer: server.url,
      jwks_uri: `${server.url}/oauth/discovery/keys`,
      id_token_signing_alg_values_supported: ["RS256"],
    });
    const jwks: Json = await (await fetch(discovery.jwks_uri)).json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty("d"); // public only
    expect(jwks.keys[0].kid).toBe(server.issuer.kid);

    const token = await server.issuer.mint({
      issuer: server.url,
      audience: "api://AzureADTokenExchange",
      project: { id: 20, path: "my-group/sub/my-project" },
      ref: "main",
      refType: "branch",
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: "RS256", kid: server.issuer.kid, typ: "JWT" });
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: server.url });
    expect(payload).toMatchObject({
      sub: "project_path:my-group/sub/my-project:ref_type:branch:ref:main",
      aud: "api://AzureADTokenExchange",
      namespace_path: "my-group/sub",
      project_id: "20",
      ref_path: "refs/heads/main",
      ref_protected: "false",
    });
  });

  it("carries the fixture's claim set (strings for custom claims) and environment claims when asked", async () => {
    const token = await server.issuer.mint({
      issuer: server.url,
      audience: "api://AzureADTokenExchange",
      project: { id: 20, path: "my-group/my-project" },
      ref: "v1.2.3",
      refType: "tag",
      refProtected: true,
      environment: { name: "production", tier: "production", protected: true },
      user: { id: 7, login: "alice" },
    });
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as Record<
      string,
      unknown
    >;
    const notModelled = ["user_identities", "groups_direct", "job_source", "job_config"];
    for (const key of Object.keys(fixtureClaims).filter((k) => !notModelled.includes(k))) {
      expect(claims).toHaveProperty(key);
      expect(typeof claims[key]).toBe(typeof fixtureClaims[key]);
    }
    expect(claims).toMatchObject({
      ref_type: "tag",
      ref_path: "refs/tags/v1.2.3",
      ref_protected: "true",
      environment: "production",
      environment_protected: "true",
      deployment_tier: "production",
      user_id: "7",
      user_login: "alice",
    });
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);
  });

  it("honours sub claim components, timing and overrides", async () => {
    const token = await server.issuer.mint({
      issuer: server.url,
      audience: ["a", "b"],
      project: { id: 42, path: "g/p" },
      ref: "main",
      refType: "branch",
      subClaimComponents: ["project_id", "ref_type", "ref", "environment_protected"],
      environment: { name: "staging", protected: false },
      issuedAt: 1_700_000_000,
      expiresInSeconds: 60,
      notBeforeOffsetSeconds: 0,
      overrides: { jti: undefined, extra: "x" },
    });
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as Record<
      string,
      unknown
    >;
    expect(claims).toMatchObject({
      sub: "project_id:42:ref_type:branch:ref:main:environment_protected:false",
      aud: ["a", "b"],
      iat: 1_700_000_000,
      nbf: 1_700_000_000,
      exp: 1_700_000_060,
      extra: "x",
    });
    expect(claims).not.toHaveProperty("jti");
  });

  it("mounts on another Hono app (the GitLab simulator) with that app's URL as issuer", async () => {
    const issuer = await createOidcIssuer();
    const app = new Hono();
    issuer.mount(app, () => "https://gitlab.sandbox.test");
    const res = await app.request("/.well-known/openid-configuration");
    expect(((await res.json()) as Json).jwks_uri).toBe("https://gitlab.sandbox.test/oauth/discovery/keys");
    const keys = await app.request("/oauth/discovery/keys");
    expect(await keys.json()).toEqual(issuer.jwks());
  });
});

describe("GitLab simulator tokens for issue-13-style cases", () => {
  it("mints fork merge-request pipeline, ref_protected and environment tokens from its projects' settings", async () => {
    const gitlab = await startGitLabSimulator({
      token: "glpat-oidc-0123456789",
      botUser: { id: 99, username: "bot" },
    });
    try {
      const parent = gitlab.addProject({
        path: "acme/app",
        subClaimComponents: ["project_path", "ref_type", "ref", "ref_protected", "deployment_tier"],
      });
      const fork = gitlab.addProject({ path: "mallory/app" });
      const claimsOf = (jwt: string) =>
        JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString());

      const protectedDeploy = claimsOf(
        await gitlab.mintIdToken({
          projectId: parent.id,
          ref: "main",
          refType: "branch",
          audience: "api://AzureADTokenExchange",
          refProtected: true,
          environment: { name: "production", tier: "production", protected: true },
        }),
      );
      expect(protectedDeploy.sub).toBe(
        "project_path:acme/app:ref_type:branch:ref:main:ref_protected:true:deployment_tier:production",
      );
      expect(protectedDeploy.iss).toBe(gitlab.url);

      // No environment: the 18.7 components are left out of sub even though the project configures them.
      const build = claimsOf(
        await gitlab.mintIdToken({ projectId: parent.id, ref: "main", refType: "branch", audience: "a" }),
      );
      expect(build.sub).toBe("project_path:acme/app:ref_type:branch:ref:main");
      expect(build.ref_protected).toBe("false");

      // A fork's merge-request pipeline run in the parent: sub from the fork's (default) setting and path.
      const res = await fetch(`${gitlab.url}/_sim/id-token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          projectId: parent.id,
          mergeRequestFromForkId: fork.id,
          ref: "main",
          refType: "branch",
          audience: "a",
        }),
      });
      const fromFork = claimsOf(((await res.json()) as { token: string }).token);
      expect(fromFork).toMatchObject({
        sub: "project_path:mallory/app:ref_type:branch:ref:main",
        project_path: "mallory/app",
        job_project_path: "acme/app",
        pipeline_source: "merge_request_event",
        ref_protected: "false",
      });
    } finally {
      await gitlab.close();
    }
  });
});
