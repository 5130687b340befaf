/**
 * bench:scale — how onboarding throughput grows with worker processes and concurrency when Graph is
 * latency-bound (30 ms per call) and unthrottled (no 429s, no pacing). Each configuration gets fresh
 * simulators, a fresh queue prefix and the same burst of project_create webhooks; throughput is projects
 * onboarded in Entra per second, and the ratio is against the first configuration.
 *
 *   npm run bench:scale                                   # full size (about 2 minutes)
 *   BENCH_SCALE=0.1 npm run bench:scale                   # smoke size
 *   BENCH_CONFIGS=1x8,2x8,4x8 npm run bench:scale         # workers x WORKER_CONCURRENCY
 */
import { machine, REQUESTS_PER_PROJECT, type RunResult, row, runOnboarding } from "./lib/onboarding.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const PROJECTS = Math.max(20, Math.round(400 * SCALE));
const LATENCY = Number(process.env.BENCH_GRAPH_LATENCY_MS ?? 30);
const CONFIGS = (process.env.BENCH_CONFIGS ?? "1x8,2x8,4x8,1x32,2x32,4x32").split(",").map((c) => {
  const [w, k] = c.split("x").map(Number);
  if (!w || !k) throw new Error(`BENCH_CONFIGS entries look like 2x8 (workers x concurrency), got "${c}"`);
  return { workers: w, concurrency: k };
});

const results: RunResult[] = [];
for (const c of CONFIGS) {
  results.push(
    await runOnboarding({
      projects: PROJECTS,
      workers: c.workers,
      concurrency: c.concurrency,
      paceWritesPerSecond: 0,
      simWritesPerSecond: 0,
      graphLatencyMs: LATENCY,
    }),
  );
}

const base = results[0];
const throughput = (r: RunResult) => PROJECTS / (r.entraMs / 1000);
// The latency bound: every slot runs one project's 11 Graph calls one after another.
const latencyBound = (r: RunResult) =>
  (r.options.workers * r.options.concurrency) / ((REQUESTS_PER_PROJECT * LATENCY) / 1000);
const lines = [
  `bench:scale  ${machine()}`,
  `${PROJECTS} project_create webhooks per configuration; Graph ${LATENCY} ms per call, unthrottled, no pacing; ` +
    "CPU = seconds used per 100 projects",
  "",
  row([
    "workers x concurrency",
    "projects/s (Entra)",
    "ratio",
    "latency bound (projects/s)",
    "with reports (projects/s)",
    "CPU workers",
    "CPU Entra sim",
    "CPU GitLab sim",
    "CPU api",
    "CPU Redis",
    "failed",
    "worker RSS (MB)",
  ]),
  row(["---", "---", "---", "---", "---", "---", "---", "---", "---", "---", "---", "---"]),
  ...results.map((r) => {
    const per100 = (s: number) => ((s * 100) / PROJECTS).toFixed(1);
    return row([
      `${r.options.workers} x ${r.options.concurrency}`,
      throughput(r).toFixed(1),
      base ? `${(throughput(r) / throughput(base)).toFixed(2)} x` : "",
      latencyBound(r).toFixed(0),
      (PROJECTS / (r.totalMs / 1000)).toFixed(1),
      per100(r.cpu.workers.reduce((a, b) => a + b, 0)),
      per100(r.cpu.entraSim),
      per100(r.cpu.gitlabSim),
      per100(r.cpu.api),
      per100(r.cpu.redis),
      r.failedJobs,
      Math.max(...r.workerRssMb).toFixed(0),
    ]);
  }),
];
process.stdout.write(`${lines.join("\n")}\n`);
const ok = results.every(
  (r) => r.failedJobs === 0 && r.completedEvents === PROJECTS && r.entra.apps === 2 * PROJECTS,
);
process.stdout.write(`\n${ok ? "PASS" : "FAIL"}  every configuration onboarded every project exactly once\n`);
process.exitCode = ok ? 0 : 1;
