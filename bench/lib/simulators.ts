/**
 * Runs one simulator as its own process for the benchmarks, so its CPU is not the bot's:
 *
 *   node bench/lib/simulators.ts entra    # SIM_TENANT_ID, SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_GROUPS (ids, csv),
 *                                         # SIM_LATENCY_MS, SIM_WRITES_PER_SECOND (0 = unthrottled),
 *                                         # SIM_SEED_FILE (optional: a DirectorySeed as JSON, entra-sim/seed.ts)
 *   node bench/lib/simulators.ts gitlab   # SIM_TOKEN, SIM_PROJECTS (n projects bench/p-1..n, ids 1..n),
 *                                         # SIM_SEED_FILE (optional: {"projects": [ProjectSeed], "renames":
 *                                         # [{"id", "path"}]}, renames applied after the seed, without events)
 *
 * Prints one JSON line {"url":"https://localhost:PORT","stats":"http://127.0.0.1:PORT"} once listening. The
 * stats server (127.0.0.1 only) answers GET / with a summary the benchmark checks: Graph requests by kind and
 * operation, 429s, apps, FICs and duplicates (entra); API requests and writes (gitlab). GET /state answers the
 * simulator's directory or projects as plain data, for a benchmark to check the final state itself.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { type DirectorySeed, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { type ProjectSeed, startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};

/** Collapses ids so operations can be counted: "PATCH /applications/{id}/federatedIdentityCredentials(…)". */
function shape(path: string): string {
  return path
    .replace(/^\/(v1\.0|beta)/, "")
    .replace(/\([^)]*\)/g, "(…)")
    .replace(/\/[0-9a-f]{8}-[0-9a-f-]{27,}/gi, "/{id}");
}

function serveStats(summary: () => unknown, state: () => unknown = () => ({})): Promise<string> {
  const server = http.createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(req.url === "/state" ? state() : summary()));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

function seedFile(): unknown {
  const file = process.env.SIM_SEED_FILE;
  return file ? JSON.parse(readFileSync(file, "utf8")) : undefined;
}

const gitlabSeedSchema = z.object({
  projects: z.array(z.custom<ProjectSeed>((v) => typeof v === "object" && v !== null)),
  renames: z.array(z.object({ id: z.number().int(), path: z.string() })).default([]),
});

async function entra(): Promise<{ url: string; stats: string }> {
  const groups = env("SIM_GROUPS", "")
    .split(",")
    .filter(Boolean)
    .map((id, i) => ({ id, displayName: `bench-group-${i}` }));
  const sim = await startEntraSimulator({
    tenantId: env("SIM_TENANT_ID"),
    bot: { clientId: env("SIM_CLIENT_ID"), clientSecret: env("SIM_CLIENT_SECRET") },
    groups,
    latencyMs: Number(env("SIM_LATENCY_MS", "0")),
  });
  const seed = seedFile();
  if (seed !== undefined) sim.seed(seed as DirectorySeed);
  const wps = Number(env("SIM_WRITES_PER_SECOND", "0"));
  if (wps > 0) sim.faults.throttle = { writesPerSecond: wps };
  const stats = await serveStats(
    () => {
      const ops = sim.stats.requests.filter((r) => r.kind === "graph" || r.kind === "batch-item");
      const byOperation: Record<string, number> = {};
      for (const r of ops) {
        const k = `${r.method} ${shape(r.path)}${r.status === 429 ? " -> 429" : ""}`;
        byOperation[k] = (byOperation[k] ?? 0) + 1;
      }
      const identities = new Map<string, number>();
      let fics = 0;
      let ficDuplicates = 0;
      for (const app of sim.state.applications.values()) {
        const key = app.tags
          .filter((t) => t.startsWith("gitlab-project:") || t.startsWith("gitlab-env:"))
          .sort()
          .join(" ");
        identities.set(key, (identities.get(key) ?? 0) + 1);
        fics += app.fics.length;
        const subjects = new Set(app.fics.map((f) => `${f.issuer} ${f.subject}`));
        ficDuplicates += app.fics.length - subjects.size;
      }
      const http = sim.stats.requests.filter((r) => r.kind === "graph" || r.kind === "batch");
      return {
        graphRequests: ops.length,
        // What Graph's request budget counts: a $batch envelope is one HTTP request however many items it holds.
        httpRequests: http.length,
        batchEnvelopes: http.length - http.filter((r) => r.kind === "graph").length,
        batchItems: ops.filter((r) => r.kind === "batch-item").length,
        // Objects read: one per GET of one object, the objects returned by a GET of a list.
        itemsRead: ops.filter((r) => r.method === "GET").reduce((n, r) => n + (r.items ?? 1), 0),
        reads: sim.stats.reads(),
        writes: sim.stats.writes(),
        throttled: sim.stats.throttled(),
        logins: sim.stats.requests.filter((r) => r.kind === "login").length,
        byOperation,
        apps: sim.state.applications.size,
        // The bot's own service principal is in the tenant too; count only the ones it made.
        servicePrincipals: sim.state.servicePrincipals.size - 1,
        identities: identities.size,
        duplicateApps: [...identities.values()].reduce((n, c) => n + c - 1, 0),
        fics,
        ficDuplicates,
        groupMembers: Object.fromEntries([...sim.state.groups.values()].map((g) => [g.id, g.members.size])),
      };
    },
    () => ({
      botServicePrincipalId: sim.botServicePrincipalId,
      applications: [...sim.state.applications.values()].map((a) => ({
        id: a.id,
        appId: a.appId,
        displayName: a.displayName,
        tags: a.tags,
        owners: a.owners,
        fics: a.fics.map((f) => ({
          name: f.name,
          issuer: f.issuer,
          subject: f.subject,
          audiences: f.audiences,
        })),
      })),
      servicePrincipals: [...sim.state.servicePrincipals.values()].map((sp) => ({
        id: sp.id,
        appId: sp.appId,
        accountEnabled: sp.accountEnabled,
      })),
      groups: Object.fromEntries([...sim.state.groups.values()].map((g) => [g.id, [...g.members]])),
    }),
  );
  return { url: sim.url, stats };
}

async function gitlab(): Promise<{ url: string; stats: string }> {
  const n = Number(env("SIM_PROJECTS", "0"));
  const sim = await startGitLabSimulator({
    token: env("SIM_TOKEN"),
    botUser: { id: 99, username: "entra-bot", name: "Entra bot" },
    users: [{ id: 2, username: "alice", name: "Alice" }],
  });
  for (let i = 1; i <= n; i++) sim.addProject({ id: i, path: `bench/p-${i}`, members: { 2: 50 } });
  const raw = seedFile();
  if (raw !== undefined) {
    const seed = gitlabSeedSchema.parse(raw);
    sim.addProjects(seed.projects);
    for (const r of seed.renames) sim.renameProject(r.id, r.path);
  }
  const stats = await serveStats(
    () => ({
      requests: sim.stats.requests,
      writes: sim.stats.writes,
      issues: sim.state.projects.reduce((k, p) => k + p.issues.length, 0),
      variables: sim.state.projects.reduce((k, p) => k + p.variables.length, 0),
    }),
    () => ({
      projects: sim.state.projects.map((p) => ({
        id: p.id,
        path: p.path,
        environments: p.environments.map((e) => ({ name: e.name, state: e.state })),
      })),
    }),
  );
  return { url: sim.url, stats };
}

const which = process.argv[2];
const out = which === "entra" ? await entra() : which === "gitlab" ? await gitlab() : undefined;
if (!out) {
  process.stderr.write("usage: node bench/lib/simulators.ts entra|gitlab\n");
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.on("SIGTERM", () => process.exit(0));
