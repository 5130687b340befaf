import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import { createGitLabDriver, type GitLabDriver } from "../../src/sandbox/gitlab-driver.ts";
import type { SimProject } from "../../src/sandbox/gitlab-sim/state.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { type Service, startService } from "../../src/service.ts";
import { idle, testStack } from "../helpers/stack.ts";
import { botEnv, killAllBots, startBot, waitForLog } from "./bot-process.ts";

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

function expectComplete(projectId: number, path: string) {
  expect(appsOf(projectId)).toHaveLength(2);
  expect(subjects(projectId, "production")).toEqual([`project_path:${path}:ref_type:branch:ref:main`]);
  expect(subjects(projectId, "staging")).toEqual([
    `project_path:${path}:ref_type:branch:ref:develop`,
    `project_path:${path}:ref_type:branch:ref:main`,
  ]);
}

describe("a worker process dies", () => {
  afterEach(async () => {
    await killAllBots();
  });

  it("SIGKILL after the app and before its FICs: stalled-job recovery finishes the job, one app per env", async () => {
    const first = await startBot("worker", botEnv(stack, FAST));
    const path = "crash/payments";
    // The worker's first FIC write is held at the simulator: the kill lands between the app and its FICs,
    // whatever the machine's load (no timer races the worker).
    const held = stack.entra.hold({ method: "PATCH", pathIncludes: "/federatedIdentityCredentials" });
    const { project, delivery } = await driver.createProject(path, { members: { [alice.id]: 40 } });
    expect(delivery.status).toBe(202);

    await held.reached;
    await first.kill("SIGKILL");
    // The held request's client is gone; letting it through would apply a write nobody waits for, as a real
    // in-flight request may. Release only after the kill, then check the state at the kill.
    const ficsAtKill = appsOf(project.id).reduce((n, a) => n + a.fics.length, 0);
    expect(appsOf(project.id).length).toBeLessThan(2);
    expect(ficsAtKill).toBe(0);
    expect(await api.queues.events.getActiveCount()).toBe(1); // orphaned in "active", nobody working on it
    held.release();

    const restarted = Date.now();
    await startBot("worker", botEnv(stack, FAST));
    await idle(queues(), 25_000);
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
    const worker = await startBot("worker", botEnv(stack, FAST));
    const paths = Array.from({ length: 6 }, (_, i) => `drain/app-${i}`);
    // Jobs are in flight when SIGTERM arrives: their FIC writes wait at the simulator until the signal is sent.
    const held = stack.entra.hold({ method: "PATCH", pathIncludes: "/federatedIdentityCredentials" });
    const projects: SimProject[] = [];
    for (const p of paths) {
      const { project, delivery } = await driver.createProject(p, { members: { [dave.id]: 40 } });
      expect(delivery.status).toBe(202);
      projects.push(project);
    }
    await held.reached;
    const stopping = worker.kill("SIGTERM");
    // Wait for the worker to stop taking jobs (it logs so) before letting the running ones finish.
    await waitForLog(worker, (l) => String(l.msg).startsWith("shutting down"));
    held.release();
    const code = await stopping;
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

    await startBot("worker", botEnv(stack, FAST));
    await idle(queues(), 25_000);
    for (const [i, p] of projects.entries()) expectComplete(p.id, paths[i] as string);
    expect(await api.queues.events.getFailedCount()).toBe(0);
    console.info(
      `[reliability] SIGTERM: ${finished}/${projects.length} onboardings finished by the stopping worker, rest by the next; 0 lost, 0 partial`,
    );
  });
});
