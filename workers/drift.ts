import type { Job } from "bullmq";
import { EntraError } from "../src/entra/errors.ts";
import type { Trigger } from "../src/gitlab/intents.ts";
import { metrics } from "../src/http/metrics.ts";
import type { Logger } from "../src/logging.ts";
import { identityLockKey, withLock } from "../src/onboarding/lock.ts";
import { managedGroups } from "../src/onboarding/managed-groups.ts";
import { isRetired } from "../src/onboarding/naming.ts";
import { onboardProject, projectStatus } from "../src/onboarding/onboard.ts";
import { isWrite, offboardApp } from "../src/onboarding/reconciler.ts";
import { soleOwner } from "../src/onboarding/registry.ts";
import { RetiredIdentities } from "../src/onboarding/retired.ts";
import type { OnboardResult } from "../src/onboarding/types.ts";
import type { ProjectBinding } from "../src/policy/protection.ts";
import { auditChanges } from "./audit-changes.ts";
import { DRIFT_CHUNK_JOB, sweepChunk } from "./drift-sweep.ts";
import { cleanUpEnvironments } from "./environment-cleanup.ts";
import { recordFindings } from "./findings.ts";
import { createWorkContext, type WorkContext } from "./handlers/context.ts";
import { checkProject } from "./handlers/freed-paths.ts";
import { establishLayout, recordLayout } from "./handlers/onboard-live.ts";
import type { WorkerRuntime } from "./runtime.ts";

export const DRIFT_SCHEDULER_ID = "drift-repair";

const DAY_MS = 24 * 3600 * 1000;

/** What one sweep found and did (the job's return value, its last log line, and `${prefix}:drift:last`). */
export interface DriftReport {
  mode: "bulk" | "per-project";
  projects: number;
  identities: number;
  renamed: number;
  repaired: number;
  driftFound: number;
  missing: number;
  pendingDeletion: number;
  retired: number;
  purged: number;
  findings: number;
  /** Bulk mode: projects planned from the read-ahead alone, and those taken through the live path. */
  planned: number;
  /** Bulk mode: projects whose read-ahead plan showed Entra differences only, applied without a second plan. */
  repairedFromPlan: number;
  live: number;
  /** Identities of environments GitLab stopped or deleted, removed past retainStoppedEnvironmentDays. */
  environmentsRemoved: number;
}

export const emptyReport = (mode: DriftReport["mode"]): DriftReport => ({
  mode,
  projects: 0,
  identities: 0,
  renamed: 0,
  repaired: 0,
  driftFound: 0,
  missing: 0,
  pendingDeletion: 0,
  retired: 0,
  purged: 0,
  findings: 0,
  planned: 0,
  repairedFromPlan: 0,
  live: 0,
  environmentsRemoved: 0,
});

/** A drift job's return value: `done` once the sweep is complete (bulk sweeps span several jobs). */
export type DriftJobResult = DriftReport & { done: boolean; sweepId: string; busy?: boolean };

export const driftTrigger = (job: Pick<Job, "id">): Trigger => ({
  event: "drift-repair",
  eventId: `drift-${job.id}`,
  receivedAt: new Date().toISOString(),
  source: { kind: "internal" },
  signed: false,
});

/** Where the last complete sweep's report is kept (bench:drift and operators read it). */
export const lastSweepKey = (prefix: string) => `${prefix}:drift:last`;

/**
 * Drift repair: DRIFT_SWEEP_MODE=bulk (default) sweeps in resumable chunks with bulk reads (drift-sweep.ts);
 * per-project walks every registered project in one job with its own reads, the original loop.
 */
export async function repairDrift(rt: WorkerRuntime, job: Job, log: Logger): Promise<DriftJobResult> {
  if (rt.config.drift.mode === "bulk") return sweepChunk(rt, job, log);
  // A bulk sweep's follow-up left in the queue by a switch to per-project mode: the next run covers it all.
  if (job.name === DRIFT_CHUNK_JOB) return { ...emptyReport("per-project"), done: true, sweepId: "" };
  const ctx = createWorkContext(rt, driftTrigger(job), job, log, "drift");
  const report = emptyReport("per-project");
  for (const project of await rt.registry.list()) {
    report.projects += 1;
    report.identities += Object.keys(project.environments).length;
    await repairProject(ctx, project.projectId, project.path, report);
  }
  report.purged = await purgeRetired(ctx);
  await job.log(`drift repair: ${JSON.stringify(report)}`);
  const result = { ...report, done: true, sweepId: `drift-${job.id}` };
  await rt.redis.set(
    lastSweepKey(rt.config.queuePrefix),
    JSON.stringify({ ...result, finishedAt: new Date().toISOString() }),
  );
  return result;
}

/**
 * Reconciles one registered project with what GitLab and the policy say, with the same code as onboarding and
 * live reads only:
 * 1. GitLab first (freed-paths.ts): a project GitLab no longer has (404), shows pending deletion or at another
 *    path (renamed or transferred without an event, a subgroup moved) gets its credentials retired or
 *    re-subjected at once: a freed path must never keep credentials;
 * 2. then Entra: a plan (reads only), and an apply only where the plan found differences.
 * The per-project sweep runs it for every project; the bulk sweep for every project its read-ahead could not
 * show to be in order.
 */
export async function repairProject(
  ctx: WorkContext,
  projectId: number,
  path: string,
  report: DriftReport,
): Promise<void> {
  const { rt, log } = ctx;
  const check = await checkProject(ctx, projectId, { part: `p${projectId}` });
  if (check.outcome === "retired") {
    metrics.driftFoundTotal.inc({ kind: "project-gone" });
    metrics.driftRepairedTotal.inc({ kind: "project-gone" });
    report.retired += 1;
    if (check.reason === "pending-deletion") report.pendingDeletion += 1;
    else report.missing += 1;
    return;
  }
  if (check.outcome === "moved") {
    metrics.driftFoundTotal.inc({ kind: "project-path" });
    metrics.driftRepairedTotal.inc({ kind: "project-path" });
    report.renamed += 1;
    return;
  }
  if (check.outcome !== "unchanged") return;
  const cleanup = await cleanUpEnvironments(ctx, { id: projectId, path: check.live.pathWithNamespace });
  report.environmentsRemoved += cleanup.removed.length;

  // The same layout decision as every onboarding (subject-components.ts via establishLayout): a policy change
  // (a rule that now binds refs) is set in GitLab first, then the credentials converge to it.
  const layout = await establishLayout(ctx, check.live);
  if (!layout.ok) {
    log.warn({ project: projectId }, "no token subject layout GitLab accepts; credentials left as they are");
    ctx.note(`project ${projectId}: ${layout.message}`);
    return;
  }
  await recordLayout(ctx, projectId, layout);
  const deps = ctx.onboarding();
  const plan = await projectStatus(deps, projectId, { path, binding: layout });
  // Look-alike apps and memberships in groups no rule names: reported, never repaired.
  report.findings += await recordFindings(rt, ctx.trigger, plan, ctx.job);
  await repairPlanned(ctx, { id: projectId, path }, plan, layout, report);
}

/**
 * Applies what a plan found for a project GitLab shows where the bot has it: only the environments the plan
 * would change, with the same onboarding apply (under each identity's lock, audited, reading Entra again by
 * id before every write), so a plan that has gone stale meanwhile costs a repair that finds nothing to do.
 */
export async function repairPlanned(
  ctx: WorkContext,
  project: { id: number; path: string },
  plan: OnboardResult,
  binding: ProjectBinding,
  report: DriftReport,
): Promise<void> {
  const drifted = plan.environments.filter((e) => e.status === "would-change");
  if (drifted.length === 0) return;
  for (const env of drifted) {
    const writes = env.changes.filter(isWrite);
    for (const c of writes) metrics.driftFoundTotal.inc({ kind: c.kind });
    report.driftFound += writes.length;
  }
  const result = await onboardProject(ctx.onboarding(), {
    project,
    environments: drifted.map((e) => e.environment),
    mode: "apply",
    binding,
  });
  for (const env of result.environments) {
    const writes = env.changes.filter(isWrite);
    for (const c of writes) metrics.driftRepairedTotal.inc({ kind: c.kind });
    report.repaired += writes.length;
  }
}

/**
 * Deletes retired identities whose retention period is over (the retired list, restored from Entra's tags by
 * registry:rebuild). Only an app the bot alone owns and that is still retired is deleted; one onboarded again
 * meanwhile, or owned by someone else, is dropped from the list and left as it is.
 */
export async function purgeRetired(ctx: WorkContext): Promise<number> {
  const { rt } = ctx;
  const retired = new RetiredIdentities(rt.redis, rt.config.queuePrefix);
  const cutoff = new Date(Date.now() - rt.policy.retention.disabledIdentityDays * DAY_MS);
  const botSpId = await rt.botSp.objectId();
  const managed = managedGroups(rt.policy);
  let purged = 0;
  for (const entry of await retired.due(cutoff)) {
    const { projectId, pin } = entry;
    const env = pin.environment;
    await withLock(rt.redis, identityLockKey(rt.config.queuePrefix, projectId, env), async () => {
      // Read again under the lock: an onboarding that held it may have taken this identity back.
      const still = await retired.get(projectId, env);
      const app = still?.pin.appObjectId ? await rt.graph.getApplication(still.pin.appObjectId) : null;
      if (!still || !app) {
        await retired.remove(projectId, env);
        return;
      }
      if (!isRetired(app.tags) || !soleOwner(await rt.graph.listApplicationOwners(app.id), botSpId)) {
        ctx.note(
          `retired identity ${app.displayName} is no longer retired or no longer the bot's alone: kept`,
        );
        await retired.remove(projectId, env);
        return;
      }
      const changes = await offboardApp(rt.graph, app, { mode: "apply", managedGroups: managed });
      await auditChanges(
        rt,
        ctx.trigger,
        { id: projectId, path: entry.path },
        changes.map((change) => ({ change, environment: env })),
      );
      await retired.remove(projectId, env);
      ctx.note(
        `retired identity ${app.displayName} (retired ${entry.retiredAt}) deleted after the retention period`,
      );
      purged += 1;
    }).catch((err: unknown) => {
      if (!(err instanceof EntraError) || !err.permanent) throw err;
      ctx.log.warn({ app: pin.appObjectId, err: err.message }, "retired identity could not be deleted");
      ctx.note(`retired identity ${pin.displayName} could not be deleted: ${err.message}`);
    });
  }
  return purged;
}
