import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { DRIFT_CHUNK_JOB } from "../../workers/drift-sweep.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The bulk sweep's chunks (DRIFT_CHUNK_SIZE=1: one project per job) through the real maintenance worker: the
 * sweep chains its chunk jobs, a chunk that fails is retried from the saved cursor (the chunks before it are not
 * read again), and the summary of the whole sweep lands in <prefix>:drift:last once, with every project counted
 * once.
 */

let stack: SandboxStack;
let redis: Redis;
const { alice } = SANDBOX.users;
const ids: number[] = [];

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  stack = await testStack("drift-sweep", {
    env: { DRIFT_SWEEP_MODE: "bulk", DRIFT_CHUNK_SIZE: "1", JOB_BACKOFF_MS: "20" },
  });
  for (const name of ["one", "two", "three"]) {
    const { project } = await stack.driver.createProject(`platform/sweep-${name}`, {
      members: { [alice.id]: 40 },
    });
    ids.push(project.id);
  }
  await settled(stack);
  expect(await failures(stack)).toEqual([]);
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

const appOf = (projectId: number, env: string) =>
  [...stack.entra.state.applications.values()].find(
    (a) => a.tags.includes(`gitlab-project:${projectId}`) && a.tags.includes(`gitlab-env:${env}`),
  );

async function lastSweep(): Promise<Record<string, unknown> | null> {
  const raw = await redis.get(`${stack.config.queuePrefix}:drift:last`);
  return raw ? (JSON.parse(raw) as Record<string, unknown>) : null;
}

describe("bulk drift sweep in chunks", () => {
  it("chains one job per chunk and resumes a failed chunk from its cursor, counting every project once", async () => {
    const [p1, p2, p3] = ids as [number, number, number];
    // Drift in the middle project, and Graph failing its credential reads (the $batch item, then the live read
    // that stands in for it): the chunk job fails before writing anything, and its retry repairs.
    const prod2 = appOf(p2, "production");
    if (!prod2) throw new Error("no production app for project two");
    prod2.fics.splice(0, prod2.fics.length);
    stack.entra.faults.failNext(2, 503, {
      pathIncludes: `/applications/${prod2.id}/federatedIdentityCredentials`,
    });
    await redis.del(`${stack.config.queuePrefix}:drift:last`);
    stack.entra.stats.reset();

    await stack.service.queues.maintenance.add("drift-repair", {});
    await expect.poll(lastSweep, { timeout: 30_000, interval: 50 }).not.toBeNull();

    const summary = await lastSweep();
    expect(summary).toMatchObject({
      mode: "bulk",
      done: true,
      projects: 3,
      identities: 6,
      driftFound: 1,
      repaired: 1,
      planned: 2,
      repairedFromPlan: 1,
      live: 0,
    });
    expect(prod2.fics.map((f) => f.subject)).toEqual([
      "project_path:platform/sweep-two:ref_type:branch:ref:main",
    ]);

    // Two follow-up chunk jobs; the one for project two failed once and succeeded on its retry.
    const chunks = (await stack.service.queues.maintenance.getJobs(["completed"])).filter(
      (j) => j.name === DRIFT_CHUNK_JOB,
    );
    expect(chunks).toHaveLength(2);
    expect(chunks.map((j) => j.attemptsMade).sort()).toEqual([1, 2]);

    // The retry did not read chunk one again: project one's app owners were read in exactly one $batch item.
    const app1 = appOf(p1, "staging");
    const owners1 = stack.entra.stats.requests.filter(
      (r) => r.kind === "batch-item" && r.path.endsWith(`/applications/${app1?.id}/owners`),
    );
    expect(owners1).toHaveLength(1);
    const app3 = appOf(p3, "staging");
    expect(
      stack.entra.stats.requests.filter(
        (r) => r.kind === "batch-item" && r.path.endsWith(`/applications/${app3?.id}/owners`),
      ),
    ).toHaveLength(1);
    // The sweep's working state is gone once it completed.
    expect(await redis.exists(`${stack.config.queuePrefix}:drift:sweep`)).toBe(0);
  });

  it("a second sweep right after finds nothing and writes nothing", async () => {
    await redis.del(`${stack.config.queuePrefix}:drift:last`);
    stack.entra.stats.reset();
    await stack.service.queues.maintenance.add("drift-repair", {});
    await expect.poll(lastSweep, { timeout: 30_000, interval: 50 }).not.toBeNull();
    expect(await lastSweep()).toMatchObject({ done: true, projects: 3, driftFound: 0, repaired: 0, live: 0 });
    expect(stack.entra.stats.writes()).toBe(0);
  });
});
