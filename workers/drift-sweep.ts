import type { Job } from "bullmq";
import { z } from "zod";
import { EntraError } from "../src/entra/errors.ts";
import type { BulkRead, GraphApplication, GraphServicePrincipal } from "../src/entra/graph.ts";
import { snapshotGraph } from "../src/entra/graph-snapshot.ts";
import type { GitLabProject } from "../src/gitlab/api.ts";
import type { Logger } from "../src/logging.ts";
import { withLock } from "../src/onboarding/lock.ts";
import { BOT_TAG, parseIdentityTags, projectTag } from "../src/onboarding/naming.ts";
import { type OnboardingDeps, projectStatus } from "../src/onboarding/onboard.ts";
import type { IdentityPin, RegisteredProject } from "../src/onboarding/registry.ts";
import { settledSubjectLayout } from "../src/onboarding/subject-components.ts";
import type { OnboardResult } from "../src/onboarding/types.ts";
import type { ProjectBinding } from "../src/policy/protection.ts";
import {
  type DriftJobResult,
  type DriftReport,
  driftTrigger,
  emptyReport,
  lastSweepKey,
  purgeRetired,
  repairPlanned,
  repairProject,
} from "./drift.ts";
import { cleanUpEnvironments } from "./environment-cleanup.ts";
import { recordFindings } from "./findings.ts";
import { createWorkContext, type WorkContext } from "./handlers/context.ts";
import type { WorkerRuntime } from "./runtime.ts";

/**
 * Drift repair at organisation scale (DRIFT_SWEEP_MODE=bulk). The per-project loop costs about five Graph
 * reads per identity and one GitLab read per project, one after another; at 10,000 projects that is hours.
 * The bulk sweep reads the same facts in bulk and decides per project with the same code:
 *
 * - Entra: one paged listing of every app tagged as the bot's (999 per page, what getApplication reads), then
 *   per chunk the owners, service principal, federated credentials and memberships of each pinned identity
 *   through $batch (20 reads per request), paced on the shared Graph budget at low priority (pacer.ts
 *   acquireSpare: onboarding's writes always find the other half of the bucket).
 * - GitLab: the bot's projects in pages of 100 by ascending id (membership=true), instead of one read each.
 * - Each project is planned against that read-ahead (graph-snapshot.ts, which cannot write). A project whose
 *   listing entry, token layout or plan is not plainly in order (moved, missing, pending deletion, a layout
 *   to establish, any difference) goes through repairProject, the per-project path with live reads only, so
 *   every repair and every fail-closed decision is made exactly as the per-project loop makes it.
 *
 * The sweep runs as a chain of chunk jobs (DRIFT_CHUNK_SIZE projects each) over the registry's ids in order;
 * the cursor and the running report live in Redis, so a killed worker's chunk is redone (idempotently) by the
 * job's retry or the next scheduled run, and no job runs for hours. One sweep at a time (a lease).
 */

const STATE_TTL_S = 24 * 3600;
/**
 * An app listing older than this is taken again before the next chunk plans from it. The sweep itself goes on
 * from its cursor: starting over would leave the projects late in the order unchecked for as long as sweeps
 * keep taking longer than this (a freed path there would keep its credentials).
 */
const STALE_MS = 12 * 3600 * 1000;
const PLAN_CONCURRENCY = 8;
const GITLAB_PAGE = 100;
export const DRIFT_CHUNK_JOB = "drift-repair-chunk";

const stateSchema = z.object({
  id: z.string(),
  startedAt: z.string(),
  cursor: z.coerce.number().int(),
  listed: z.enum(["0", "1"]),
  /** When the app listing the chunks plan from was taken (absent: at startedAt). */
  listedAt: z.string().optional(),
  report: z.string(),
});
type SweepState = z.infer<typeof stateSchema>;

const keys = (prefix: string, id = "") => ({
  state: `${prefix}:drift:sweep`,
  lock: `${prefix}:drift:sweep:lock`,
  apps: `${prefix}:drift:sweep:${id}:apps`,
  tagged: `${prefix}:drift:sweep:${id}:tagged`,
  sps: `${prefix}:drift:sweep:${id}:sps`,
});

const storedApp = z.object({
  id: z.string(),
  appId: z.string(),
  displayName: z.string(),
  tags: z.array(z.string()),
  credentialCount: z.number().optional(),
});

/** One chunk of the current sweep (starting one if none runs); see the module comment. */
export async function sweepChunk(rt: WorkerRuntime, job: Job, log: Logger): Promise<DriftJobResult> {
  const prefix = rt.config.queuePrefix;
  try {
    return await withLock(rt.redis, keys(prefix).lock, () => runChunk(rt, job, log), {
      leaseMs: 60_000,
      waitMs: 0,
    });
  } catch (err) {
    if (err instanceof EntraError && err.code === "LOCK_TIMEOUT") {
      // Another job holds this sweep's lease: its chain continues the sweep; this one has nothing to do.
      await job.log("drift repair: a sweep is already running on another job; nothing to do");
      return { ...emptyReport("bulk"), done: false, busy: true, sweepId: "" };
    }
    throw err;
  }
}

async function runChunk(rt: WorkerRuntime, job: Job, log: Logger): Promise<DriftJobResult> {
  const prefix = rt.config.queuePrefix;
  const ctx = createWorkContext(rt, driftTrigger(job), job, log, "drift");
  let state = await loadState(rt, prefix);
  if (!state) state = await startSweep(rt, prefix, job);
  const k = keys(prefix, state.id);
  const report: DriftReport = JSON.parse(state.report) as DriftReport;

  if (state.listed !== "1" || Date.now() - Date.parse(state.listedAt ?? state.startedAt) > STALE_MS) {
    // One registry read for both listings: they keep only what it pins.
    const registered = await rt.registry.list();
    await listApps(rt, k, registered);
    await listPrincipals(rt, k, registered);
    state.listed = "1";
    state.listedAt = new Date().toISOString();
    await rt.redis.hset(k.state, "listed", "1", "listedAt", state.listedAt);
  }

  const all = await rt.registry.ids();
  const chunk = all.filter((id) => id > state.cursor).slice(0, rt.config.drift.chunkSize);
  if (chunk.length > 0) {
    await sweepProjects(ctx, k, chunk, report);
    state.cursor = chunk[chunk.length - 1] as number;
    state.report = JSON.stringify(report);
    // Saved per chunk, not per project: a chunk retried after part of it was repaired counts what its retry
    // finds (the repairs of the failed attempt are in the metrics and the audit trail, not in this summary).
    // The TTL runs from the last chunk: a long sweep's state must not expire under it (it would start over).
    await rt.redis
      .multi()
      .hset(k.state, "cursor", String(state.cursor), "report", state.report)
      .expire(k.state, STATE_TTL_S)
      .exec();
  }
  const sweepId = state.id;
  if (all.some((id) => id > state.cursor)) {
    // The next chunk as its own job; the id makes a repeated add (this job retried) a no-op.
    await rt.queues.maintenance.add(
      DRIFT_CHUNK_JOB,
      { sweepId },
      { jobId: `drift-sweep-${sweepId}-${state.cursor}`, removeOnComplete: 100, removeOnFail: 100 },
    );
    await job.log(`drift repair: chunk done up to project ${state.cursor}: ${JSON.stringify(report)}`);
    return { ...report, done: false, sweepId };
  }

  report.purged = await purgeRetired(ctx);
  const result: DriftJobResult = { ...report, done: true, sweepId };
  await rt.redis
    .multi()
    .set(
      lastSweepKey(prefix),
      JSON.stringify({ ...result, startedAt: state.startedAt, finishedAt: new Date().toISOString() }),
    )
    .del(k.state, k.apps, k.tagged, k.sps)
    .exec();
  await job.log(`drift repair: ${JSON.stringify(report)}`);
  return result;
}

async function loadState(rt: WorkerRuntime, prefix: string): Promise<SweepState | undefined> {
  const raw = await rt.redis.hgetall(keys(prefix).state);
  const parsed = stateSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

async function startSweep(rt: WorkerRuntime, prefix: string, job: Job): Promise<SweepState> {
  const old = await loadState(rt, prefix);
  const state: SweepState = {
    id: String(job.id ?? Date.now()).replace(/[^A-Za-z0-9_-]/g, "-"),
    startedAt: new Date().toISOString(),
    cursor: 0,
    listed: "0",
    report: JSON.stringify(emptyReport("bulk")),
  };
  const k = keys(prefix, state.id);
  const tx = rt.redis.multi();
  if (old) tx.del(keys(prefix, old.id).apps, keys(prefix, old.id).tagged, keys(prefix, old.id).sps);
  await tx.del(k.state).hset(k.state, state).expire(k.state, STATE_TTL_S).exec();
  return state;
}

/** In the tagged hash: the listing cannot answer this project's tag search (an app the registry does not pin). */
const SEARCH_LIVE = "live";

/**
 * Every app carrying the bot's marker tag, in pages of 999, of which only the apps the registry pins are kept
 * (in Redis, for the sweep's later chunks). Anyone can register apps with the bot's tags, as many as they like:
 * keeping them all would make the sweep's memory and Redis (noeviction) grow with the attacker's effort. A
 * registered project that other apps are tagged for (look-alikes: reported, never used) has its tag search
 * marked SEARCH_LIVE, so its plan searches live as the per-project loop does and reports the same findings.
 */
async function listApps(rt: WorkerRuntime, k: ReturnType<typeof keys>, registered: RegisteredProject[]) {
  const pace = paceReads(rt);
  const pinned = new Set(registered.flatMap((p) => Object.values(p.environments).map((e) => e.appObjectId)));
  const projects = new Set(registered.map((p) => p.projectId));
  const byProject = new Map<number, string[]>();
  const searchLive = new Set<number>();
  const apps = await rt.graph.listApplicationsWithTag(BOT_TAG, {
    ...(pace ? { pace } : {}),
    keep: (app) => {
      const mine = pinned.has(app.id);
      const pid = parseIdentityTags(app.tags)?.projectId;
      if (pid !== undefined && projects.has(pid)) {
        if (mine) byProject.set(pid, [...(byProject.get(pid) ?? []), app.id]);
        else searchLive.add(pid);
      }
      return mine;
    },
  });
  const tx = rt.redis.multi().del(k.apps, k.tagged);
  for (let i = 0; i < apps.length; i += 1000) {
    const slice = apps.slice(i, i + 1000);
    tx.hset(k.apps, Object.fromEntries(slice.map((a) => [a.id, JSON.stringify(a)])));
  }
  const tagged: [number, string][] = [
    ...[...byProject.entries()]
      .filter(([pid]) => !searchLive.has(pid))
      .map(([pid, ids]) => [pid, JSON.stringify(ids)] as [number, string]),
    ...[...searchLive].map((pid) => [pid, SEARCH_LIVE] as [number, string]),
  ];
  for (let i = 0; i < tagged.length; i += 1000) {
    tx.hset(k.tagged, Object.fromEntries(tagged.slice(i, i + 1000).map(([pid, v]) => [String(pid), v])));
  }
  await tx.expire(k.apps, STATE_TTL_S).expire(k.tagged, STATE_TTL_S).exec();
}

const storedSp = z.object({
  id: z.string(),
  appId: z.string(),
  accountEnabled: z.boolean().optional(),
  credentialCount: z.number().optional(),
});

/**
 * The service principals the registry pins, from one listing of the principals carrying the bot's tag (the
 * bot tags them like their apps): a page of 999 instead of one $batch item per identity. Only pinned ones are
 * kept (planted principals cost the listing, not memory). Read for the whole sweep, so a chunk uses an entry
 * only when the same chunk's fresh memberOf read answered for that principal (it still exists); otherwise the
 * plan reads it live.
 */
async function listPrincipals(
  rt: WorkerRuntime,
  k: ReturnType<typeof keys>,
  registered: RegisteredProject[],
) {
  const pace = paceReads(rt);
  const pinned = new Set(
    registered.flatMap((p) => Object.values(p.environments).map((e) => e.spObjectId.toLowerCase())),
  );
  const sps = await rt.graph.listServicePrincipalsWithTag(BOT_TAG, {
    ...(pace ? { pace } : {}),
    keep: (sp) => pinned.has(sp.id.toLowerCase()),
  });
  const tx = rt.redis.multi().del(k.sps);
  for (let i = 0; i < sps.length; i += 1000) {
    tx.hset(k.sps, Object.fromEntries(sps.slice(i, i + 1000).map((sp) => [sp.id, JSON.stringify(sp)])));
  }
  await tx.expire(k.sps, STATE_TTL_S).exec();
}

/**
 * The sweep's reads take the shared Graph budget's spare half (pacer.ts), when writes are paced at all: a
 * request of n reads costs n / GRAPH_READS_PER_WRITE tokens.
 */
function paceReads(rt: WorkerRuntime): ((reads: number) => Promise<void>) | undefined {
  const pacer = rt.graphPacer;
  const perWrite = rt.config.drift.readsPerWrite;
  return pacer ? (reads) => pacer.acquireSpare(reads / perWrite) : undefined;
}

async function sweepProjects(
  ctx: WorkContext,
  k: ReturnType<typeof keys>,
  ids: number[],
  report: DriftReport,
): Promise<void> {
  const { rt } = ctx;
  // One read of each project's registry hash: the project and all its pins, complete or not.
  const read = await Promise.all(ids.map((id) => rt.registry.getWithPins(id)));
  const projects: RegisteredProject[] = [];
  const pins = new Map<number, IdentityPin[]>();
  for (const r of read) {
    if (!r.project) continue;
    projects.push(r.project);
    pins.set(r.project.projectId, Object.values(r.pins));
  }
  const [listed, snapshotDeps] = await Promise.all([gitlabPaths(rt, ids), readAhead(ctx, k, projects, pins)]);

  let next = 0;
  const lane = async () => {
    while (next < projects.length) {
      const project = projects[next++] as RegisteredProject;
      report.projects += 1;
      report.identities += (pins.get(project.projectId) ?? []).filter((p) => p.appObjectId).length;
      const seen = await readAheadPlan(ctx, snapshotDeps, project, listed.get(project.projectId));
      if (seen.kind === "live") {
        report.live += 1;
        await repairProject(ctx, project.projectId, project.path, report);
        continue;
      }
      report.findings += await recordFindings(rt, ctx.trigger, seen.plan, ctx.job);
      if (seen.kind === "entra") {
        // Only Entra differs from the plan, GitLab's side is settled: the onboarding apply re-reads each drifted
        // identity by id under its lock before writing (repairPlanned), no second plan of the whole project.
        report.repairedFromPlan += 1;
        await repairPlanned(
          ctx,
          { id: project.projectId, path: project.path },
          seen.plan,
          seen.binding,
          report,
        );
      } else {
        report.planned += 1;
      }
      // The same cleanup the live path runs (repairProject): environments GitLab stopped or deleted.
      const cleanup = await cleanUpEnvironments(ctx, { id: project.projectId, path: project.path });
      report.environmentsRemoved += cleanup.removed.length;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PLAN_CONCURRENCY, projects.length) }, lane));
}

/**
 * GitLab's view of the chunk's projects from paged listings (one request per 100 of the bot's projects, at most
 * twice the pages the chunk needs). A project the listing does not show (the token is not a member, it is gone,
 * the listing failed or stopped at its page limit) is simply absent: repairProject then reads it by id, which is authoritative.
 */
async function gitlabPaths(rt: WorkerRuntime, ids: number[]): Promise<Map<number, GitLabProject>> {
  const out = new Map<number, GitLabProject>();
  const first = ids[0];
  const last = ids[ids.length - 1];
  if (first === undefined || last === undefined) return out;
  const wanted = new Set(ids);
  let idAfter = first - 1;
  // The listing walks every project the bot is a member of between the chunk's first and last id, and anyone
  // can create projects in a group the bot belongs to: past twice the pages the chunk itself needs, the rest
  // is read by id (repairProject), which costs what the per-project loop costs and no more.
  let pages = Math.ceil(ids.length / GITLAB_PAGE) * 2 + 1;
  try {
    while (pages-- > 0) {
      const page = await rt.gitlab.listProjectsPage({ idAfter, perPage: GITLAB_PAGE });
      for (const p of page.projects) if (wanted.has(p.id)) out.set(p.id, p);
      const max = page.projects.at(-1)?.id;
      if (page.last || max === undefined || max >= last) break;
      idAfter = max;
    }
  } catch (err) {
    rt.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "drift: GitLab's project listing failed; the chunk's projects are read one by one",
    );
  }
  return out;
}

/** The chunk's Entra read-ahead, as onboarding dependencies that plan against it (and cannot write). */
async function readAhead(
  ctx: WorkContext,
  k: ReturnType<typeof keys>,
  projects: RegisteredProject[],
  pins: Map<number, IdentityPin[]>,
): Promise<OnboardingDeps> {
  const { rt } = ctx;
  const tagged = new Map<number, string[]>();
  // Projects whose tag search the listing cannot answer (SEARCH_LIVE): their plans search live.
  const searchLive = new Set<number>();
  const ids = projects.map((p) => String(p.projectId));
  const rawTagged = ids.length ? await rt.redis.hmget(k.tagged, ...ids) : [];
  projects.forEach((p, i) => {
    const raw = rawTagged[i];
    if (raw === SEARCH_LIVE) searchLive.add(p.projectId);
    else tagged.set(p.projectId, raw ? (z.array(z.string()).safeParse(JSON.parse(raw)).data ?? []) : []);
  });
  const appIds = [
    ...new Set([
      ...[...pins.values()].flat().flatMap((p) => (p.appObjectId ? [p.appObjectId] : [])),
      ...[...tagged.values()].flat(),
    ]),
  ];
  const apps = new Map<string, GraphApplication>();
  const rawApps = appIds.length ? await rt.redis.hmget(k.apps, ...appIds) : [];
  appIds.forEach((id, i) => {
    const raw = rawApps[i];
    const app = raw ? storedApp.safeParse(JSON.parse(raw)) : undefined;
    if (app?.success) apps.set(id, app.data);
  });
  const byTag = new Map<string, GraphApplication[]>();
  for (const p of projects) {
    if (searchLive.has(p.projectId)) continue;
    byTag.set(
      projectTag(p.projectId),
      (tagged.get(p.projectId) ?? []).flatMap((id) =>
        apps.has(id) ? [apps.get(id) as GraphApplication] : [],
      ),
    );
  }
  const covered = new Set(byTag.keys());

  const reads: BulkRead[] = [];
  for (const pin of [...pins.values()].flat()) {
    if (!pin.appObjectId) continue;
    reads.push(
      { kind: "owners", appObjectId: pin.appObjectId },
      { kind: "fics", appObjectId: pin.appObjectId },
    );
    if (pin.spObjectId) reads.push({ kind: "memberOf", principalObjectId: pin.spObjectId });
  }
  const pace = paceReads(rt);
  const bulk = await rt.graph.bulkRead(reads, pace ? { pace } : {});
  // A listed principal counts only when this chunk's memberOf read answered for it: it exists now.
  const spIds = [...pins.values()].flat().flatMap((p) => (p.spObjectId ? [p.spObjectId] : []));
  const rawSps = spIds.length ? await rt.redis.hmget(k.sps, ...spIds) : [];
  const sps = new Map<string, GraphServicePrincipal>();
  spIds.forEach((id, i) => {
    const raw = rawSps[i];
    const sp = raw ? storedSp.safeParse(JSON.parse(raw)) : undefined;
    if (sp?.success && bulk.memberOf(id) !== undefined) sps.set(id, sp.data);
  });
  const live = ctx.onboarding();
  const graph = snapshotGraph(rt.graph, { apps, byTag, covers: (tag) => covered.has(tag), bulk, sps });
  // No job-log lines for the planning pass: only projects that go the live path write their story.
  const { log: _quiet, audit: _none, ...rest } = live;
  return { ...rest, graph };
}

type ReadAheadPlan =
  /** Plainly in order: nothing to write. */
  | { kind: "clean"; plan: OnboardResult }
  /** GitLab settled, only Entra differs: repairPlanned applies it. */
  | { kind: "entra"; plan: OnboardResult; binding: ProjectBinding }
  /** Anything else: the per-project live path (repairProject). */
  | { kind: "live" };

/**
 * What the read-ahead shows for one project. GitLab's side must be plainly settled (listed at the registered
 * path, not pending deletion, a token layout that needs nothing from GitLab); then the plan against the
 * snapshot says "clean" (no difference) or "entra" (only writes to make, no environment refused or failed).
 * Everything else goes the live path, which decides it exactly as the per-project loop does.
 */
async function readAheadPlan(
  ctx: WorkContext,
  deps: OnboardingDeps,
  project: RegisteredProject,
  live: GitLabProject | undefined,
): Promise<ReadAheadPlan> {
  const { rt } = ctx;
  if (!live || live.pathWithNamespace !== project.path || live.markedForDeletionOn) return { kind: "live" };
  const binding = settledSubjectLayout(
    rt.policy,
    project.path,
    project.subjectLayout,
    live.ciIdTokenSubClaimComponents,
  );
  if (!binding) return { kind: "live" };
  const plan = await projectStatus(deps, project.projectId, { path: project.path, binding });
  if (plan.environments.every((e) => e.status === "unchanged")) return { kind: "clean", plan };
  if (plan.environments.every((e) => e.status === "unchanged" || e.status === "would-change"))
    return { kind: "entra", plan, binding };
  return { kind: "live" };
}
