import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { moveProject, type OnboardingDeps, onboardProject } from "../../src/onboarding/onboard.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { type OidcIssuerServer, startOidcIssuerServer } from "../../src/sandbox/gitlab-oidc.ts";
import { simBotSp, simGraph } from "../helpers/entra.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * The proof that matters: credentials made by onboardProject let a GitLab-shaped ID token log in through the
 * (simulated) Entra token exchange, only for the refs the policy allows, and survive a rename via moveProject.
 */
const TENANT = "0c0c0c0c-aaaa-bbbb-cccc-000000000001";
const BOT = { clientId: "0c0c0c0c-aaaa-bbbb-cccc-000000000002", clientSecret: "sim-only-secret" };
const G_PROD = "0c0c0c0c-0000-0000-0000-00000000000a";
const G_STAGE = "0c0c0c0c-0000-0000-0000-00000000000b";
const AUDIENCE = "api://AzureADTokenExchange";

let sim: EntraSimulator;
let gitlab: OidcIssuerServer;
let redis: Redis;
let deps: OnboardingDeps;
const prefix = uniquePrefix("entra-proof");
const project = { id: 4242, path: "platform/payments/api" };

beforeAll(async () => {
  sim = await startEntraSimulator({
    tenantId: TENANT,
    bot: BOT,
    groups: [
      { id: G_PROD, displayName: "payments-prod" },
      { id: G_STAGE, displayName: "payments-staging" },
    ],
  });
  gitlab = await startOidcIssuerServer();
  redis = new Redis(TEST_REDIS_URL);
  const graph = simGraph(sim, BOT);
  deps = {
    graph,
    botSp: simBotSp(graph, BOT),
    redis,
    keyPrefix: prefix,
    policy: parsePolicy(`
gitlab:
  audience: ${AUDIENCE}
  subClaimComponents: [project_path, ref_type, ref]
environments:
  production:
    refs: ["branch:main"]
    groups: ["${G_PROD}"]
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${G_STAGE}"]
`),
    issuer: gitlab.url,
    tenantId: TENANT,
    replication: { baseMs: 5 },
  };
});

afterAll(async () => {
  await sim?.close();
  await gitlab?.close();
  await deletePrefix(prefix);
  await redis?.quit();
});

const mint = (path: string, ref: string, refType: "branch" | "tag" = "branch", id = project.id) =>
  gitlab.issuer.mint({
    issuer: gitlab.url,
    audience: AUDIENCE,
    project: { id, path },
    ref,
    refType,
  });

async function login(appId: string, token: string) {
  const res = await sim.exchange({ clientId: appId, assertion: token });
  return { status: res.status, text: JSON.stringify(res.body) };
}

describe("a GitLab pipeline logs in with what the bot created", () => {
  // Set-up shared by the read-only tests below (the rename test onboards a project of its own).
  let prodAppId = "";
  let stagingAppId = "";

  beforeAll(async () => {
    const res = await onboardProject(deps, {
      project,
      environments: ["production", "staging"],
      mode: "apply",
    });
    expect(res.environments.map((e) => e.status)).toEqual(["changed", "changed"]);
    expect(res.issuer).toBe(gitlab.url);
    prodAppId = res.environments[0]?.identity?.appId ?? "";
    stagingAppId = res.environments[1]?.identity?.appId ?? "";
  });

  it("onboards production and staging: one identity each", () => {
    expect(prodAppId).not.toBe("");
    expect(stagingAppId).not.toBe(prodAppId);
  });

  it("main exchanges for an access token with the production app", async () => {
    const r = await login(prodAppId, await mint(project.path, "main"));
    expect(r.status).toBe(200);
    expect(r.text).toContain("access_token");
  });

  it("a feature branch cannot log in to production (AADSTS70021 family)", async () => {
    const r = await login(prodAppId, await mint(project.path, "feature/x"));
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.text).toMatch(/AADSTS7002\d*/);
  });

  it("develop may log in to staging but not to production", async () => {
    expect((await login(stagingAppId, await mint(project.path, "develop"))).status).toBe(200);
    expect((await login(prodAppId, await mint(project.path, "develop"))).status).toBeGreaterThanOrEqual(400);
  });

  it("a tag named main is not the branch main", async () => {
    expect((await login(prodAppId, await mint(project.path, "main", "tag"))).status).toBeGreaterThanOrEqual(
      400,
    );
  });

  it("the staging identity is not in the production groups", async () => {
    const registered = await new Registry(redis, prefix).get(project.id);
    const stagingSp = registered?.environments.staging?.spObjectId ?? "";
    const prodSp = registered?.environments.production?.spObjectId ?? "";
    expect(stagingSp).not.toBe("");
    expect(sim.state.groups.get(G_PROD)?.members.has(stagingSp)).toBe(false);
    expect(sim.state.groups.get(G_PROD)?.members.has(prodSp)).toBe(true);
    expect(sim.state.groups.get(G_STAGE)?.members.has(prodSp)).toBe(false);
  });

  it("after a rename, tokens carry the new path and fail until moveProject re-subjects the FICs", async () => {
    const own = { id: 4343, path: "platform/ledger/api" };
    const onboarded = await onboardProject(deps, {
      project: own,
      environments: ["production", "staging"],
      mode: "apply",
    });
    const prodAppId = onboarded.environments[0]?.identity?.appId ?? "";
    expect((await login(prodAppId, await mint(own.path, "main", "branch", own.id))).status).toBe(200);
    const renamed = { id: own.id, path: "platform/billing/api" };
    const newToken = await mint(renamed.path, "main", "branch", own.id);
    expect((await login(prodAppId, newToken)).status).toBeGreaterThanOrEqual(400);

    const fics = () =>
      [...sim.state.applications.values()]
        .filter((a) => a.appId === prodAppId)
        .flatMap((a) => a.fics.map((f) => ({ id: f.id, name: f.name })));
    const before = fics();
    sim.stats.reset();
    const moved = await moveProject(deps, { project: renamed });
    expect(moved.environments.map((e) => e.status)).toEqual(["changed", "changed"]);
    const ficOps = moved.environments.flatMap((e) =>
      e.changes.filter((c) => c.kind === "federatedIdentityCredential").map((c) => c.op),
    );
    expect(ficOps).toEqual(["update", "update", "update"]);
    // Same FIC objects, updated in place (names derive from refs, not the path).
    expect(fics()).toEqual(before);
    expect(sim.stats.requests.some((r) => r.method === "POST" && r.path.endsWith("/applications"))).toBe(
      false,
    );

    expect((await login(prodAppId, await mint(renamed.path, "main", "branch", own.id))).status).toBe(200);
    expect(
      (await login(prodAppId, await mint(own.path, "main", "branch", own.id))).status,
    ).toBeGreaterThanOrEqual(400);
    expect((await new Registry(redis, prefix).get(own.id))?.path).toBe(renamed.path);
  });
});
