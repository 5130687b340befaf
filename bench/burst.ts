/**
 * bench:burst — a group migration: 1,000 project_create webhooks at once, the sandbox policy (what it onboards per project is derived from it), a
 * Graph simulator with 30 ms per call and a tenant write budget of 50/s (429 + Retry-After beyond it), one api
 * and two worker processes on real Redis. Can the bot onboard them as fast as the throttle allows, without
 * being told 429, without duplicates, within its memory budget?
 *
 *   npm run bench:burst                               # full size (about 3.5 minutes)
 *   BENCH_SCALE=0.05 npm run bench:burst              # smoke size (50 projects)
 *   BENCH_SIM_WRITES_PER_SECOND=20 BENCH_WRITES_PER_SECOND=19 npm run bench:burst
 *   BENCH_PROFILE=1 ...                               # workers write .cpuprofile files to a temp dir
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  COST_PER_PROJECT,
  machine,
  REQUESTS_PER_PROJECT,
  row,
  runOnboarding,
  WRITES_PER_PROJECT,
} from "./lib/onboarding.ts";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const PROJECTS = Math.max(10, Math.round(1000 * SCALE));
const SIM_WPS = Number(process.env.BENCH_SIM_WRITES_PER_SECOND ?? 50);
// Just under the tenant's budget: the simulator's bucket keeps a little headroom for network jitter.
const PACE = Number(process.env.BENCH_WRITES_PER_SECOND ?? Math.max(1, Math.floor(SIM_WPS * 0.96)));
const CONCURRENCY = Number(process.env.BENCH_WORKER_CONCURRENCY ?? 8);
const LATENCY = Number(process.env.BENCH_GRAPH_LATENCY_MS ?? 30);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const profileDir = process.env.BENCH_PROFILE ? mkdtempSync(path.join(os.tmpdir(), "geb-burst-prof-")) : "";

const r = await runOnboarding({
  projects: PROJECTS,
  workers: WORKERS,
  concurrency: CONCURRENCY,
  paceWritesPerSecond: PACE,
  simWritesPerSecond: SIM_WPS,
  graphLatencyMs: LATENCY,
  ...(profileDir ? { workerNodeFlags: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {}),
});

const writesNeeded = PROJECTS * WRITES_PER_PROJECT;
const lowerBoundS = writesNeeded / SIM_WPS;
const totalS = r.totalMs / 1000;
const perProject = r.entra.graphRequests / PROJECTS;
const throttledShare = r.entra.graphRequests ? r.entra.throttled / r.entra.graphRequests : 0;
// Expected identities, FICs and group members: what the policy the bot runs with asks for (onboardingCost).
const expectedApps = PROJECTS * COST_PER_PROJECT.identities;
const expectedFics = PROJECTS * COST_PER_PROJECT.fics;
const expectedMembers = (group: string) => PROJECTS * (COST_PER_PROJECT.groups[group.toLowerCase()] ?? 0);
const groupIds = [
  ...new Set([...Object.keys(r.entra.groupMembers), ...Object.keys(COST_PER_PROJECT.groups)]),
];
const groups = groupIds.map((g) => r.entra.groupMembers[g] ?? 0);
const groupsAsExpected = groupIds.every((g) => (r.entra.groupMembers[g] ?? 0) === expectedMembers(g));
const peakRss = Math.max(...r.workerRssMb);

const lines = [
  `bench:burst  ${machine()}`,
  `${PROJECTS} project_create webhooks at once; sandbox policy: ${COST_PER_PROJECT.identities} identities, ${COST_PER_PROJECT.fics} FICs, ${WRITES_PER_PROJECT} writes per project; ` +
    `Graph: ${LATENCY} ms per call, ${SIM_WPS} writes/s then 429; bot: ${WORKERS} workers x concurrency ${CONCURRENCY}, ` +
    `GRAPH_WRITES_PER_SECOND=${PACE}`,
  "",
  row(["", "measured", "target"]),
  row(["---", "---", "---"]),
  row([
    "total time: first webhook -> last report in GitLab (s)",
    `${totalS.toFixed(1)} (${(totalS / lowerBoundS).toFixed(2)} x lower bound)`,
    "<= 1.25 x lower bound",
  ]),
  row([
    "throttle lower bound: writes needed / allowed rate (s)",
    `${writesNeeded} / ${SIM_WPS} = ${lowerBoundS.toFixed(1)}`,
    "",
  ]),
  row([
    "Entra work done (s) / intake of the burst (s)",
    `${(r.entraMs / 1000).toFixed(1)} / ${(r.intakeMs / 1000).toFixed(1)}`,
    "(information)",
  ]),
  row([
    "Graph requests per project (reads + writes)",
    `${perProject.toFixed(2)} (${r.entra.reads} + ${r.entra.writes})`,
    `<= 1.1 x ${REQUESTS_PER_PROJECT} = ${(1.1 * REQUESTS_PER_PROJECT).toFixed(1)}`,
  ]),
  row([
    "429s received",
    `${r.entra.throttled} (${(throttledShare * 100).toFixed(2)} % of requests)`,
    "<= 5 %",
  ]),
  row([
    "webhooks accepted / onboarding jobs / reports",
    `${r.accepted} / ${r.completedEvents} / ${r.completedReports}`,
    `${PROJECTS} each`,
  ]),
  row(["jobs failed", r.failedJobs, "0"]),
  row([
    "apps (distinct identities, duplicates) / SPs",
    `${r.entra.apps} (${r.entra.identities}, ${r.entra.duplicateApps}) / ${r.entra.servicePrincipals}`,
    `exactly ${expectedApps}, no duplicates`,
  ]),
  row(["FICs (duplicates)", `${r.entra.fics} (${r.entra.ficDuplicates})`, `${expectedFics}, no duplicates`]),
  row(["group members (by group)", groups.join(" / "), groupIds.map(expectedMembers).join(" / ")]),
  row(["GitLab API requests (writes)", `${r.gitlab.requests} (${r.gitlab.writes})`, "(information)"]),
  row(["worker peak RSS (MB)", r.workerRssMb.map((m) => m.toFixed(0)).join(" / "), "<= 300 each"]),
  row(["api peak RSS (MB)", r.apiRssMb.toFixed(0), "(information)"]),
];
process.stdout.write(`${lines.join("\n")}\n`);
if (process.env.BENCH_VERBOSE || profileDir) {
  process.stdout.write("\nGraph requests by operation:\n");
  for (const [op, n] of Object.entries(r.entra.byOperation).sort((a, b) => b[1] - a[1])) {
    process.stdout.write(`  ${String(n).padStart(6)}  ${op}\n`);
  }
  if (profileDir) process.stdout.write(`worker CPU profiles: ${profileDir}\n`);
}
const verdicts = [
  ["total time <= 1.25 x throttle lower bound", totalS <= 1.25 * lowerBoundS],
  ["429s <= 5 % of Graph requests", throttledShare <= 0.05],
  [
    "zero failed jobs",
    r.failedJobs === 0 && r.completedEvents === PROJECTS && r.completedReports === PROJECTS,
  ],
  [
    `exactly ${expectedApps} apps and ${expectedFics} FICs, no duplicates`,
    r.entra.apps === expectedApps &&
      r.entra.identities === expectedApps &&
      r.entra.duplicateApps === 0 &&
      r.entra.fics === expectedFics &&
      r.entra.ficDuplicates === 0 &&
      groupsAsExpected,
  ],
  ["Graph requests per project <= 1.1 x minimum", perProject <= 1.1 * REQUESTS_PER_PROJECT],
  ["worker RSS <= 300 MB each", peakRss <= 300],
] as const;
process.stdout.write("\n");
for (const [what, ok] of verdicts) process.stdout.write(`${ok ? "PASS" : "FAIL"}  ${what}\n`);
process.exitCode = verdicts.every(([, ok]) => ok) ? 0 : 1;
