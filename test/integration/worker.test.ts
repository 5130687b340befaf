import type { Job } from "bullmq";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import type { EventJob } from "../../src/queue/jobs.ts";
import { type Service, startService } from "../../src/service.ts";
import { baseConfig } from "../helpers/config.ts";
import { fixtureText } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { deletePrefix, uniquePrefix } from "../helpers/redis.ts";

let service: Service | undefined;
let prefix = "";

afterEach(async () => {
  await service?.close();
  service = undefined;
  await deletePrefix(prefix);
});

async function send(url: string, key: string): Promise<string> {
  const res = await fetch(`${url}/webhooks/gitlab`, {
    method: "POST",
    headers: {
      "X-Gitlab-Event": "System Hook",
      "X-Gitlab-Token": "test-secret-0123456789",
      "Idempotency-Key": key,
    },
    body: fixtureText("gitlab/system-hook-project_create.json"),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { jobId: string }).jobId;
}

/** Polls until `fn` gives a value: waits for the event, bounded only by the test's own timeout. */
async function waitFor<T>(fn: () => Promise<T | undefined>, what: string): Promise<T> {
  let value: T | undefined;
  await expect
    .poll(
      async () => {
        value = await fn();
        return value !== undefined;
      },
      { timeout: 25_000, interval: 25, message: `waiting for ${what}` },
    )
    .toBe(true);
  return value as T;
}

describe("worker", () => {
  it("consumes an accepted webhook: the handler gets the parsed intent and the job completes", async () => {
    prefix = uniquePrefix("worker");
    const seen: EventJob[] = [];
    service = await startService({
      config: baseConfig({ queuePrefix: prefix }),
      policy: testPolicy(),
      logger: createLogger("silent"),
      handler: async (data) => {
        seen.push(data);
        return { ok: true };
      },
    });
    const jobId = await send(service.url as string, `${prefix}-1`);
    const state = await waitFor(async () => {
      const s = await service?.queues.events.getJobState(jobId);
      return s === "completed" ? s : undefined;
    }, "completion");
    expect(state).toBe("completed");
    expect(seen).toHaveLength(1);
    expect(seen[0]?.intent).toEqual({
      type: "project.created",
      project: { id: 74, path: "jsmith/storecloud" },
      source: "system-hook",
    });
    const logs = await service.queues.events.getJobLogs(jobId);
    expect(logs.logs.join("\n")).toMatch(/intent project.created from System Hook\/project_create/);
  });

  it("fails a job whose data does not match the schema at once, without retries", async () => {
    prefix = uniquePrefix("worker-bad");
    service = await startService({
      config: baseConfig({ queuePrefix: prefix }),
      policy: testPolicy(),
      logger: createLogger("silent"),
      handler: async () => ({ ok: true }),
    });
    const job = await service.queues.events.add("project.created", { intent: { type: "project.created" } });
    const failed = await waitFor(async () => {
      const j = await service?.queues.events.getJob(job.id as string);
      return j?.failedReason ? j : undefined;
    }, "failure");
    expect(failed.failedReason).toMatch(
      /^JOB_DATA_INVALID: job data does not match the intent schema \(intent\.project/,
    );
    expect(failed.attemptsMade).toBe(1);
  });

  it("on shutdown, stops taking jobs but lets the running one finish", async () => {
    prefix = uniquePrefix("worker-stop");
    const started = Promise.withResolvers<void>();
    // The running job finishes only once the worker is closing: no timer decides what is running when.
    const closingNow = Promise.withResolvers<void>();
    let finished = 0;
    service = await startService({
      config: baseConfig({ queuePrefix: prefix, workerConcurrency: 1 }),
      policy: testPolicy(),
      logger: createLogger("silent"),
      handler: async (_data, job: Job) => {
        started.resolve();
        await closingNow.promise;
        finished += 1;
        return { jobId: job.id };
      },
    });
    const first = await send(service.url as string, `${prefix}-a`);
    await started.promise;
    const second = await send(service.url as string, `${prefix}-b`);
    const queue = service.queues.events;
    for (const w of service.workers?.workers ?? []) w.once("closing", () => closingNow.resolve());
    const closing = service.close();
    await closing;
    service = undefined;
    expect(finished).toBe(1);
    // Inspect with a fresh producer: the service's own connections are closed.
    const { Queue } = await import("bullmq");
    const { Redis } = await import("ioredis");
    const redis = new Redis("redis://127.0.0.1:6379", { maxRetriesPerRequest: null });
    const q = new Queue(queue.name, { connection: redis, prefix });
    expect(await q.getJobState(first)).toBe("completed");
    expect(await q.getJobState(second)).toBe("waiting");
    await q.close();
    await redis.quit();
  });
});
