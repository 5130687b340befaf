import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import { createGitLabDriver, type GitLabDriver } from "../../src/sandbox/gitlab-driver.ts";
import type { SimProject } from "../../src/sandbox/gitlab-sim/state.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { type Service, startService } from "../../src/service.ts";
import { idle, testStack } from "../helpers/stack.ts";
import { type BotProcess, botEnv, killAllBots, startBot } from "./bot-process.ts";

/**
 * Real processes: the workers run as `node src/main.ts --role=worker` children and are killed with SIGKILL
 * or SIGTERM; the api and the simulators run in this process. Stall checks are shortened through the
 * documented env knobs (WORKER_STALLED_INTERVAL_MS / WORKER_LOCK_DURATION_MS), nothing else is changed.
 */
let stack: SandboxStack;
let api: Service;
let driver: GitLabDriver;
const { alice, dave } = SANDBOX.users;
const FAST = {
  WORKER_CONCURRENCY: "2",
  WORKER_STALLED_INTERVAL_MS: "300",
  WORKER_LOCK_DURATION_MS: "1000",
  JOB_BACKOFF_MS: "100",
};

beforeAll(async () => {
  stack = await testStack("crash", { startService: false });
  api = await startService({
    config: { ...stack.config, role: "api" },
    policy: stack.policy,
    logger: createLogger("silent"),
  });
  driver = createGitLabDriver({
    gitlab: stack.gitlab,
    botUrl: () => api.url as string,
    secret: stack.secrets.webhook,
  });
});
afterAll(async () => {
  await killAllBots();
  await api?.close();
  await stack?.close();
});

const appsOf = (projectId: number) =>
  [...stack.entra.state.applications.values()].filter((a) => a.tags.includes(`gitlab-project:${projectId}`));
const appFor = (projectId: number, env: string) =>
  appsOf(projectId).find((a) => a.tags.includes(`gitlab-env:${env}`));
const subjects = (projectId: number, env: string) =>
  (appFor(projectId, env)?.fics ?? []).map((f) => f.subject).sort();
const queues = () => [api.queues.events, api.queues.reports];

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function expectComplete(projectId: number, path: string) {
  expect(appsOf(projectId)).toHaveLength(2);
  expect(subjects(projectId, "production")).toEqual([`project_path:${path}:ref_type:branch:ref:main`]);
  expect(subjects(projectId, "staging")).toEqual([
    `project_path:${path}:ref_type:branch:ref:develop`,
    `project_path:${path}:ref_type:branch:ref:main`,
  ]);
}

describe("a worker process dies", () => {
  let second: BotProcess | undefined;

  it("SIGKILL after the app and before its FICs: stalled-job recovery finishes the job, one app per env", async () => {
    stack.entra.faults.latencyMs = 120;
    const first = await startBot("worker", botEnv(stack, FAST));
    const path = "crash/payments";
    const { project, delivery } = await driver.createProject(path, { members: { [alice.id]: 40 } });
    expect(delivery.status).toBe(202);

    // Kill the moment the first application exists: its FICs are written by later Graph calls.
    await waitFor(() => appsOf(project.id).length > 0, "the first application");
    await first.kill("SIGKILL");
    const ficsAtKill = appsOf(project.id).reduce((n, a) => n + a.fics.length, 0);
    expect(appsOf(project.id).length).toBeLessThan(2);
    expect(ficsAtKill).toBe(0);
    const [active] = await Promise.all([api.queues.events.getActiveCount()]);
    expect(active).toBe(1); // the job is orphaned in "active" with nobody working on it

    const restarted = Date.now();
    second = await startBot("worker", botEnv(stack, FAST));
    await idle(queues(), 20_000);
    const recoveredMs = Date.now() - restarted;

    expectComplete(project.id, path);
    expect(
      stack.gitlab.project(project.id)?.issues.filter((i) => i.description.includes("onboarding")),
    ).toHaveLength(1);
    const [done] = await api.queues.events.getCompleted();
    expect(done?.attemptsStarted ?? 0).toBeGreaterThanOrEqual(2);
    expect(await api.queues.events.getFailedCount()).toBe(0);
    // Figure for the README.
    console.info(
      `[reliability] SIGKILL: ${ficsAtKill} FICs at the kill, recovered by a new worker in ${recoveredMs} ms`,
    );
  });

  it("SIGTERM during load: running jobs finish, none is left active or half done, the rest wait for the next worker", async () => {
    if (!second) throw new Error("needs the worker of the previous test");
    stack.entra.faults.latencyMs = 60;
    const paths = Array.from({ length: 6 }, (_, i) => `drain/app-${i}`);
    const projects: SimProject[] = [];
    for (const p of paths) {
      const { project, delivery } = await driver.createProject(p, { members: { [dave.id]: 40 } });
      expect(delivery.status).toBe(202);
      projects.push(project);
    }
    await waitFor(() => projects.some((p) => appsOf(p.id).length > 0), "work in flight");
    const code = await second.kill("SIGTERM");
    expect(code).toBe(0);

    expect(await api.queues.events.getActiveCount()).toBe(0);
    let finished = 0;
    for (const [i, p] of projects.entries()) {
      const n = appsOf(p.id).length;
      // Either untouched (still waiting) or complete: never one env without the other, never an app without FICs.
      if (n === 0) continue;
      expectComplete(p.id, paths[i] as string);
      finished++;
    }
    expect(finished).toBeGreaterThan(0);

    stack.entra.faults.latencyMs = 0;
    await startBot("worker", botEnv(stack, FAST));
    await idle(queues(), 20_000);
    for (const [i, p] of projects.entries()) expectComplete(p.id, paths[i] as string);
    expect(await api.queues.events.getFailedCount()).toBe(0);
    console.info(
      `[reliability] SIGTERM: ${finished}/${projects.length} onboardings finished by the stopping worker, rest by the next; 0 lost, 0 partial`,
    );
  });
});
