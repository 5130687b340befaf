import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import { QUEUES } from "../../src/queue/names.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { type Service, startService } from "../../src/service.ts";
import { DRIFT_SCHEDULER_ID } from "../../workers/drift.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { testStack } from "../helpers/stack.ts";

/**
 * Three worker replicas on one queue prefix, each configured with DRIFT_INTERVAL_SECONDS=1 and each upserting
 * the drift scheduler at start: BullMQ's job scheduler must still produce one drift-repair job per interval in
 * total, not one per replica.
 */

const REPLICAS = 3;
const INTERVAL_S = 1;
/** How many drift jobs to wait for (an event count, not a time window). */
const JOBS = 3;

let stack: SandboxStack;
let queue: Queue;
const services: Service[] = [];

beforeAll(async () => {
  // Simulators only: the replicas below are the bot.
  stack = await testStack("drift-sched", { startService: false });
  queue = new Queue(QUEUES.maintenance, {
    connection: { url: TEST_REDIS_URL },
    prefix: stack.config.queuePrefix,
  });
});
afterAll(async () => {
  await Promise.allSettled(services.map((s) => s.close()));
  await queue?.close();
  await stack?.close();
});

describe("drift scheduler across worker replicas", () => {
  it(`${REPLICAS} workers with DRIFT_INTERVAL_SECONDS=${INTERVAL_S} run drift repair once per interval, not once per worker`, async () => {
    const config = { ...stack.config, role: "worker" as const, driftIntervalSeconds: INTERVAL_S };
    for (let i = 0; i < REPLICAS; i++) {
      services.push(await startService({ config, policy: stack.policy, logger: createLogger("silent") }));
    }
    await expect
      .poll(() => queue.getCompletedCount(), { timeout: 25_000, interval: 50 })
      .toBeGreaterThanOrEqual(JOBS);
    // Stop every replica before counting, so no job completes while we look.
    await Promise.all(services.splice(0).map((s) => s.close()));

    const completed = await queue.getCompleted();
    const failed = await queue.getFailed();
    expect(failed.map((j) => j.failedReason)).toEqual([]);
    expect(completed.every((j) => j.name === DRIFT_SCHEDULER_ID)).toBe(true);
    // Each processed by one of the replicas (BullMQ names no worker here, so check the outcome each returned).
    for (const j of completed) expect(j.returnvalue).toMatchObject({ projects: 0, repaired: 0 });

    expect(completed.length).toBeGreaterThanOrEqual(JOBS);
    // One job per slot: the scheduler's job ids carry the slot's time ("repeat:<id>:<millis>"), and
    // consecutive slots are a whole interval apart. One scheduler per replica would put REPLICAS jobs in each
    // slot (or jobs closer together), which this catches without measuring elapsed time.
    const slots = completed.map((j) => Number(/:(\d+)$/.exec(j.id ?? "")?.[1])).sort((a, b) => a - b);
    expect(slots.every(Number.isFinite)).toBe(true);
    for (let i = 1; i < slots.length; i++) {
      expect((slots[i] ?? 0) - (slots[i - 1] ?? 0)).toBeGreaterThanOrEqual(INTERVAL_S * 1000);
    }
    // The scheduler survives the replicas: one definition, however many upserted it.
    expect(await queue.getJobSchedulersCount()).toBe(1);
  });
});
