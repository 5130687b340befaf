import { randomUUID } from "node:crypto";
import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import type { Queues } from "../../src/queue/queues.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { repairDrift } from "../../workers/drift.ts";
import { createWorkerRuntime, type WorkerRuntime } from "../../workers/runtime.ts";
import { entraSnapshot } from "../helpers/e2e.ts";
import { plantApp } from "../helpers/entra.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * An attacker against drift's bulk sweep (workers/drift-sweep.ts): someone who can register apps in the tenant
 * with any tags, own GitLab projects and delete them without an event reaching the bot, and who knows when the
 * sweep runs. Each chunk is driven by hand here (the runtime's maintenance queue only records the follow-up
 * job), so the tests see the sweep's state between chunks without racing a worker.
 */

const MALLORY = "9e0c1a52-0000-4000-8000-00000000abcd";
const { alice } = SANDBOX.users;
const logger = createLogger("silent");

let stack: SandboxStack;
let redis: Redis;
let rt: WorkerRuntime;
const ids: number[] = [];
const followUps: string[] = [];

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  stack = await testStack("attack-sweep", { env: { DRIFT_SWEEP_MODE: "bulk", DRIFT_CHUNK_SIZE: "1" } });
  for (const name of ["one", "two", "three"]) {
    const { project } = await stack.driver.createProject(`platform/sweep-${name}`, {
      members: { [alice.id]: 40 },
    });
    ids.push(project.id);
  }
  await settled(stack);
  expect(await failures(stack)).toEqual([]);
  const maintenance = {
    add: async (_name: string, _data: unknown, opts: { jobId?: string }) => {
      followUps.push(opts.jobId ?? "");
      return {};
    },
  };
  rt = createWorkerRuntime({
    config: stack.config,
    policy: stack.policy,
    logger,
    redis,
    queues: { ...stack.service.queues, maintenance } as unknown as Queues,
  });
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

const prefix = () => stack.config.queuePrefix;
const chunk = (name: string) =>
  repairDrift(
    rt,
    { id: `${name}-${randomUUID()}`, name: "drift-repair", log: async () => 0 } as unknown as Job,
    logger,
  );
const appsOf = (projectId: number) =>
  [...stack.entra.state.applications.values()].filter(
    (a) => a.tags.includes("gitlab-entra-bot") && a.tags.includes(`gitlab-project:${projectId}`),
  );

beforeEach(async () => {
  // Each test starts a sweep of its own.
  const state = await redis.hgetall(`${prefix()}:drift:sweep`);
  await redis.del(
    `${prefix()}:drift:sweep`,
    `${prefix()}:drift:sweep:${state.id}:apps`,
    `${prefix()}:drift:sweep:${state.id}:tagged`,
  );
});

describe("the bulk sweep against a tenant full of planted apps", () => {
  it("keeps only what it plans from: a flood of apps carrying the bot's marker tag is not copied into Redis", async () => {
    // 300 apps tagged like the bot's identities for projects the bot never onboarded, with long tags, and one
    // look-alike for a registered project (that one must still be reported).
    const filler = "x".repeat(200);
    for (let i = 0; i < 300; i++) {
      const p = plantApp(stack.entra, {
        projectId: 9_000_000 + i,
        environment: "staging",
        path: `mallory/${filler}`,
        owners: [MALLORY],
        servicePrincipal: false,
      });
      p.app.tags.push(...Array.from({ length: 10 }, (_, k) => `junk-${k}-${filler}`));
    }
    const p1 = ids[0] as number;
    const lookAlike = plantApp(stack.entra, { projectId: p1, environment: "staging", owners: [MALLORY] });
    const before = entraSnapshot(stack);

    const r = await chunk("flood");
    expect(r.done).toBe(false);
    const state = await redis.hgetall(`${prefix()}:drift:sweep`);
    // What the sweep keeps for its later chunks is bounded by what the registry pins (6 identities), not by
    // what anyone tagged.
    expect(await redis.hlen(`${prefix()}:drift:sweep:${state.id}:apps`)).toBeLessThanOrEqual(6);
    expect(await redis.hlen(`${prefix()}:drift:sweep:${state.id}:tagged`)).toBeLessThanOrEqual(3);
    // The look-alike of project one is still found and reported, and nothing was written in Entra.
    expect(
      await redis.exists(`${prefix()}:finding:${p1}:staging:refuse:application:${lookAlike.app.id}`),
    ).toBe(1);
    expect(entraSnapshot(stack)).toBe(before);
    for (const a of [...stack.entra.state.applications.values()]) {
      if (a.owners.includes(MALLORY)) stack.entra.state.applications.delete(a.id);
    }
  });

  it("a sweep past its listing's age goes on from its cursor: a project deleted late in the order loses its credentials", async () => {
    const [, , p3] = ids as [number, number, number];
    await chunk("stale-1");
    await chunk("stale-2");
    const state = await redis.hgetall(`${prefix()}:drift:sweep`);
    expect(Number(state.cursor)).toBe(ids[1]);
    // The attacker deletes project three without an event reaching the bot, at a moment the sweep's listing is
    // older than the sweep's limit (a slow sweep, or one left over from a worker outage).
    stack.gitlab.removeProject(p3);
    const old = new Date(Date.now() - 13 * 3600 * 1000).toISOString();
    await redis.hset(
      `${prefix()}:drift:sweep`,
      "startedAt",
      old,
      ...(state.listedAt ? ["listedAt", old] : []),
    );
    expect(appsOf(p3).flatMap((a) => a.fics)).not.toHaveLength(0);

    await chunk("stale-3");
    // Project three's credentials are gone: the stale sweep did not start over at project one.
    expect(appsOf(p3)).toHaveLength(2);
    expect(appsOf(p3).flatMap((a) => a.fics)).toEqual([]);
  });
});

describe("the bulk sweep against a GitLab full of the attacker's projects", () => {
  it("reads GitLab's project listing in a bounded number of pages per chunk, however many projects lie between", async () => {
    // 1,000 projects the bot is a member of (an attacker's group that includes it), between registered ids.
    for (let i = 0; i < 1000; i++) stack.gitlab.addProject({ path: `mallory/filler-${i}` });
    const { project } = await stack.driver.createProject("platform/sweep-four", {
      members: { [alice.id]: 40 },
    });
    await settled(stack);
    const wide = createWorkerRuntime({
      config: { ...stack.config, drift: { mode: "bulk", readsPerWrite: 20, chunkSize: 10 } },
      policy: stack.policy,
      logger,
      redis,
      queues: rt.queues,
    });
    const registered = (await rt.registry.ids()).length;
    const before = entraSnapshot(stack);
    stack.gitlab.stats.reset();
    const r = await repairDrift(
      wide,
      { id: `wide-${randomUUID()}`, name: "drift-repair", log: async () => 0 } as unknown as Job,
      logger,
    );
    const listings = stack.gitlab.stats.log.filter((l) => l.method === "GET" && l.path === "/projects");
    // The chunk's registered projects fit in one page; a few pages more at most, then the rest is read by id.
    expect(listings.length).toBeLessThanOrEqual(3);
    expect(r).toMatchObject({ done: true, projects: registered, driftFound: 0, repaired: 0 });
    expect(entraSnapshot(stack)).toBe(before);
    expect(project.id).toBeGreaterThan(ids[2] as number);
  });
});
