import type { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { type TestRedis, testRedisServer } from "../helpers/redis-server.ts";
import { failures, idle, settled, testStack } from "../helpers/stack.ts";

/** Outages of the things the bot depends on: Redis, Graph (503 and 429 storms) and the GitLab API. */
const { alice } = SANDBOX.users;
const stacks: SandboxStack[] = [];
let redis: TestRedis | undefined;

afterAll(async () => {
  for (const s of stacks) await s.close().catch(() => {});
  await redis?.stop();
});

const appsOf = (stack: SandboxStack, projectId: number) =>
  [...stack.entra.state.applications.values()].filter((a) => a.tags.includes(`gitlab-project:${projectId}`));

function expectOnboarded(stack: SandboxStack, projectId: number) {
  const apps = appsOf(stack, projectId);
  expect(apps.map((a) => a.tags.find((t) => t.startsWith("gitlab-env:"))).sort()).toEqual([
    "gitlab-env:production",
    "gitlab-env:staging",
  ]);
  expect(apps.reduce((n, a) => n + a.fics.length, 0)).toBe(3);
}

/** Polls `probe` until it holds: waits for an event (a job state), never for a fixed time. */
async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  await expect.poll(probe, { timeout: 25_000, interval: 20, message: `waiting for ${what}` }).toBe(true);
}
const delayed = (q: Queue) => q.getDelayedCount();

describe("Redis restarted with jobs waiting and delayed", () => {
  it("the api answers 503 while Redis is down; after it comes back every job completes", async () => {
    redis = await testRedisServer();
    await redis.start();
    const stack = await testStack("redis-restart", {
      redisUrl: redis.url,
      env: { JOB_BACKOFF_MS: "2500", WORKER_CONCURRENCY: "4" },
    });
    stacks.push(stack);
    const { events } = stack.service.queues;

    // Delayed: Graph is down, so the first attempt of each fails and waits for its backoff.
    stack.entra.faults.down = true;
    const delayedIds: number[] = [];
    for (const p of ["redis/delayed-1", "redis/delayed-2"]) {
      const { project, delivery } = await stack.driver.createProject(p, { members: { [alice.id]: 40 } });
      expect(delivery.status).toBe(202);
      delayedIds.push(project.id);
    }
    await until("both jobs to wait for their backoff", async () => (await delayed(events)) === 2);

    // Waiting: the workers are paused, so these stay in the wait list.
    const workers = stack.service.workers?.workers ?? [];
    await Promise.all(workers.map((w) => w.pause()));
    const waitingIds: number[] = [];
    for (const p of ["redis/waiting-1", "redis/waiting-2", "redis/waiting-3"]) {
      const { project, delivery } = await stack.driver.createProject(p, { members: { [alice.id]: 40 } });
      expect(delivery.status).toBe(202);
      waitingIds.push(project.id);
    }
    expect(await events.getWaitingCount()).toBe(3);
    // The private Redis fsyncs every write (appendfsync always), so the kill below loses nothing.

    await redis.kill();
    const whileDown = await stack.driver.createProject("redis/while-down", { members: { [alice.id]: 40 } });
    expect(whileDown.delivery.status).toBe(503);
    expect(whileDown.delivery.body).toMatchObject({ error: "unavailable" });
    const ready = await fetch(`${stack.service.url}/readyz`);
    expect(ready.status).toBe(503);

    await redis.start();
    stack.entra.faults.down = false;
    for (const w of workers) w.resume();
    // GitLab resends the failed delivery once the bot answers again.
    const resent = await stack.driver.send("System Hook", {
      event_name: "project_create",
      project_id: whileDown.project.id,
      path_with_namespace: whileDown.project.path,
      name: "while-down",
      path: "while-down",
    });
    expect(resent.status).toBe(202);
    await idle([stack.service.queues.events, stack.service.queues.reports], 25_000);
    expect(await failures(stack)).toEqual([]);
    for (const id of [...delayedIds, ...waitingIds, whileDown.project.id]) expectOnboarded(stack, id);
    console.info(
      "[reliability] Redis restart: 2 delayed + 3 waiting jobs survived, 1 delivery refused with 503 and resent; 6/6 onboarded",
    );
  });
});

describe("Graph and GitLab outages", () => {
  // One stack for the three cases; each starts from idle queues and resets what it counts.
  let stack: SandboxStack;
  beforeAll(async () => {
    stack = await testStack("graph-outage", { env: { JOB_BACKOFF_MS: "150" } });
    stacks.push(stack);
  });
  const fresh = async () => {
    await settled(stack);
    for (const q of stack.service.queues.all()) await q.clean(0, 10_000, "completed");
    stack.entra.stats.reset();
    stack.gitlab.stats.reset();
  };

  it("Graph answers 503 for a while, then recovers: jobs retry with backoff and complete", async () => {
    await fresh();
    stack.entra.faults.down = true;
    const ids: number[] = [];
    for (const p of ["outage/a", "outage/b", "outage/c"]) {
      const { project } = await stack.driver.createProject(p, { members: { [alice.id]: 40 } });
      ids.push(project.id);
    }
    // The outage lasts until every job has failed at least once and waits for its backoff.
    const events = stack.service.queues.events;
    await until("every job to fail once on the outage", async () => {
      const jobs = await events.getJobs(["delayed", "waiting", "active", "completed"]);
      return jobs.length === 3 && jobs.every((j) => j.attemptsMade >= 1);
    });
    stack.entra.faults.down = false;
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    for (const id of ids) expectOnboarded(stack, id);
    const done = await stack.service.queues.events.getCompleted();
    const attempts = done.map((j) => j.attemptsMade);
    expect(Math.min(...attempts)).toBeGreaterThanOrEqual(2);
    const unavailable = stack.entra.stats.requests.filter((r) => r.status === 503).length;
    console.info(
      `[reliability] Graph 503 until every job had failed once: ${unavailable} calls refused, ${ids.length}/${ids.length} jobs completed after ${attempts.join("/")} attempts`,
    );
  });

  it("a 429 storm with Retry-After: nothing fails and no attempt is burnt", async () => {
    await fresh();
    stack.entra.faults.failNext(40, 429, { retryAfterSeconds: 0.2 });
    const ids: number[] = [];
    for (const p of ["storm/a", "storm/b", "storm/c", "storm/d"]) {
      const { project } = await stack.driver.createProject(p, { members: { [alice.id]: 40 } });
      ids.push(project.id);
    }
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    for (const id of ids) expectOnboarded(stack, id);
    const throttled = stack.entra.stats.throttled();
    expect(throttled).toBe(40);
    const done = await stack.service.queues.events.getCompleted();
    expect(done).toHaveLength(4);
    // Rate-limited runs are put back without counting as attempts: attemptsMade stays 1 (the run that completed).
    expect(Math.max(...done.map((j) => j.attemptsMade))).toBeLessThanOrEqual(1);
    const started = done.reduce((n, j) => n + (j.attemptsStarted ?? 0), 0);
    expect(started).toBeGreaterThan(4);
    console.info(
      `[reliability] 429 storm: ${throttled} throttled answers, ${started} runs of 4 jobs, max attemptsMade ${Math.max(...done.map((j) => j.attemptsMade))}, 0 failed`,
    );
  });

  it("GitLab API down while reporting: the report retries, Entra work is not redone", async () => {
    await fresh();
    // GitLab fails every call the report makes (it starts with the CI variables); the events job's read of the
    // project, which must succeed before any Entra write, is answered.
    stack.gitlab.faults.failNext(100_000, 503, { pathIncludes: "/variables" });
    const { project } = await stack.driver.createProject("gitlab-down/app", { members: { [alice.id]: 40 } });
    const reports = stack.service.queues.reports;
    await until("the report to wait for its backoff", async () => (await delayed(reports)) === 1);
    const writesBefore = stack.entra.stats.writes();
    // Let the report fail more than once while GitLab is down (an event: its attempt count), then recover.
    await until("a second failed report attempt", async () =>
      (await reports.getJobs(["delayed", "waiting", "active"])).some((j) => j.attemptsMade >= 2),
    );
    stack.gitlab.faults.clear();
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    expectOnboarded(stack, project.id);
    expect(stack.entra.stats.writes()).toBe(writesBefore);
    // Apps are created by an upsert keyed by uniqueName: 201 means created.
    const appPosts = stack.entra.stats.requests.filter(
      (r) => r.method === "PATCH" && r.path.startsWith("/v1.0/applications(uniqueName=") && r.status === 201,
    ).length;
    expect(appPosts).toBe(2);
    const issues = stack.gitlab.project(project.id)?.issues ?? [];
    expect(issues.filter((i) => i.description.includes("gitlab-entra-bot:onboarding"))).toHaveLength(1);
    const [report] = await stack.service.queues.reports.getCompleted();
    console.info(
      `[reliability] GitLab down: report took ${report?.attemptsMade} attempts, Entra writes ${writesBefore} before = ${stack.entra.stats.writes()} after, 2 applications`,
    );
  });
});
