import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appsOf, exchange, onboardingIssues } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * GitLab is down while the bot reports: the Entra work is done once, in the events job; the report job on
 * its own queue retries with backoff (JOB_BACKOFF_MS shortens the first delay for the test) and completes
 * once GitLab is back, without a single Graph write during the retries. And GitLab down before the events
 * job could read the project: nothing is written to Entra until GitLab confirms the project.
 */
let stack: SandboxStack;
const { alice } = SANDBOX.users;

beforeAll(async () => {
  stack = await testStack("report-outage", { env: { JOB_BACKOFF_MS: "40" } });
});
afterAll(async () => {
  await stack?.close();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 25_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function reportJob(minAttempts: number): Promise<Job | undefined> {
  const jobs = await stack.service.queues.reports.getJobs([
    "delayed",
    "waiting",
    "active",
    "failed",
    "completed",
  ]);
  return jobs.find((j) => j.attemptsMade >= minAttempts);
}

describe("GitLab down while reporting", () => {
  it("GitLab down when the event arrives: no Entra write until GitLab confirms the project, then onboarded", async () => {
    stack.entra.stats.reset();
    stack.gitlab.faults.down = true;
    try {
      const { project } = await stack.driver.createProject("ops/unconfirmed", {
        members: { [alice.id]: 40 },
      });
      await until("a failed events attempt", async () => {
        const jobs = await stack.service.queues.events.getJobs(["delayed", "waiting", "active", "failed"]);
        return jobs.find((j) => j.data.intent?.project?.id === project.id && j.attemptsMade >= 2);
      });
      expect(stack.entra.stats.writes()).toBe(0);
      expect(appsOf(stack, project.id)).toHaveLength(0);
      stack.gitlab.faults.down = false;
      await settled(stack);
      expect(appsOf(stack, project.id)).toHaveLength(2);
      expect((await exchange(stack, project.id, "production", "main")).status).toBe(200);
      expect(await failures(stack)).toEqual([]);
    } finally {
      stack.gitlab.faults.down = false;
    }
  });

  it("Entra work once; the report retries with zero Graph writes, then completes when GitLab is back", async () => {
    // GitLab fails every call of the report (its first step reads the CI variables), not the events job's read
    // of the project, which must succeed before any Entra write.
    stack.gitlab.faults.failNext(100_000, 503, { pathIncludes: "/variables" });
    const { project, delivery } = await stack.driver.createProject("ops/outage", {
      members: { [alice.id]: 40 },
    });
    expect(delivery.status).toBe(202);

    // The events job completes (Entra done) while GitLab is unreachable.
    const eventJob = await until("the events job", async () => {
      const done = await stack.service.queues.events.getCompleted();
      return done.find((j) => j.data.intent?.project?.id === project.id);
    });
    expect(eventJob.attemptsMade).toBe(1);
    expect(appsOf(stack, project.id)).toHaveLength(2);

    await until("a failed report attempt", () => reportJob(1));
    stack.entra.stats.reset();
    const retried = await until("more report attempts", () => reportJob(3));
    expect(retried.failedReason).toMatch(/503|unavailable/i);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(appsOf(stack, project.id)).toHaveLength(2);
    expect(onboardingIssues(stack, project.id)).toHaveLength(0);
    const gitlabErrors = stack.gitlab.stats.log.filter((r) => r.status === 503).length;
    expect(gitlabErrors).toBeGreaterThanOrEqual(3);

    stack.gitlab.faults.clear();
    await settled(stack);

    const [report] = (await stack.service.queues.reports.getCompleted()).filter(
      (j) => j.data.project?.id === project.id,
    );
    expect(report?.attemptsMade).toBeGreaterThan(3);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(onboardingIssues(stack, project.id)).toHaveLength(1);
    const vars = stack.gitlab.project(project.id)?.variables ?? [];
    expect(
      vars
        .filter((v) => v.key === "AZURE_CLIENT_ID")
        .map((v) => v.environmentScope)
        .sort(),
    ).toEqual(["production", "staging"]);
    expect((await exchange(stack, project.id, "production", "main")).status).toBe(200);
    expect(await failures(stack)).toEqual([]);
    // The event was processed once: no second events job ran for it.
    const events = await stack.service.queues.events.getCompleted();
    expect(events.filter((j) => j.data.intent?.project?.id === project.id)).toHaveLength(1);
    expect(eventJob.attemptsMade).toBe(1);
  });

  it("a 503 in the middle of a report (variables written, issue not yet) resumes without redoing or duplicating", async () => {
    stack.gitlab.stats.reset();
    // The report writes the variables, then the issue: the issue's creation fails twice, then works.
    stack.gitlab.faults.failNext(2, 503, { pathIncludes: "/issues", method: "POST" });
    const { project } = await stack.driver.createProject("ops/flaky", { members: { [alice.id]: 40 } });
    await settled(stack);
    const log = stack.gitlab.stats.log.filter((r) => r.path.startsWith(`/projects/${project.id}/`));
    expect(log.filter((r) => r.method === "POST" && r.path.endsWith("/issues")).map((r) => r.status)).toEqual(
      [503, 503, 201],
    );
    // Three variables (two env-scoped client ids, one tenant id), each written once despite three attempts.
    expect(log.filter((r) => r.method !== "GET" && r.path.includes("/variables"))).toHaveLength(3);
    expect(onboardingIssues(stack, project.id)).toHaveLength(1);
    expect(await failures(stack)).toEqual([]);
  });
});
