import { ClientSecretCredential } from "@azure/identity";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import {
  createOidcIssuer,
  type MintOptions,
  type OidcIssuerServer,
  startOidcIssuerServer,
} from "../../src/sandbox/gitlab-oidc.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON and assert on its exact shape
type Json = any;

const TENANT = "11111111-2222-3333-4444-555555555555";
const BOT = { clientId: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", clientSecret: "s3cret-value" };
const AUD = "api://AzureADTokenExchange";
const PROJECT = { id: 20, path: "my-group/my-project" };
const SUBJECT = "project_path:my-group/my-project:ref_type:branch:ref:main";

let sim: EntraSimulator;
let gitlab: OidcIssuerServer;
/** The simulator's clock: real time unless a test freezes and steps it. */
const clock: { frozen: number | undefined } = { frozen: undefined };
let botToken: string;
let app: { id: string; appId: string };
let spId: string;

async function graph(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${sim.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${botToken}`,
      "accept-language": "en-US",
      "content-type": "application/json",
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Json };
}

const mint = (overrides: Partial<MintOptions> = {}) =>
  gitlab.issuer.mint({
    issuer: gitlab.url,
    audience: AUD,
    project: PROJECT,
    ref: "main",
    refType: "branch",
    ...overrides,
  });

beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT, now: () => clock.frozen ?? Date.now() });
  gitlab = await startOidcIssuerServer();
  const cred = new ClientSecretCredential(TENANT, BOT.clientId, BOT.clientSecret, {
    authorityHost: sim.url,
    disableInstanceDiscovery: true,
  });
  botToken = (await cred.getToken(`${sim.url}/.default`)).token;
});
afterAll(async () => {
  await sim.close();
  await gitlab.close();
});
beforeEach(async () => {
  clock.frozen = undefined;
  sim.reset();
  app = (await graph("POST", "/v1.0/applications", { displayName: "gitlab-20-production" })).body;
  spId = (await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId })).body.id;
  const created = await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, {
    name: "gitlab-branch-main",
    issuer: gitlab.url,
    subject: SUBJECT,
    audiences: [AUD],
  });
  expect(created.status).toBe(201);
});

function expectTokenError(res: { status: number; body: Json }, status: number, error: string, code: number) {
  expect(res.status).toBe(status);
  expect(res.body.error).toBe(error);
  expect(res.body.error_codes).toEqual([code]);
  expect(res.body.error_description).toMatch(new RegExp(`^AADSTS${code}: `));
  expect(res.body.error_description).toMatch(
    /\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: /,
  );
  const fixture = fixtureJson("graph/token-error-aadsts70021.json");
  expect(Object.keys(res.body).sort()).toEqual(Object.keys(fixture).sort());
}

describe("federated token exchange with a GitLab-shaped ID token", () => {
  it("issues an access token for the app when project and ref match", async () => {
    const res = await sim.exchange({ clientId: app.appId, assertion: await mint() });
    expect(res.status).toBe(200);
    const body = res.body as Json;
    expect(body).toMatchObject({ token_type: "Bearer", expires_in: expect.any(Number) });
    expect(decodeJwt(body.access_token)).toMatchObject({
      aud: "https://management.azure.com",
      appid: app.appId,
      oid: spId,
      tid: TENANT,
    });
  });

  it("a token for Graph identifies the app, which has no Graph app roles (403 at Graph)", async () => {
    const res = await sim.exchange({
      clientId: app.appId,
      assertion: await mint(),
      scope: "https://graph.microsoft.com/.default",
    });
    const graphRes = await fetch(`${sim.url}/v1.0/applications`, {
      headers: { authorization: `Bearer ${(res.body as Json).access_token}`, "accept-language": "en-US" },
    });
    expect(graphRes.status).toBe(403);
    expect(((await graphRes.json()) as Json).error.code).toBe("Authorization_RequestDenied");
  });

  it("wrong branch -> 400 AADSTS700213 naming the presented subject", async () => {
    const res = await sim.exchange({ clientId: app.appId, assertion: await mint({ ref: "develop" }) });
    expectTokenError(res, 400, "invalid_client", 700213);
    expect((res.body as Json).error_description).toContain(
      "presented assertion subject 'project_path:my-group/my-project:ref_type:branch:ref:develop'",
    );
  });

  it("case-only subject difference -> AADSTS7002138", async () => {
    const res = await sim.exchange({
      clientId: app.appId,
      assertion: await mint({ project: { id: 20, path: "My-Group/my-project" } }),
    });
    expectTokenError(res, 400, "invalid_client", 7002138);
  });

  it("wrong audience -> AADSTS70021 as invalid_request, with the fixture's message layout", async () => {
    const res = await sim.exchange({
      clientId: app.appId,
      assertion: await mint({ audience: "https://gitlab.com" }),
    });
    expectTokenError(res, 400, "invalid_request", 70021);
    expect((res.body as Json).error_description).toContain(
      `AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '${gitlab.url}'. Assertion Subject: '${SUBJECT}'. Assertion Audience: 'https://gitlab.com'.`,
    );
  });

  it("issuer with a trailing slash -> AADSTS700211", async () => {
    const res = await sim.exchange({
      clientId: app.appId,
      assertion: await mint({ issuer: `${gitlab.url}/` }),
    });
    expectTokenError(res, 400, "invalid_client", 700211);
  });

  it("expired token or one not yet valid -> AADSTS700024", async () => {
    const old = await mint({ issuedAt: Math.floor(Date.now() / 1000) - 3600, expiresInSeconds: 300 });
    expectTokenError(
      await sim.exchange({ clientId: app.appId, assertion: old }),
      400,
      "invalid_client",
      700024,
    );
    // Wording from reference/entra.md §3 (Azure/azure-powershell#24304, MSAL-java#984).
    const expired = await sim.exchange({ clientId: app.appId, assertion: old });
    expect((expired.body as Json).error_description).toMatch(
      /^AADSTS700024: Client assertion is not within its valid time range\. Current time: [^,]+, assertion valid from [^,]+, expiry time of assertion [^,.]+\./,
    );
    const future = await mint({ notBeforeOffsetSeconds: 600 });
    expectTokenError(
      await sim.exchange({ clientId: app.appId, assertion: future }),
      400,
      "invalid_client",
      700024,
    );
  });

  it("unknown client id -> AADSTS700016; app without a service principal -> AADSTS7000229", async () => {
    const unknown = await sim.exchange({
      clientId: "00000000-0000-0000-0000-000000000000",
      assertion: await mint(),
    });
    expectTokenError(unknown, 400, "unauthorized_client", 700016);
    expect((unknown.body as Json).error_description).toMatch(
      new RegExp(
        `^AADSTS700016: Application with identifier '00000000-0000-0000-0000-000000000000' was not found in the directory '${TENANT}'`,
      ),
    );
    expect(((await graph("DELETE", `/v1.0/servicePrincipals/${spId}`)) as Json).status).toBe(204);
    const noSp = await sim.exchange({ clientId: app.appId, assertion: await mint() });
    expectTokenError(noSp, 400, "invalid_client", 7000229);
  });

  it("rejects a bad signature: a token signed by another key, and a tampered payload", async () => {
    const impostor = await createOidcIssuer();
    const forged = await impostor.mint({
      issuer: gitlab.url,
      audience: AUD,
      project: PROJECT,
      ref: "main",
      refType: "branch",
    });
    expectTokenError(
      await sim.exchange({ clientId: app.appId, assertion: forged }),
      401,
      "invalid_client",
      700027,
    );

    const [header, payload, signature] = (await mint({ ref: "develop" })).split(".");
    const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString());
    claims.sub = SUBJECT;
    const tampered = [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
    expectTokenError(
      await sim.exchange({ clientId: app.appId, assertion: tampered }),
      401,
      "invalid_client",
      700027,
    );

    expectTokenError(
      await sim.exchange({ clientId: app.appId, assertion: "not-a-jwt" }),
      400,
      "invalid_request",
      50027,
    );
  });

  it("flexible FIC (beta claimsMatchingExpression) accepts any branch the pattern allows", async () => {
    const flex = await graph("POST", `/beta/applications/${app.id}/federatedIdentityCredentials`, {
      name: "gitlab-all-branches",
      issuer: gitlab.url,
      audiences: [AUD],
      claimsMatchingExpression: {
        value: "claims['sub'] matches 'project_path:my-group/my-project:ref_type:branch:ref:*'",
        languageVersion: 1,
      },
    });
    expect(flex.status).toBe(201);
    expect(
      (await sim.exchange({ clientId: app.appId, assertion: await mint({ ref: "feature/x" }) })).status,
    ).toBe(200);
    const tag = await sim.exchange({
      clientId: app.appId,
      assertion: await mint({ ref: "v1", refType: "tag" }),
    });
    expectTokenError(tag, 400, "invalid_client", 700213);
  });

  it("project_id subjects and deployment_tier components built by buildSubject match their FIC", async () => {
    const subject = "project_id:20:ref_type:branch:ref:main:deployment_tier:production";
    await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, {
      name: "gitlab-id-main-prod",
      issuer: gitlab.url,
      subject,
      audiences: [AUD],
    });
    const token = await mint({
      subClaimComponents: ["project_id", "ref_type", "ref", "deployment_tier"],
      environment: { name: "production", tier: "production" },
    });
    expect(decodeJwt(token).sub).toBe(subject);
    expect((await sim.exchange({ clientId: app.appId, assertion: token })).status).toBe(200);
  });

  it("a new FIC is not usable during ficPropagationDelayMs, then works", async () => {
    // Stepped clock; a delay far longer than the time since beforeEach wrote the main credential.
    // One millisecond ahead of real time: the main credential (written by beforeEach) is strictly older.
    clock.frozen = Date.now() + 1;
    sim.faults.ficPropagationDelayMs = 60_000;
    await graph(
      "PATCH",
      `/v1.0/applications/${app.id}/federatedIdentityCredentials(name='gitlab-branch-develop')`,
      {
        issuer: gitlab.url,
        subject: "project_path:my-group/my-project:ref_type:branch:ref:develop",
        audiences: [AUD],
      },
      { prefer: "create-if-missing" },
    );
    const assertion = await mint({ ref: "develop" });
    const first = await sim.exchange({ clientId: app.appId, assertion });
    // Both credentials are younger than the delay, so none for this issuer is usable yet.
    expectTokenError(first, 400, "invalid_client", 700211);
    // Just before the new one is usable, the older main credential is: the issuer is known, the subject not.
    clock.frozen += 59_999;
    expectTokenError(await sim.exchange({ clientId: app.appId, assertion }), 400, "invalid_client", 700213);
    clock.frozen += 1;
    expect((await sim.exchange({ clientId: app.appId, assertion })).status).toBe(200);
  });
});
