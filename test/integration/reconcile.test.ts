import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { graphScope, needsInstanceDiscoveryDisabled } from "../../src/entra/credential.ts";
import { EntraError, parseRetryAfter } from "../../src/entra/errors.ts";
import { type OnboardingDeps, offboardProject, onboardProject } from "../../src/onboarding/onboard.ts";
import { startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { simBotSp, simGraph } from "../helpers/entra.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const BOT = { clientId: "0b0b0b0b-1111-2222-3333-444444444444", clientSecret: "sim-secret-not-real" };
const G_PROD = "aaaaaaaa-0000-0000-0000-000000000001";
const G_STAGE = "aaaaaaaa-0000-0000-0000-000000000002";
const G_OTHER = "aaaaaaaa-0000-0000-0000-000000000003";
const ISSUER = "https://gitlab.example.com";

// Path-headed subjects, chosen explicitly: these tests follow subjects through renames.
const policyText = (prodGroups = [G_PROD], stagingRefs = ["branch:main", "branch:develop"]) => `
gitlab:
  subClaimComponents: [project_path, ref_type, ref]
environments:
  production:
    refs: ["branch:main"]
    groups: ${JSON.stringify(prodGroups)}
  staging:
    refs: ${JSON.stringify(stagingRefs)}
    groups: ["${G_STAGE}"]
`;

let sim: Awaited<ReturnType<typeof startEntraSimulator>>;
let redis: Redis;
let deps: OnboardingDeps;
const prefix = uniquePrefix("reconcile");
let nextProject = 1000;
const newProject = () => ({ id: ++nextProject, path: `acme/svc-${nextProject}` });

beforeAll(async () => {
  sim = await startEntraSimulator({
    tenantId: TENANT,
    bot: BOT,
    groups: [
      { id: G_PROD, displayName: "prod-deployers" },
      { id: G_STAGE, displayName: "staging-deployers" },
      { id: G_OTHER, displayName: "other" },
    ],
  });
  redis = new Redis(TEST_REDIS_URL);
  const graph = simGraph(sim, BOT);
  deps = {
    graph,
    botSp: simBotSp(graph, BOT),
    redis,
    keyPrefix: prefix,
    policy: parsePolicy(policyText()),
    issuer: ISSUER,
    tenantId: TENANT,
    replication: { baseMs: 5 },
    lock: { leaseMs: 5000, waitMs: 20_000, pollMs: 5 },
  };
});

afterAll(async () => {
  await sim?.close();
  await deletePrefix(prefix);
  await redis?.quit();
});

beforeEach(() => {
  sim.faults.reset();
  sim.stats.reset();
});

const appsOf = (projectId: number) =>
  [...sim.state.applications.values()].filter((a) => a.tags.includes(`gitlab-project:${projectId}`));

describe("onboardProject against the Entra simulator", () => {
  it("creates one app + SP per environment with the minimum number of Graph requests", async () => {
    const project = newProject();
    // Warm the token cache and the bot's own service principal (resolved once per process).
    await deps.botSp.objectId();
    sim.stats.reset();

    const res = await onboardProject(deps, {
      project,
      environments: ["production", "staging"],
      mode: "apply",
    });
    expect(res.environments.map((e) => e.status)).toEqual(["changed", "changed"]);
    // project:    tag search for look-alikes (R), once
    // production: upsert app by a fresh uniqueName, upsert SP, upsert 1 FIC, add 1 group = 4 W
    // staging:    upsert app, upsert SP, upsert 2 FICs, add 1 group = 5 W
    expect(sim.stats.reads()).toBe(1);
    expect(sim.stats.writes()).toBe(9);
    const calls = sim.stats.requests
      .filter((r) => r.kind === "graph")
      .map((r) => `${r.method} ${r.path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "{id}")} ${r.status}`);
    expect(calls.slice(0, 5)).toEqual([
      "GET /v1.0/applications 200",
      "PATCH /v1.0/applications(uniqueName='gitlab-entra-bot-{id}') 201",
      "PATCH /v1.0/servicePrincipals(appId='{id}') 201",
      expect.stringMatching(
        /^PATCH \/v1\.0\/applications\/\{id\}\/federatedIdentityCredentials\(name='gitlab-branch-main-[0-9a-f]{10}'\) 201$/,
      ),
      "POST /v1.0/groups/{id}/members/$ref 204",
    ]);

    const apps = appsOf(project.id);
    expect(apps).toHaveLength(2);
    const prod = apps.find((a) => a.tags.includes("gitlab-env:production"));
    expect(prod?.signInAudience).toBe("AzureADMyOrg");
    expect(prod?.fics.map((f) => f.subject)).toEqual([
      `project_path:${project.path}:ref_type:branch:ref:main`,
    ]);
    expect(prod?.fics[0]?.issuer).toBe(ISSUER);
    expect(prod?.fics[0]?.audiences).toEqual(["api://AzureADTokenExchange"]);
    const prodOutcome = res.environments[0];
    expect(prodOutcome?.identity?.appId).toBe(prod?.appId);
    expect(sim.state.groups.get(G_PROD)?.members.has(prodOutcome?.identity?.spObjectId ?? "")).toBe(true);
    const stagingSp = res.environments[1]?.identity?.spObjectId ?? "";
    expect(sim.state.groups.get(G_PROD)?.members.has(stagingSp)).toBe(false);
  });

  it("replaying a successful onboarding 100 times makes zero Graph writes", async () => {
    const project = newProject();
    await onboardProject(deps, { project, environments: ["production", "staging"], mode: "apply" });
    sim.stats.reset();
    for (let i = 0; i < 100; i++) {
      const res = await onboardProject(deps, {
        project,
        environments: ["production", "staging"],
        mode: "apply",
      });
      expect(res.environments.every((e) => e.status === "unchanged" && e.changes.length === 0)).toBe(true);
    }
    expect(sim.stats.writes()).toBe(0);
    // An already-correct identity costs exactly 5 reads (app by id, its owners, SP by id, FIC list, memberOf),
    // plus one tag search per project for look-alikes.
    expect(sim.stats.reads()).toBe(100 * (2 * 5 + 1));
    expect(appsOf(project.id)).toHaveLength(2);
  });

  it("plan mode reports the writes it would make and writes nothing", async () => {
    const project = newProject();
    const res = await onboardProject(deps, { project, environments: ["staging"], mode: "plan" });
    expect(res.environments[0]?.status).toBe("would-change");
    expect(res.environments[0]?.changes.map((c) => `${c.op} ${c.kind}`)).toEqual([
      "create application",
      "create servicePrincipal",
      "create federatedIdentityCredential",
      "create federatedIdentityCredential",
      "add groupMembership",
    ]);
    expect(sim.stats.writes()).toBe(0);
    expect(appsOf(project.id)).toHaveLength(0);
  });

  it("repairs drift and follows policy changes: stale FICs deleted, groups swapped, subjects re-set", async () => {
    const project = newProject();
    const first = await onboardProject(deps, { project, environments: ["staging"], mode: "apply" });
    const app = appsOf(project.id)[0];
    if (!app) throw new Error("no app");
    // Out-of-band damage: a FIC's subject edited, a foreign FIC added.
    const fic = app.fics[0];
    if (fic) fic.subject = "tampered";
    const ficCountBefore = app.fics.length;

    const changedPolicy = { ...deps, policy: parsePolicy(policyText([G_PROD], ["branch:main"])) };
    const res = await onboardProject(changedPolicy, { project, environments: ["staging"], mode: "apply" });
    const ops = res.environments[0]?.changes.map((c) => `${c.op} ${c.kind}`) ?? [];
    expect(ops).toContain("delete federatedIdentityCredential");
    expect(ops).toContain("update federatedIdentityCredential");
    expect(app.fics).toHaveLength(ficCountBefore - 1);
    expect(app.fics[0]?.subject).toBe(`project_path:${project.path}:ref_type:branch:ref:main`);
    expect(first.environments[0]?.identity?.appId).toBe(res.environments[0]?.identity?.appId);
  });

  it("moves the SP between groups when the policy's groups change", async () => {
    const project = newProject();
    const first = await onboardProject(deps, { project, environments: ["production"], mode: "apply" });
    const sp = first.environments[0]?.identity?.spObjectId ?? "";
    // G_PROD is still named by a rule (qa), so it stays a group the bot manages.
    const moved = {
      ...deps,
      policy: parsePolicy(`${policyText([G_OTHER])}
  qa:
    refs: ["branch:main"]
    groups: ["${G_PROD}"]
`),
    };
    const res = await onboardProject(moved, { project, environments: ["production"], mode: "apply" });
    expect(res.environments[0]?.changes.map((c) => `${c.op} ${c.target}`)).toEqual([
      `add ${G_OTHER}`,
      `remove ${G_PROD}`,
    ]);
    expect(sim.state.groups.get(G_PROD)?.members.has(sp)).toBe(false);
    expect(sim.state.groups.get(G_OTHER)?.members.has(sp)).toBe(true);
  });

  it("refuses environments without a policy rule, naming the policy key", async () => {
    const res = await onboardProject(deps, { project: newProject(), environments: ["qa"], mode: "apply" });
    expect(res.environments[0]?.status).toBe("refused");
    expect(res.environments[0]?.message).toContain("environments.qa");
    expect(sim.stats.requests.filter((r) => r.kind !== "login")).toHaveLength(0);
  });

  it("offboards FICs, memberships, SP and app", async () => {
    const project = newProject();
    const on = await onboardProject(deps, {
      project,
      environments: ["production", "staging"],
      mode: "apply",
    });
    const sps = on.environments.map((e) => e.identity?.spObjectId ?? "");
    const plan = await offboardProject(deps, { projectId: project.id, mode: "plan" });
    expect(plan.environments.every((e) => e.status === "would-change")).toBe(true);
    expect(appsOf(project.id)).toHaveLength(2);

    const off = await offboardProject(deps, {
      projectId: project.id,
      environments: ["staging"],
      mode: "apply",
    });
    expect(off.environments.map((e) => e.status)).toEqual(["removed"]);
    expect(appsOf(project.id)).toHaveLength(1);
    expect(sim.state.groups.get(G_STAGE)?.members.has(sps[1] ?? "")).toBe(false);
    expect([...sim.state.servicePrincipals.values()].some((s) => s.id === sps[1])).toBe(false);

    await offboardProject(deps, { projectId: project.id, mode: "apply" });
    expect(appsOf(project.id)).toHaveLength(0);
    const again = await offboardProject(deps, { projectId: project.id, mode: "apply" });
    expect(again.environments).toEqual([]);
  });

  it("10 concurrent onboardings of one project create exactly one app per environment", async () => {
    const project = newProject();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        onboardProject(deps, { project, environments: ["production", "staging"], mode: "apply" }),
      ),
    );
    expect(appsOf(project.id)).toHaveLength(2);
    const appIds = new Set(results.flatMap((r) => r.environments.map((e) => e.identity?.appId)));
    expect(appIds.size).toBe(2);
    expect(results.filter((r) => r.environments[0]?.status === "changed")).toHaveLength(1);
  });
});

describe("Graph failures become typed errors", () => {
  it("429 -> retryable GRAPH_THROTTLED with Retry-After in ms", async () => {
    sim.faults.failNext(1, 429, { retryAfterSeconds: 2.128 });
    const err = await onboardProject(deps, {
      project: newProject(),
      environments: ["production"],
      mode: "apply",
    }).catch((e) => e);
    expect(err).toBeInstanceOf(EntraError);
    expect(err.code).toBe("GRAPH_THROTTLED");
    expect(err.permanent).toBe(false);
    expect(err.retryAfterMs).toBe(2128);
    expect(err.requestId).toBeTruthy();
  });

  it("503 -> retryable GRAPH_UNAVAILABLE", async () => {
    sim.faults.failNext(1, 503, { retryAfterSeconds: 1 });
    const err = await onboardProject(deps, {
      project: newProject(),
      environments: ["production"],
      mode: "apply",
    }).catch((e) => e);
    expect(err.code).toBe("GRAPH_UNAVAILABLE");
    expect(err.permanent).toBe(false);
    expect(err.retryAfterMs).toBe(1000);
  });

  it("403 on group add -> permanent failure naming the missing permission; rerun converges", async () => {
    const project = newProject();
    sim.faults.failNext(1, 403, { pathIncludes: "/members/$ref" });
    const res = await onboardProject(deps, { project, environments: ["production"], mode: "apply" });
    expect(res.environments[0]?.status).toBe("failed");
    expect(res.environments[0]?.message).toContain("GroupMember.ReadWrite.All");
    expect(res.environments[0]?.message).toMatch(/request-id/);
    const again = await onboardProject(deps, { project, environments: ["production"], mode: "apply" });
    expect(again.environments[0]?.status).toBe("changed");
    expect(again.environments[0]?.changes.map((c) => c.kind)).toEqual(["groupMembership"]);
    expect(appsOf(project.id)).toHaveLength(1);
  });

  it("a wrong bot secret -> permanent AUTH_FAILED that never echoes the secret", async () => {
    const bad = {
      ...deps,
      graph: simGraph(sim, { clientId: BOT.clientId, clientSecret: "wrong-secret-value" }),
    };
    const res = await onboardProject(bad, {
      project: newProject(),
      environments: ["production"],
      mode: "apply",
    });
    expect(res.environments[0]?.status).toBe("failed");
    expect(res.environments[0]?.message).toMatch(
      /^The bot could not get a Graph token.*AADSTS7000215.*AZURE_CLIENT_ID/s,
    );
    expect(JSON.stringify(res)).not.toContain("wrong-secret-value");
    expect(sim.stats.writes()).toBe(0);
  });

  it("400 on a FIC write -> permanent GRAPH_INVALID naming the FIC and its subject", async () => {
    const project = newProject();
    sim.faults.failNext(1, 400, {
      pathIncludes: "federatedIdentityCredentials",
      code: "InvalidFederatedIdentityCredentialValue",
    });
    const res = await onboardProject(deps, { project, environments: ["production"], mode: "apply" });
    expect(res.environments[0]?.status).toBe("failed");
    expect(res.environments[0]?.message).toContain(
      `subject "project_path:${project.path}:ref_type:branch:ref:main"`,
    );
    expect(res.environments[0]?.message).toContain("InvalidFederatedIdentityCredentialValue");
  });

  it("a policy group that does not exist fails permanently, naming the policy key", async () => {
    const project = newProject();
    await onboardProject(deps, { project, environments: ["production"], mode: "apply" });
    const missing = "aaaaaaaa-0000-0000-0000-00000000dead";
    const withMissing = { ...deps, policy: parsePolicy(policyText([G_PROD, missing])) };
    const res = await onboardProject(withMissing, { project, environments: ["production"], mode: "apply" });
    expect(res.environments[0]?.status).toBe("failed");
    expect(res.environments[0]?.message).toContain(
      `group ${missing} (policy key environments.production.groups)`,
    );
  });

  it("rides out replication delay on just-created objects", async () => {
    // Graph's answer while a new service principal has not replicated (reference/entra.md §9): the first two
    // group adds get 404 Request_ResourceNotFound, whatever the time it takes to get there (no timing window).
    sim.faults.failNext(2, 404, { pathIncludes: "/members/$ref" });
    const project = newProject();
    const lines: string[] = [];
    const res = await onboardProject(
      { ...deps, log: (l) => lines.push(l) },
      { project, environments: ["production"], mode: "apply" },
    );
    expect(lines.some((l) => l.includes("waiting for Entra to replicate service principal"))).toBe(true);
    expect(sim.stats.requests.some((r) => r.status === 404)).toBe(true);
    expect(res.environments[0]?.status).toBe("changed");
    expect(sim.state.groups.get(G_PROD)?.members.has(res.environments[0]?.identity?.spObjectId ?? "")).toBe(
      true,
    );
  });
});

describe("cloud selection and Retry-After parsing", () => {
  it("skips instance discovery only for non-Microsoft authorities and scopes tokens to the Graph root", () => {
    expect(needsInstanceDiscoveryDisabled("https://login.microsoftonline.com")).toBe(false);
    expect(needsInstanceDiscoveryDisabled("https://login.microsoftonline.us")).toBe(false);
    expect(needsInstanceDiscoveryDisabled("https://login.chinacloudapi.cn")).toBe(false);
    expect(needsInstanceDiscoveryDisabled(sim.url)).toBe(true);
    expect(graphScope("https://graph.microsoft.us")).toBe("https://graph.microsoft.us/.default");
    expect(graphScope("https://microsoftgraph.chinacloudapi.cn/")).toBe(
      "https://microsoftgraph.chinacloudapi.cn/.default",
    );
  });

  it("reads fractional seconds and HTTP dates", () => {
    expect(parseRetryAfter("2.128")).toBe(2128);
    expect(parseRetryAfter("0")).toBe(0);
    expect(
      parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1)),
    ).toBe(10_000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});
