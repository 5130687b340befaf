import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import {
  moveProject,
  type OnboardingDeps,
  offboardProject,
  onboardProject,
  projectStatus,
} from "../../src/onboarding/onboard.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { simBotSp, simGraph } from "../helpers/entra.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const TENANT = "1d1d1d1d-aaaa-bbbb-cccc-000000000001";
const BOT = { clientId: "1d1d1d1d-aaaa-bbbb-cccc-000000000002", clientSecret: "sim-only" };
const GROUP = "1d1d1d1d-0000-0000-0000-000000000001";

let sim: EntraSimulator;
let redis: Redis;
let deps: OnboardingDeps;
let registry: Registry;
const prefix = uniquePrefix("registry");

beforeAll(async () => {
  sim = await startEntraSimulator({
    tenantId: TENANT,
    bot: BOT,
    groups: [{ id: GROUP, displayName: "deployers" }],
  });
  redis = new Redis(TEST_REDIS_URL);
  const graph = simGraph(sim, BOT);
  deps = {
    graph,
    botSp: simBotSp(graph, BOT),
    redis,
    keyPrefix: prefix,
    policy: parsePolicy(`
gitlab:
  subClaimComponents: [project_path, ref_type, ref]
environments:
  production: { refs: ["branch:main"], groups: ["${GROUP}"] }
  staging: { refs: ["branch:develop"] }
`),
    issuer: "https://gitlab.example.com",
    tenantId: TENANT,
    replication: { baseMs: 5 },
  };
  registry = new Registry(redis, prefix);
  for (const [id, path] of [
    [1, "old-group/a"],
    [2, "old-group/sub/b"],
    [3, "other/c"],
  ] as const) {
    await onboardProject(deps, {
      project: { id, path },
      environments: ["production", "staging"],
      mode: "apply",
    });
  }
});

afterAll(async () => {
  await sim?.close();
  await deletePrefix(prefix);
  await redis?.quit();
});

describe("registry", () => {
  it("records every identity per project and environment", async () => {
    const all = await registry.list();
    expect(all.map((p) => [p.projectId, p.path, Object.keys(p.environments).sort()])).toEqual([
      [1, "old-group/a", ["production", "staging"]],
      [2, "old-group/sub/b", ["production", "staging"]],
      [3, "other/c", ["production", "staging"]],
    ]);
    const app = [...sim.state.applications.values()].find(
      (a) => a.appId === all[0]?.environments.production?.appId,
    );
    expect(app?.tags).toContain("gitlab-project:1");
  });

  it("finds projects by namespace path prefix (group rename)", async () => {
    expect((await registry.findByPathPrefix("old-group/")).map((p) => p.projectId)).toEqual([1, 2]);
    expect(await registry.findByPathPrefix("old-group-2/")).toEqual([]);
  });

  it("rebuilds itself from the objects the bot owns after losing Redis state", async () => {
    const before = await registry.list();
    await deletePrefix(`${prefix}:registry`);
    expect(await registry.list()).toEqual([]);
    const rebuilt = await registry.rebuildFromEntra(deps.graph, deps.botSp);
    expect(rebuilt.projects).toEqual(before);
    expect(rebuilt.skipped).toEqual([]);
    expect(await registry.list()).toEqual(before);
  });

  it("status of a correct project is unchanged and costs only reads", async () => {
    sim.stats.reset();
    const res = await projectStatus(deps, 1);
    expect(res.mode).toBe("plan");
    expect(res.project).toEqual({ id: 1, path: "old-group/a" });
    expect(res.environments.map((e) => [e.environment, e.status])).toEqual([
      ["production", "unchanged"],
      ["staging", "unchanged"],
    ]);
    expect(sim.stats.writes()).toBe(0);
  });

  it("a group rename moves every project under it", async () => {
    for (const p of await registry.findByPathPrefix("old-group/")) {
      await moveProject(deps, {
        project: { id: p.projectId, path: `new-group/${p.path.slice("old-group/".length)}` },
      });
    }
    expect((await registry.list()).map((p) => p.path)).toEqual(["new-group/a", "new-group/sub/b", "other/c"]);
    const subjects = [...sim.state.applications.values()]
      .filter((a) => a.tags.includes("gitlab-project:2"))
      .flatMap((a) => a.fics.map((f) => f.subject))
      .sort();
    expect(subjects).toEqual([
      "project_path:new-group/sub/b:ref_type:branch:ref:develop",
      "project_path:new-group/sub/b:ref_type:branch:ref:main",
    ]);
    sim.stats.reset();
    await moveProject(deps, { project: { id: 2, path: "new-group/sub/b" } });
    expect(sim.stats.writes()).toBe(0);
  });

  it("offboarding removes the project from the registry", async () => {
    await offboardProject(deps, { projectId: 3, mode: "apply" });
    expect(await registry.get(3)).toBeUndefined();
    expect((await registry.list()).map((p) => p.projectId)).toEqual([1, 2]);
  });
});
