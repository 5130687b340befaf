/**
 * bench:drift — drift repair at organisation scale. 10,000 projects x 2 environments are seeded straight into
 * the simulators and the registry (bench/lib/drift-seed.ts), 1 % of identities drifted in each of five ways,
 * Graph at 30 ms per HTTP call. One worker process (the compiled bot) runs:
 *   1. the bulk sweep on everything, twice: the first repairs, the second must find nothing and write nothing;
 *   2. the per-project loop (DRIFT_SWEEP_MODE=per-project, today's code) on a sample of the same world, with
 *      fresh simulators, twice too, as the baseline the bulk sweep is compared with per identity, like for like.
 * Every sweep is judged by the simulators' final state (drift-verify.ts), not by the bot's summary.
 *
 *   npm run bench:drift                              # full size (10,000 projects; 1,000 for the baseline)
 *   BENCH_SCALE=0.1 npm run bench:drift              # smoke size (1,000; 100)
 *   BENCH_BASELINE_PROJECTS=500 npm run bench:drift  # another baseline sample
 *   BENCH_GRAPH_WRITES_PER_SECOND=48                 # the bot's write pacing (default: the bot's own, 15)
 *   BENCH_GRAPH_READS_PER_WRITE=40                   # the sweep's read pacing (default 40: an organisation with
 *                                                    # 10,000 projects is an Entra tenant of over 500 users; the
 *                                                    # bot's own default, 20, suits the smallest tenants)
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { QUEUES } from "../src/queue/names.ts";
import { SANDBOX } from "../src/sandbox/stack.ts";
import {
  type BenchWorld,
  benchPolicy,
  buildWorld,
  DRIFT_KINDS,
  seedRegistry,
  subsetWorld,
} from "./lib/drift-seed.ts";
import { entraStateSchema, type Verdict, verify } from "./lib/drift-verify.ts";
import {
  botEnv,
  deletePrefix,
  getJson,
  MAIN,
  machine,
  REDIS_URL,
  row,
  SIM_READY,
  SIMULATORS,
  WORKER_READY,
} from "./lib/onboarding.ts";
import { type Child, startNode, WORKER_NODE_FLAGS } from "./lib/process.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const PROJECTS = Math.max(100, Math.round(10_000 * SCALE));
const BASELINE = Math.min(
  PROJECTS,
  Number(process.env.BENCH_BASELINE_PROJECTS ?? Math.max(100, Math.round(1_000 * SCALE))),
);
const LATENCY = Number(process.env.BENCH_GRAPH_LATENCY_MS ?? 30);
const WRITES_PER_SECOND = process.env.BENCH_GRAPH_WRITES_PER_SECOND;
const READS_PER_WRITE = process.env.BENCH_GRAPH_READS_PER_WRITE ?? "40";
/** The worker's V8 flags: the deployed worker's (process.ts), unless BENCH_WORKER_NODE_FLAGS tries others. */
const WORKER_FLAGS = process.env.BENCH_WORKER_NODE_FLAGS?.split(" ").filter(Boolean) ?? WORKER_NODE_FLAGS;
/** A sweep that has not finished by then has hung: fail instead of waiting forever. */
const SWEEP_TIMEOUT_MS = Number(process.env.BENCH_SWEEP_TIMEOUT_S ?? 1800) * 1000;
const TARGETS = { requestRatio: 20, identitiesPerTwoMinutes: 20_000, workerRssMb: 300 };

interface SimStats {
  httpRequests: number;
  graphRequests: number;
  batchEnvelopes: number;
  batchItems: number;
  itemsRead: number;
  reads: number;
  writes: number;
  throttled: number;
}
interface GitLabStats {
  requests: number;
  writes: number;
}

interface Sweep {
  ms: number;
  entra: SimStats;
  gitlab: GitLabStats;
  /** What the bot says (`${prefix}:drift:last`, else the last job's answer). */
  summary: Record<string, unknown>;
  verdict: Verdict;
}

interface Run {
  mode: "bulk" | "per-project";
  projects: number;
  identities: number;
  sweeps: Sweep[];
  workerRssMb: number;
}

const minus = <T extends object>(a: T, b: T): T =>
  Object.fromEntries(
    Object.entries(a).map(([k, v]) => [
      k,
      typeof v === "number" ? v - ((b as Record<string, number>)[k] ?? 0) : v,
    ]),
  ) as T;

/** Waits for the sweep the next `drift-repair` job starts: bulk sweeps continue through follow-up jobs. */
async function sweepOnce(queue: Queue, events: QueueEvents): Promise<{ ms: number; answer: unknown }> {
  const started = performance.now();
  const finished = new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the sweep did not finish in time")), SWEEP_TIMEOUT_MS);
    const onCompleted = ({ returnvalue }: { returnvalue: unknown }) => {
      const value = typeof returnvalue === "string" ? JSON.parse(returnvalue) : returnvalue;
      // Bulk mode: earlier chunks answer { done: false }. Today's per-project job answers its report.
      if (value && typeof value === "object" && (value as { done?: unknown }).done === false) return;
      done();
      resolve(value);
    };
    const onFailed = ({ jobId, failedReason }: { jobId: string; failedReason: string }) => {
      done();
      reject(new Error(`drift job ${jobId} failed: ${failedReason}`));
    };
    const done = () => {
      clearTimeout(timer);
      events.off("completed", onCompleted);
      events.off("failed", onFailed);
    };
    events.on("completed", onCompleted);
    events.on("failed", onFailed);
  });
  await queue.add("drift-repair", {});
  const answer = await finished;
  return { ms: performance.now() - started, answer };
}

/** Until the reports and events queues are empty: a sweep's GitLab reports are part of its cost. */
async function settle(queues: Queue[]): Promise<void> {
  for (;;) {
    const counts = await Promise.all(
      queues.map((q) => q.getJobCounts("waiting", "active", "delayed", "prioritized")),
    );
    if (counts.every((c) => Object.values(c).every((n) => n === 0))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function run(world: BenchWorld, mode: Run["mode"], sweeps: number, policyYaml: string): Promise<Run> {
  const prefix = `bench-drift-${randomUUID().slice(0, 8)}`;
  const secrets = {
    client: `bench-client-secret-${randomUUID()}`,
    gitlab: `glpat-bench-${randomUUID()}`,
    webhook: `bench-webhook-${randomUUID()}`,
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), "geb-bench-drift-"));
  const files = {
    policy: path.join(dir, "policy.yaml"),
    entra: path.join(dir, "entra-seed.json"),
    gitlab: path.join(dir, "gitlab-seed.json"),
  };
  writeFileSync(files.policy, policyYaml);
  writeFileSync(files.entra, JSON.stringify(world.entra));
  writeFileSync(files.gitlab, JSON.stringify(world.gitlab));
  const children: Child[] = [];
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const maintenance = new Queue(QUEUES.maintenance, { connection: redis, prefix });
  const others = [QUEUES.events, QUEUES.reports].map((q) => new Queue(q, { connection: redis, prefix }));
  const eventsConnection = redis.duplicate();
  const events = new QueueEvents(QUEUES.maintenance, { connection: eventsConnection, prefix });
  try {
    const entra = await startNode(
      SIMULATORS,
      ["entra"],
      {
        SIM_TENANT_ID: SANDBOX.tenantId,
        SIM_CLIENT_ID: SANDBOX.botClientId,
        SIM_CLIENT_SECRET: secrets.client,
        SIM_GROUPS: [SANDBOX.productionGroup, SANDBOX.stagingGroup].join(","),
        SIM_LATENCY_MS: String(LATENCY),
        SIM_SEED_FILE: files.entra,
      },
      [],
      SIM_READY,
    );
    children.push(entra);
    const gitlab = await startNode(
      SIMULATORS,
      ["gitlab"],
      { SIM_TOKEN: secrets.gitlab, SIM_PROJECTS: "0", SIM_SEED_FILE: files.gitlab },
      [],
      SIM_READY,
    );
    children.push(gitlab);
    await seedRegistry(redis, prefix, world);
    const worker = await startNode(
      MAIN,
      ["--role=worker"],
      {
        ...botEnv({ prefix, policyFile: files.policy, gitlabUrl: gitlab.url, entraUrl: entra.url, secrets }),
        DRIFT_SWEEP_MODE: mode,
        ...(process.env.DRIFT_CHUNK_SIZE ? { DRIFT_CHUNK_SIZE: process.env.DRIFT_CHUNK_SIZE } : {}),
        ...(WRITES_PER_SECOND ? { GRAPH_WRITES_PER_SECOND: WRITES_PER_SECOND } : {}),
        GRAPH_READS_PER_WRITE: READS_PER_WRITE,
      },
      WORKER_FLAGS,
      WORKER_READY,
    );
    children.push(worker);
    await events.waitUntilReady();

    const entraStats = () => getJson<SimStats>(entra.ready[2] ?? "");
    const gitlabStats = () => getJson<GitLabStats>(gitlab.ready[2] ?? "");
    const out: Sweep[] = [];
    for (let i = 0; i < sweeps; i++) {
      const before = { entra: await entraStats(), gitlab: await gitlabStats() };
      const { ms, answer } = await sweepOnce(maintenance, events);
      await settle(others);
      const after = { entra: await entraStats(), gitlab: await gitlabStats() };
      const stored = await redis.get(`${prefix}:drift:last`);
      const summary = (
        stored ? JSON.parse(stored) : ((answer as { summary?: unknown } | undefined)?.summary ?? answer ?? {})
      ) as Record<string, unknown>;
      const state = entraStateSchema.parse(await getJson(`${entra.ready[2]}/state`));
      out.push({
        ms,
        entra: minus(after.entra, before.entra),
        gitlab: minus(after.gitlab, before.gitlab),
        summary,
        verdict: verify(state, world.identities),
      });
    }
    return {
      mode,
      projects: new Set(world.identities.map((i) => i.projectId)).size,
      identities: world.identities.length,
      sweeps: out,
      workerRssMb: worker.peakRssMb(),
    };
  } finally {
    for (const c of [...children].reverse()) await c.stop();
    await events.close();
    eventsConnection.disconnect();
    await maintenance.close();
    for (const q of others) await q.close();
    await deletePrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}

const { yaml, policy, environmentRetention } = benchPolicy();
const world = buildWorld(PROJECTS, policy);
const bulk = await run(world, "bulk", 2, yaml);
const baseline = await run(subsetWorld(world, BASELINE), "per-project", 2, yaml);

const [repair, clean] = bulk.sweeps as [Sweep, Sweep];
const [base, baseClean] = baseline.sweeps as [Sweep, Sweep];
const per = (n: number, r: Run) => (n / r.identities).toFixed(3);
const seconds = (ms: number) => (ms / 1000).toFixed(1);
const num = (v: unknown) => (typeof v === "number" ? String(v) : "?");
const kinds = (v: Verdict) =>
  [...DRIFT_KINDS, "none" as const].map((k) => `${k} ${v.byKind[k].ok}/${v.byKind[k].total}`).join(", ");
const allOk = (v: Verdict) =>
  Object.values(v.byKind).every((t) => t.ok === t.total) && v.unexpectedApps === 0;
const col = (s: Sweep, r: Run) => [
  `${r.projects} / ${r.identities}`,
  `${s.entra.httpRequests} (${per(s.entra.httpRequests, r)})`,
  `${s.entra.batchEnvelopes} / ${s.entra.batchItems}`,
  `${s.entra.itemsRead} (${per(s.entra.itemsRead, r)})`,
  `${s.entra.writes}`,
  `${s.gitlab.requests} (${s.gitlab.writes})`,
  `${seconds(s.ms)} (${Math.round(r.identities / (s.ms / 1000))}/s)`,
  `${num(s.summary.driftFound)} / ${num(s.summary.repaired)} / ${num(s.summary.renamed)} / ${num(s.summary.environmentsRemoved)}`,
  kinds(s.verdict),
  `${s.verdict.environmentDeleted.removed} / ${s.verdict.environmentDeleted.disabled} / ${s.verdict.environmentDeleted.live}`,
  `${s.verdict.unexpectedApps}`,
];
const labels = [
  "projects / identities",
  "Graph HTTP requests ($batch = 1) (per identity)",
  "$batch envelopes / items",
  "Graph objects read (per identity)",
  "Graph writes",
  "GitLab requests (writes)",
  "wall time, s (identities/s)",
  "bot's summary: changes found / made, projects renamed, environments removed",
  "as desired afterwards, by drift kind (simulators' state)",
  "deleted environments: app removed / credentials gone / still live",
  "apps nobody expects",
];
const columns = [col(repair, bulk), col(clean, bulk), col(base, baseline), col(baseClean, baseline)];
/** Per identity, per-project over bulk: like for like, repair sweep against repair sweep, clean against clean. */
const ratioOf = (p: Sweep, b: Sweep) =>
  p.entra.httpRequests / baseline.identities / (b.entra.httpRequests / bulk.identities || Number.NaN);
const ratio = ratioOf(base, repair);
const cleanRatio = ratioOf(baseClean, clean);
const cleanBudgetMs = (120_000 * bulk.identities) / TARGETS.identitiesPerTwoMinutes;
const rss = Math.max(bulk.workerRssMb, baseline.workerRssMb);
const checks: Array<[boolean, string]> = [
  [
    cleanRatio >= TARGETS.requestRatio,
    `Graph HTTP requests per identity, sweeps with nothing to repair: per-project ${per(baseClean.entra.httpRequests, baseline)} / bulk ${per(clean.entra.httpRequests, bulk)} = ${cleanRatio.toFixed(1)} x fewer (target >= ${TARGETS.requestRatio} x)`,
  ],
  [
    ratio >= TARGETS.requestRatio,
    `Graph HTTP requests per identity, sweeps repairing 5 % of identities: per-project ${per(base.entra.httpRequests, baseline)} / bulk ${per(repair.entra.httpRequests, bulk)} = ${ratio.toFixed(1)} x fewer (target >= ${TARGETS.requestRatio} x; the writes, ${per(repair.entra.writes, bulk)} per identity, are the same in both modes)`,
  ],
  [
    allOk(repair.verdict),
    `every injected drift repaired and nothing else changed, judged by the simulators' state${environmentRetention ? "" : " (this bot has no retainStoppedEnvironmentDays: deleted environments are not cleaned up)"}${repair.verdict.examples.length ? `; e.g. ${repair.verdict.examples.join("; ")}` : ""}`,
  ],
  [
    clean.entra.writes + clean.gitlab.writes === 0 && (clean.summary.driftFound ?? 0) === 0,
    `second sweep: ${clean.entra.writes} Graph + ${clean.gitlab.writes} GitLab writes, drift found ${num(clean.summary.driftFound)} (target 0)`,
  ],
  [
    clean.ms <= cleanBudgetMs,
    `sweep of ${bulk.identities} identities (nothing to repair): ${seconds(clean.ms)} s (target < ${seconds(cleanBudgetMs)} s, i.e. 20,000 in 2 minutes); with repairs: ${seconds(repair.ms)} s`,
  ],
  [
    rss < TARGETS.workerRssMb,
    `worker peak RSS ${rss.toFixed(0)} MB (bulk ${bulk.workerRssMb.toFixed(0)}, per-project ${baseline.workerRssMb.toFixed(0)}; target < ${TARGETS.workerRssMb})`,
  ],
];
const lines = [
  `bench:drift  ${machine()}`,
  `${PROJECTS} projects x 2 environments seeded; 1 % of identities drifted per kind; Graph ${LATENCY} ms per HTTP call; ` +
    `one worker, GRAPH_WRITES_PER_SECOND ${WRITES_PER_SECOND ?? "default"}, GRAPH_READS_PER_WRITE ${READS_PER_WRITE}; baseline sample ${BASELINE} projects`,
  "",
  row([
    "",
    "bulk: sweep 1 (repairs)",
    "bulk: sweep 2 (clean)",
    `per-project: ${BASELINE} projects (repairs)`,
    `per-project: ${BASELINE} projects (clean)`,
  ]),
  row(["---", "---", "---", "---", "---"]),
  ...labels.map((label, i) => row([label, ...columns.map((c) => c[i] ?? "")])),
  "",
  ...checks.map(([ok, text]) => `${ok ? "PASS" : "FAIL"}  ${text}`),
  "",
  `bot's summary, sweep 1: ${JSON.stringify(repair.summary)}`,
];
process.stdout.write(`${lines.join("\n")}\n`);
process.exitCode = checks.every(([ok]) => ok) ? 0 : 1;
