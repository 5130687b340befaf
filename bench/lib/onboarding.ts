/**
 * The bulk-onboarding harness shared by bench:burst and bench:scale: both simulators and the bot (one api,
 * N workers) as separate processes on real Redis, a burst of signed-by-token project_create webhooks, and
 * the figures read back from the queues, the simulators and /proc.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { parsePolicy } from "../../src/config/policy.ts";
import { planIdentity } from "../../src/onboarding/planner.ts";
import { desiredComponents } from "../../src/policy/protection.ts";
import { environmentIn, onboardsAutomatically, projectRule } from "../../src/policy/rules.ts";
import { QUEUES } from "../../src/queue/names.ts";
import { SANDBOX, sandboxPolicyYaml } from "../../src/sandbox/stack.ts";
import { type Child, startNode, WORKER_NODE_FLAGS } from "./process.ts";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** The path every bench project is created at (projectCreate below): the sandbox policy's default rule. */
const BENCH_PROJECT_PATH = "bench/p-1";

export interface OnboardingCost {
  /** Identities (one app and one SP each) a project_create onboards. */
  identities: number;
  fics: number;
  /** Group object id (or template) -> how many of a project's identities join it. */
  groups: Record<string, number>;
  /** Graph writes: an app, a service principal, each FIC and each group add. */
  writes: number;
  /** ... plus one lookup per identity: the minimum number of Graph requests (reconcile.test.ts). */
  requests: number;
}

/**
 * What onboarding one bench project costs under a policy, from the bot's own rules and planner: the
 * environments onProjectCreate names that are onboarded without a person asking (privileged ones are not),
 * and their FICs under the subject layout the project's rule establishes (a rule with a privileged
 * environment adds ref_protected: a plain environment then gets one credential per ref and value).
 * Hard-coded counts went stale when the sandbox policy changed; these follow it.
 */
export function onboardingCost(policyYaml: string, projectPath = BENCH_PROJECT_PATH): OnboardingCost {
  const policy = parsePolicy(policyYaml);
  const rule = projectRule(policy, projectPath);
  const binding = { components: desiredComponents(policy, rule) };
  const cost: OnboardingCost = { identities: 0, fics: 0, groups: {}, writes: 0, requests: 0 };
  for (const environment of rule.onProjectCreate.environments) {
    const decision = environmentIn(rule, environment);
    if (!decision || !onboardsAutomatically(decision)) continue;
    const plan = planIdentity({
      project: { id: 1, path: projectPath },
      environment,
      policy,
      issuer: "https://gitlab.bench.example",
      binding,
      // Counting only: a template stands for the one group it resolves to.
      groups: decision.settings.groups,
    });
    if (!plan) continue;
    cost.identities += 1;
    cost.fics += plan.fics.length;
    for (const g of plan.groups) cost.groups[g] = (cost.groups[g] ?? 0) + 1;
    cost.writes += 2 + plan.fics.length + plan.groups.length;
    cost.requests += 3 + plan.fics.length + plan.groups.length;
  }
  return cost;
}

/** The policy runOnboarding gives the bot, and what it costs per project. */
export const POLICY_YAML = sandboxPolicyYaml();
export const COST_PER_PROJECT = onboardingCost(POLICY_YAML);
export const WRITES_PER_PROJECT = COST_PER_PROJECT.writes;
export const REQUESTS_PER_PROJECT = COST_PER_PROJECT.requests;

const root = new URL("../../", import.meta.url).pathname;
export const CA = path.join(root, "src/sandbox/certs/ca.pem");
export const SIMULATORS = path.join(root, "bench/lib/simulators.ts");
export const MAIN = path.join(root, "dist/src/main.js");
export const SIM_READY = /"url":"(https:\/\/[^"]+)","stats":"(http:\/\/[^"]+)"/;
/**
 * The bot's environment against the benchmark's simulators (every bench process starts the compiled bot this
 * way); drift repair off unless the benchmark turns it on.
 */
export function botEnv(o: {
  prefix: string;
  policyFile: string;
  gitlabUrl: string;
  entraUrl: string;
  secrets: { gitlab: string; webhook: string; client: string };
}): Record<string, string> {
  return {
    NODE_EXTRA_CA_CERTS: CA,
    REDIS_URL,
    QUEUE_PREFIX: o.prefix,
    POLICY_FILE: o.policyFile,
    LOG_LEVEL: "info",
    HOST: "127.0.0.1",
    PORT: "0",
    GITLAB_URL: o.gitlabUrl,
    GITLAB_TOKEN: o.secrets.gitlab,
    GITLAB_WEBHOOK_SECRETS: o.secrets.webhook,
    AZURE_TENANT_ID: SANDBOX.tenantId,
    AZURE_CLIENT_ID: SANDBOX.botClientId,
    AZURE_CLIENT_SECRET: o.secrets.client,
    AZURE_AUTHORITY_HOST: o.entraUrl,
    GRAPH_BASE_URL: o.entraUrl,
    DRIFT_INTERVAL_SECONDS: "0",
  };
}

export const WORKER_READY = /gitlab-entra-bot started/;

export interface RunOptions {
  projects: number;
  workers: number;
  concurrency: number;
  /** GRAPH_WRITES_PER_SECOND of the bot (0 = no pacing). */
  paceWritesPerSecond: number;
  /** The simulated tenant's write budget (0 = unthrottled). */
  simWritesPerSecond: number;
  graphLatencyMs: number;
  /** Node flags for the workers on top of the image's (e.g. --cpu-prof). */
  workerNodeFlags?: string[];
  /** Webhooks in flight at once while posting the burst. */
  postConcurrency?: number;
}

export interface EntraStats {
  graphRequests: number;
  reads: number;
  writes: number;
  throttled: number;
  logins: number;
  byOperation: Record<string, number>;
  apps: number;
  servicePrincipals: number;
  identities: number;
  duplicateApps: number;
  fics: number;
  ficDuplicates: number;
  groupMembers: Record<string, number>;
}

export interface RunResult {
  options: RunOptions;
  /** First webhook sent -> last webhook answered. */
  intakeMs: number;
  /** First webhook sent -> last onboarding (events) job finished. */
  entraMs: number;
  /** First webhook sent -> every report back to GitLab finished too. */
  totalMs: number;
  accepted: number;
  failedJobs: number;
  completedEvents: number;
  completedReports: number;
  entra: EntraStats;
  gitlab: { requests: number; writes: number; issues: number; variables: number };
  workerRssMb: number[];
  apiRssMb: number;
  /** CPU seconds (user + system) each process used from the first webhook to the end (startup excluded). */
  cpu: { workers: number[]; api: number; entraSim: number; gitlabSim: number; redis: number };
}

/** utime + stime of a live process, in seconds (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(c: Child): number {
  const stat = readFileSync(`/proc/${c.proc.pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get("used_cpu_sys") + get("used_cpu_user");
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  return (await res.json()) as T;
}

export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
}

function projectCreate(id: number) {
  return JSON.stringify({
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    event_name: "project_create",
    name: `p-${id}`,
    owner_email: "alice@example.com",
    owner_name: "Alice",
    owners: [{ name: "Alice", email: "alice@example.com" }],
    path: `p-${id}`,
    path_with_namespace: `bench/p-${id}`,
    project_id: id,
    project_namespace_id: 1000 + id,
    project_visibility: "private",
  });
}

/** Runs `fn` over 1..n with at most `limit` in flight. */
async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 1;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next <= n) await fn(next++);
    }),
  );
}

export async function runOnboarding(o: RunOptions): Promise<RunResult> {
  const prefix = `bench-onb-${randomUUID().slice(0, 8)}`;
  const secrets = {
    client: `bench-client-secret-${randomUUID()}`,
    gitlab: `glpat-bench-${randomUUID()}`,
    webhook: `bench-webhook-${randomUUID()}`,
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), "geb-bench-"));
  const policyFile = path.join(dir, "policy.yaml");
  writeFileSync(policyFile, POLICY_YAML);
  const children: Child[] = [];
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const events = new Queue(QUEUES.events, { connection: redis, prefix });
  const reports = new Queue(QUEUES.reports, { connection: redis, prefix });
  try {
    const entra = await startNode(
      SIMULATORS,
      ["entra"],
      {
        SIM_TENANT_ID: SANDBOX.tenantId,
        SIM_CLIENT_ID: SANDBOX.botClientId,
        SIM_CLIENT_SECRET: secrets.client,
        SIM_GROUPS: [SANDBOX.productionGroup, SANDBOX.stagingGroup].join(","),
        SIM_LATENCY_MS: String(o.graphLatencyMs),
        SIM_WRITES_PER_SECOND: String(o.simWritesPerSecond),
      },
      [],
      SIM_READY,
    );
    children.push(entra);
    const gitlab = await startNode(
      SIMULATORS,
      ["gitlab"],
      { SIM_TOKEN: secrets.gitlab, SIM_PROJECTS: String(o.projects) },
      [],
      SIM_READY,
    );
    children.push(gitlab);
    const env = {
      ...botEnv({ prefix, policyFile, gitlabUrl: gitlab.url, entraUrl: entra.url, secrets }),
      WORKER_CONCURRENCY: String(o.concurrency),
      GRAPH_WRITES_PER_SECOND: String(o.paceWritesPerSecond),
    };
    const api = await startNode(MAIN, ["--role=api"], env);
    children.push(api);
    const workers: Child[] = [];
    for (let i = 0; i < o.workers; i++) {
      const w = await startNode(
        MAIN,
        ["--role=worker"],
        env,
        [...WORKER_NODE_FLAGS, ...(o.workerNodeFlags ?? [])],
        WORKER_READY,
      );
      workers.push(w);
      children.push(w);
    }
    // Let every worker open its connections and block on the queue before the burst arrives.
    await new Promise((r) => setTimeout(r, 500));

    let accepted = 0;
    const redisCpuBefore = await redisCpu(redis);
    const cpuBefore = new Map(children.map((c) => [c, cpuSeconds(c)]));
    const cpuUsed = (c: Child) => cpuSeconds(c) - (cpuBefore.get(c) ?? 0);
    const started = performance.now();
    await pool(o.projects, o.postConcurrency ?? 100, async (id) => {
      const res = await fetch(`${api.url}/webhooks/gitlab`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gitlab-event": "System Hook",
          "x-gitlab-token": secrets.webhook,
          "idempotency-key": randomUUID(),
        },
        body: projectCreate(id),
      });
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 300) accepted++;
    });
    const intakeMs = performance.now() - started;

    let entraMs = 0;
    let totalMs = 0;
    const states = ["completed", "failed", "waiting", "active", "delayed", "prioritized"] as const;
    for (;;) {
      const [e, r] = await Promise.all([events.getJobCounts(...states), reports.getJobCounts(...states)]);
      const pending = (c: Record<string, number>) =>
        (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
      const eventsDone = (e.completed ?? 0) + (e.failed ?? 0) >= accepted && pending(e) === 0;
      if (eventsDone && !entraMs) entraMs = performance.now() - started;
      if (eventsDone && (r.completed ?? 0) + (r.failed ?? 0) >= (e.completed ?? 0) && pending(r) === 0) {
        totalMs = performance.now() - started;
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }

    const [e, r] = await Promise.all([events.getJobCounts(...states), reports.getJobCounts(...states)]);
    const result: RunResult = {
      options: o,
      intakeMs,
      entraMs,
      totalMs,
      accepted,
      failedJobs: (e.failed ?? 0) + (r.failed ?? 0),
      completedEvents: e.completed ?? 0,
      completedReports: r.completed ?? 0,
      entra: await getJson<EntraStats>(entra.ready[2] ?? ""),
      gitlab: await getJson(gitlab.ready[2] ?? ""),
      workerRssMb: workers.map((w) => w.peakRssMb()),
      apiRssMb: api.peakRssMb(),
      cpu: {
        workers: workers.map(cpuUsed),
        api: cpuUsed(api),
        entraSim: cpuUsed(entra),
        gitlabSim: cpuUsed(gitlab),
        redis: (await redisCpu(redis)) - redisCpuBefore,
      },
    };
    return result;
  } finally {
    // Workers first (they finish running jobs), then the api, then the simulators.
    for (const c of [...children].reverse()) await c.stop();
    await events.close();
    await reports.close();
    await deletePrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function row(cells: Array<string | number>): string {
  return `| ${cells.join(" | ")} |`;
}

export function machine(): string {
  return `${new Date().toISOString()}  ${os.cpus().length} cores ${os.cpus()[0]?.model ?? ""}  node ${process.version}`;
}
