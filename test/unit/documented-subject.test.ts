import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import type { SubClaimComponent } from "../../src/config/policy-schema.ts";
import { buildSubject } from "../../src/entra/subject.ts";
import { gitlabSubject } from "../../src/sandbox/gitlab-oidc/subject.ts";
import { createOidcIssuer } from "../../src/sandbox/gitlab-oidc.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

/**
 * GitLab's `sub`, pinned by GitLab's documented examples, for both sides on their own: the GitLab OIDC
 * simulator (src/sandbox/gitlab-oidc/subject.ts) and the bot (src/entra/subject.ts). Neither is checked
 * against the other, so a shared misunderstanding cannot pass.
 */
const claims = fixtureJson<Record<string, unknown>>("gitlab/id-token-claims.json");
const DEFAULT = ["project_path", "ref_type", "ref"] as const;

/** Documented cases: components, claims, and the `sub` GitLab's documents give for them. */
const documented: Array<{
  source: string;
  components: readonly string[];
  claims: Record<string, string>;
  env: boolean;
  sub: string;
}> = [
  {
    source: "doc/ci/secrets/id_token_authentication.md example payload (fixture gitlab/id-token-claims.json)",
    components: DEFAULT,
    claims: { project_path: "my-group/my-project", ref_type: "branch", ref: "feature-branch-1" },
    env: true,
    sub: String(claims.sub),
  },
  {
    source: "reference/gitlab.md §6: the default sub, literally",
    components: DEFAULT,
    claims: { project_path: "my-group/my-project", ref_type: "branch", ref: "feature-branch-1" },
    env: false,
    sub: "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
  },
  {
    source:
      "Microsoft Learn flexible FIC, GitLab tab (fixture graph/fic-create-request-flexible-gitlab.json)",
    components: DEFAULT,
    claims: { project_path: "contoso/contoso-project", ref_type: "branch", ref: "main" },
    env: false,
    sub: "project_path:contoso/contoso-project:ref_type:branch:ref:main",
  },
  {
    source:
      "doc/ci/cloud_services/_index.md 'Use the project ID as the subject': project_id:{id}:ref_type:{type}:ref:{branch}",
    components: ["project_id", "ref_type", "ref"],
    claims: { project_id: "20", ref_type: "branch", ref: "feature-branch-1" },
    env: false,
    sub: "project_id:20:ref_type:branch:ref:feature-branch-1",
  },
  {
    source: "reference/gitlab.md §6: tags use ref_type tag; the full nested group path is kept",
    components: DEFAULT,
    claims: { project_path: "my-group/sub/my-project", ref_type: "tag", ref: "v1.2.3" },
    env: false,
    sub: "project_path:my-group/sub/my-project:ref_type:tag:ref:v1.2.3",
  },
  {
    source:
      "GitLab 18.7 id_token doc, sub row: ref_protected, environment_protected, deployment_tier after ref, jobs with an environment",
    components: [
      "project_path",
      "ref_type",
      "ref",
      "ref_protected",
      "environment_protected",
      "deployment_tier",
    ],
    claims: {
      project_path: "my-group/my-project",
      ref_type: "branch",
      ref: "main",
      ref_protected: "true",
      environment_protected: "true",
      deployment_tier: "production",
    },
    env: true,
    sub: "project_path:my-group/my-project:ref_type:branch:ref:main:ref_protected:true:environment_protected:true:deployment_tier:production",
  },
];

describe("the GitLab OIDC simulator builds sub as GitLab documents it", () => {
  it.each(documented)("$source", ({ components, claims: c, env, sub }) => {
    expect(gitlabSubject(components, c, env)).toBe(sub);
  });

  it("the documented payload's own claims give its own sub (default components)", () => {
    expect(gitlabSubject(DEFAULT, claims, true)).toBe(
      "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
    );
  });

  it("GitLab's Azure tutorial subject template, filled in (fixture gitlab/azure-fic-body-branch.json)", () => {
    const body = fixtureJson<{ subject: string }>("gitlab/azure-fic-body-branch.json");
    const filled = body.subject
      .replace("<mygroup>", "my-group")
      .replace("<myproject>", "my-project")
      .replace("<branch>", "main");
    expect(
      gitlabSubject(DEFAULT, { project_path: "my-group/my-project", ref_type: "branch", ref: "main" }, false),
    ).toBe(filled);
  });

  it("environment-bound components are left out for jobs without an environment; absent claims are skipped", () => {
    const components = ["project_path", "ref_type", "ref", "ref_protected", "deployment_tier"];
    const c = {
      project_path: "g/p",
      ref_type: "branch",
      ref: "main",
      ref_protected: "false",
      deployment_tier: "production",
    };
    expect(gitlabSubject(components, c, false)).toBe("project_path:g/p:ref_type:branch:ref:main");
    expect(
      gitlabSubject(["project_path", "environment", "ref"], { project_path: "g/p", ref: "main" }, true),
    ).toBe("project_path:g/p:ref:main");
    // No escaping: a ":" inside a ref stays as it is.
    expect(gitlabSubject(DEFAULT, { project_path: "g/p", ref_type: "branch", ref: "a:b" }, false)).toBe(
      "project_path:g/p:ref_type:branch:ref:a:b",
    );
  });

  it("a minted token for the documented project and ref carries the documented sub", async () => {
    const issuer = await createOidcIssuer();
    const token = await issuer.mint({
      issuer: String(claims.iss),
      audience: String(claims.aud),
      project: { id: 20, path: "my-group/my-project", namespaceId: 72 },
      ref: "feature-branch-1",
      refType: "branch",
      environment: { name: "test-environment2", tier: "testing" },
    });
    const minted = decodeJwt(token);
    expect(minted.sub).toBe(claims.sub);
    for (const k of [
      "project_path",
      "project_id",
      "namespace_id",
      "namespace_path",
      "ref",
      "ref_type",
      "ref_path",
      "ref_protected",
      "environment",
      "environment_protected",
      "deployment_tier",
      "iss",
      "aud",
    ]) {
      expect(minted[k], k).toEqual(claims[k]);
    }
  });

  it("a merge-request pipeline from a fork, run in the parent: sub and project_* name the fork, job_project_* the parent", async () => {
    const issuer = await createOidcIssuer();
    const minted = decodeJwt(
      await issuer.mint({
        issuer: "https://gitlab.example.com",
        audience: "api://AzureADTokenExchange",
        project: { id: 20, path: "my-group/my-project" },
        mergeRequestFromFork: { id: 31, path: "mallory/my-project" },
        ref: "main",
        refType: "branch",
        refProtected: true,
        subClaimComponents: ["project_path", "ref_type", "ref", "ref_protected"],
        environment: { name: "production", tier: "production", protected: true },
      }),
    );
    expect(minted).toMatchObject({
      sub: "project_path:mallory/my-project:ref_type:branch:ref:main:ref_protected:false",
      project_path: "mallory/my-project",
      project_id: "31",
      job_project_path: "my-group/my-project",
      job_project_id: "20",
      pipeline_source: "merge_request_event",
      ref_protected: "false",
    });
  });
});

describe("the bot builds the FIC subject as GitLab documents sub", () => {
  it.each(documented)("$source", ({ components, claims: c, sub }) => {
    expect(buildSubject(components as SubClaimComponent[], c)).toBe(sub);
  });
});
