import { LIST_MAX_ITEMS } from "../src/gitlab/api.ts";
import { isGitLabError } from "../src/gitlab/errors.ts";
import { code, join, md, type SafeMarkdown, trusted } from "../src/gitlab/markdown-inert.ts";
import { metrics } from "../src/http/metrics.ts";
import { type CleanupVerdict, decideCleanup } from "../src/onboarding/environment-cleanup.ts";
import { identityLockKey, withLock } from "../src/onboarding/lock.ts";
import { offboardProject } from "../src/onboarding/onboard.ts";
import { isWrite } from "../src/onboarding/reconciler.ts";
import { Registry } from "../src/onboarding/registry.ts";
import type { EnvironmentOutcome, OnboardResult } from "../src/onboarding/types.ts";
import { environmentFor, retainStoppedDays } from "../src/policy/rules.ts";
import { auditChanges } from "./audit-changes.ts";
import type { WorkContext } from "./handlers/context.ts";
import { firstSeenKey, report } from "./handlers/shared.ts";

/** A privileged environment's finding stays quiet this long once recorded (findings.ts does the same). */
const FINDING_TTL_SECONDS = 24 * 3600;
const KIND = "environment-gone";

export interface CleanupReport {
  /** Environments whose identity was removed. */
  removed: string[];
  /** Environments gone in GitLab, within their retention period. */
  waiting: string[];
  /** Privileged environments past their retention period: reported, never removed automatically. */
  reported: string[];
}

/** One hash per project: environment name -> when the bot first noticed it gone in GitLab (ISO). */
export function goneSinceKey(keyPrefix: string, projectId: number): string {
  return `${keyPrefix}:environment-gone:${projectId}`;
}

/**
 * Removes the identities of a project's environments that GitLab no longer has (stopped, or deleted after
 * having been listed) once they have been gone for the effective retainStoppedEnvironmentDays; see
 * onboarding/environment-cleanup.ts for what counts as gone. One GitLab read (the project's environments, all
 * states), none at all for a project without identities. Self-contained: any sweep can call it per project.
 * A removal is the audited offboarding (intended, then outcome), re-checked under the identity lock, counted
 * in geb_drift_found_total/geb_drift_repaired_total{kind="environment-gone"} and said in the onboarding issue.
 */
export async function cleanUpEnvironments(
  ctx: WorkContext,
  project: { id: number; path: string },
  opts: { now?: Date } = {},
): Promise<CleanupReport> {
  const { rt } = ctx;
  const now = opts.now ?? new Date();
  const prefix = rt.config.queuePrefix;
  const registry = new Registry(rt.redis, prefix);
  const goneKey = goneSinceKey(prefix, project.id);
  const out: CleanupReport = { removed: [], waiting: [], reported: [] };
  // Only identities that exist: a pin still being created belongs to the onboarding that holds its lock.
  const pins = Object.values(await registry.pins(project.id)).filter((p) => p.appObjectId !== undefined);
  const recorded = await rt.redis.hgetall(goneKey);
  // Records of identities that are gone from the registry (offboarded, retired) go too: the hash stays bounded.
  const pinned = new Set(pins.map((p) => p.environment));
  const stale = Object.keys(recorded).filter((env) => !pinned.has(env));
  if (stale.length > 0) await rt.redis.hdel(goneKey, ...stale);
  if (pins.length === 0) return out;

  let listed: Awaited<ReturnType<typeof rt.gitlab.listEnvironments>>;
  try {
    listed = await rt.gitlab.listEnvironments(project.id);
  } catch (err) {
    // Retryable failures fail the job (BullMQ retries); a refusal (403: the bot's role) skips this project.
    if (!isGitLabError(err) || err.retryable) throw err;
    ctx.note(`project ${project.id}: environments not readable (${err.message}): no environment cleanup`);
    return out;
  }
  const verdicts = decideCleanup({
    identities: pins.map((pin) => {
      const decision = environmentFor(rt.policy, project.path, pin.environment);
      return {
        environment: pin.environment,
        environmentSeenAt: pin.environmentSeenAt,
        // An environment no rule names any more is treated as privileged: kept and reported, not removed.
        privileged: decision?.privileged ?? true,
        retainDays: retainStoppedDays(rt.policy, decision).days,
      };
    }),
    listed,
    complete: listed.length < LIST_MAX_ITEMS,
    goneSince: new Map(Object.entries(recorded)),
    now,
  });

  const outcomes: OnboardResult[] = [];
  for (const v of verdicts) {
    const env = v.environment;
    if (v.markSeen) await markSeen(ctx, project.id, env, now);
    if (v.goneSince === undefined) {
      if (Object.hasOwn(recorded, env)) await rt.redis.hdel(goneKey, env);
    } else if (recorded[env] !== v.goneSince) {
      await rt.redis.hset(goneKey, env, v.goneSince);
    }
    if (v.action === "keep") continue;
    ctx.note(`environment ${env} of project ${project.id}: ${v.why}`);
    if (v.action === "wait") out.waiting.push(env);
    else if (v.action === "report") {
      await reportPrivileged(ctx, project, v, pins.find((p) => p.environment === env)?.appObjectId);
      out.reported.push(env);
    } else {
      const appObjectId = pins.find((p) => p.environment === env)?.appObjectId;
      const result = await remove(ctx, project, v, appObjectId);
      if (result) {
        outcomes.push(result);
        out.removed.push(env);
      }
    }
  }
  if (outcomes.length > 0) await reportRemoved(ctx, project, outcomes, out.removed);
  return out;
}

/**
 * After a first sight onboarded environments: records on their pins that GitLab's API lists them (one read),
 * so that one deleted before the next cleanup still counts as once seen. Only GitLab's answer marks a pin,
 * never the webhook: a forged deployment event naming an environment GitLab does not have must not make its
 * identity removable. Best effort: the cleanup's own listing marks what this misses.
 */
export async function markListedEnvironments(
  ctx: WorkContext,
  projectId: number,
  environments: readonly string[],
  now = new Date(),
): Promise<string[]> {
  if (environments.length === 0) return [];
  let listed: { name: string }[];
  try {
    listed = await ctx.rt.gitlab.listEnvironments(projectId);
  } catch (err) {
    if (!isGitLabError(err)) throw err;
    ctx.note(
      `environments of project ${projectId} not read (${err.message}): first sight not recorded on the pins`,
    );
    return [];
  }
  const names = new Set(listed.map((e) => e.name));
  const marked: string[] = [];
  for (const env of environments) {
    if (!names.has(env)) continue;
    await markSeen(ctx, projectId, env, now);
    marked.push(env);
  }
  return marked;
}

/** Under the identity lock: the reconciler writes pins whole, and must not drop this field or lose its own. */
async function markSeen(ctx: WorkContext, projectId: number, env: string, now: Date): Promise<void> {
  const { rt } = ctx;
  const registry = new Registry(rt.redis, rt.config.queuePrefix);
  await withLock(rt.redis, identityLockKey(rt.config.queuePrefix, projectId, env), () =>
    registry.markEnvironmentSeen(projectId, env, now.toISOString()),
  );
}

async function remove(
  ctx: WorkContext,
  project: { id: number; path: string },
  v: CleanupVerdict,
  appObjectId: string | undefined,
): Promise<OnboardResult | undefined> {
  const { rt } = ctx;
  const env = v.environment;
  const goneKey = goneSinceKey(rt.config.queuePrefix, project.id);
  metrics.driftFoundTotal.inc({ kind: KIND });
  const result = await offboardProject(ctx.onboarding("drift"), {
    projectId: project.id,
    environments: [env],
    mode: "apply",
    // Under the identity lock: the identity decided on is still the pinned one (not re-created by an
    // onboarding meanwhile), and still recorded gone (not found available again by another run).
    recheck: async (_env, pin) => {
      if (!pin?.appObjectId || pin.appObjectId !== appObjectId)
        return "its identity changed since the cleanup decided (onboarded again meanwhile)";
      const since = await rt.redis.hget(goneKey, env);
      if (since === null || since !== v.goneSince)
        return "no longer recorded as gone in GitLab (available again meanwhile)";
      return undefined;
    },
  });
  const outcome = result.environments.find((e) => e.environment === env);
  if (outcome?.status !== "removed") {
    ctx.note(
      `environment ${env} of project ${project.id}: not removed: ${outcome?.message ?? outcome?.status}`,
    );
    return undefined;
  }
  metrics.driftRepairedTotal.inc({ kind: KIND });
  await rt.redis.hdel(goneKey, env);
  // First sight is remembered so that an environment offboarded on purpose stays off; this one was removed
  // because GitLab dropped it, so a later deployment that brings it back onboards it again (with every check).
  await rt.redis.hdel(firstSeenKey(ctx, project.id), env);
  ctx.note(
    `environment ${env} of project ${project.id}: identity removed (${outcome.changes.filter(isWrite).length} writes)`,
  );
  return result;
}

async function reportPrivileged(
  ctx: WorkContext,
  project: { id: number; path: string },
  v: CleanupVerdict,
  appObjectId: string | undefined,
): Promise<void> {
  const { rt } = ctx;
  const env = v.environment;
  ctx.log.warn(
    { project: project.id, environment: env },
    "privileged environment gone in GitLab: not removed",
  );
  const key = `${rt.config.queuePrefix}:finding:${project.id}:${env}:observe:${KIND}`;
  if ((await rt.redis.set(key, ctx.trigger.eventId, "EX", FINDING_TTL_SECONDS, "NX")) !== "OK") return;
  metrics.driftFoundTotal.inc({ kind: KIND });
  await auditChanges(rt, ctx.trigger, project, [
    {
      change: {
        op: "observe",
        kind: "application",
        target: env,
        ...(appObjectId ? { objectId: appObjectId } : {}),
        detail: `${v.gone === "stopped" ? "stopped" : "deleted"} in GitLab since ${v.goneSince}`,
      },
      environment: env,
      message: `privileged: never removed automatically; /entra offboard ${env} removes it`,
    },
  ]);
}

/** One note in the onboarding issue per run that removed something (best effort: the issue may be gone). */
async function reportRemoved(
  ctx: WorkContext,
  project: { id: number; path: string },
  results: OnboardResult[],
  removed: string[],
): Promise<void> {
  const first = results[0] as OnboardResult;
  const environments: EnvironmentOutcome[] = results.flatMap((r) => r.environments);
  // Environment names come from GitLab (anyone who can run a pipeline picks them): code spans only.
  const names: SafeMarkdown = join(
    removed.map((e) => code(e)),
    ", ",
  );
  const notice = md`> **Removed the Azure identities of environments GitLab no longer has:** ${names}. GitLab showed them stopped or no longer listed them for longer than the platform policy keeps such identities (retainStoppedEnvironmentDays), so their federated credentials, group memberships, service principals and app registrations were deleted. ${trusted("A new deployment to one of them sets it up again where the policy allows it.")}`;
  await report(
    ctx,
    {
      trigger: ctx.trigger,
      project,
      result: { ...first, project, environments, notices: [notice] },
      issue: true,
      bestEffort: true,
    },
    `environments-p${project.id}`,
  );
}
