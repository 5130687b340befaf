/**
 * Which identities of a project belong to environments GitLab no longer has, and what to do about each:
 * the pure decision behind workers/environment-cleanup.ts (no I/O; the caller reads GitLab, the registry and
 * the "gone since" records, and applies the verdicts).
 *
 * An environment is gone when GitLab lists it `stopped`, or when GitLab once listed it (the pin's
 * environmentSeenAt) and lists it no more (deleted; GitLab only deletes stopped environments). One GitLab
 * never listed (an identity made on project creation before any deployment) is not gone: absence from a list
 * proves nothing about an environment that never was in it. `stopping` is not gone yet (its stop job runs).
 * Names compare exactly: GitLab environment names are case-sensitive (a unique index on project_id, name;
 * "Review/a" and "review/a" are two environments), as the registry's keys are.
 */

const DAY_MS = 24 * 3600 * 1000;

export type GoneReason = "stopped" | "deleted";

export interface ListedEnvironment {
  name: string;
  /** available | stopping | stopped (GitLab may add states: anything but "stopped" counts as present). */
  state?: string | undefined;
}

export interface CleanupIdentity {
  environment: string;
  /** When GitLab's API first showed the environment (pin field); absent = never seen in GitLab. */
  environmentSeenAt?: string | undefined;
  /** Privileged environments are never removed automatically: reported instead. */
  privileged: boolean;
  /** The effective retainStoppedEnvironmentDays for this environment (policy/rules.ts retainStoppedDays). */
  retainDays: number;
}

export interface CleanupInput {
  identities: readonly CleanupIdentity[];
  /** GitLab's environments of the project, all states. */
  listed: readonly ListedEnvironment[];
  /** False when the list may be cut short (paging limit): then absence is no evidence of deletion. */
  complete: boolean;
  /** Recorded "gone since" times (ISO) by environment name. */
  goneSince: ReadonlyMap<string, string>;
  now: Date;
}

export type CleanupAction =
  /** Present in GitLab (or never seen, or unknown): nothing to do; any gone-since record is cleared. */
  | "keep"
  /** Gone, within the retention period. */
  | "wait"
  /** Gone for the retention period or longer: offboard the identity. */
  | "remove"
  /** Gone for the retention period or longer, but privileged: report, never remove automatically. */
  | "report";

export interface CleanupVerdict {
  environment: string;
  action: CleanupAction;
  /** GitLab lists the environment now, and the pin does not record it yet: record environmentSeenAt. */
  markSeen: boolean;
  gone?: GoneReason;
  /** The gone-since record to keep (existing, or now when first noticed); undefined = clear any record. */
  goneSince?: string;
  /** When the retention period ends (ISO), for gone environments. */
  dueAt?: string;
  /** One line for the job log. */
  why: string;
}

function validTime(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : undefined;
}

export function decideCleanup(input: CleanupInput): CleanupVerdict[] {
  const byName = new Map<string, ListedEnvironment>();
  for (const e of input.listed) if (!byName.has(e.name)) byName.set(e.name, e);
  const now = input.now.getTime();
  return input.identities.map((identity): CleanupVerdict => {
    const env = identity.environment;
    const listed = byName.get(env);
    const markSeen = listed !== undefined && identity.environmentSeenAt === undefined;
    let gone: GoneReason | undefined;
    if (listed) {
      if (listed.state === "stopped") gone = "stopped";
    } else if (identity.environmentSeenAt === undefined) {
      return { environment: env, action: "keep", markSeen, why: "never listed by GitLab: kept" };
    } else if (!input.complete) {
      // Neither start nor clear a clock on a list that may be cut short: keep what is recorded.
      const recorded = input.goneSince.get(env);
      return {
        environment: env,
        action: "keep",
        markSeen,
        ...(recorded !== undefined ? { goneSince: recorded } : {}),
        why: "not in GitLab's list, which may be cut short (too many environments): kept",
      };
    } else {
      gone = "deleted";
    }
    if (!gone)
      return { environment: env, action: "keep", markSeen, why: `${listed?.state ?? "listed"} in GitLab` };

    // The first notice starts the clock; a record that does not parse restarts it (never removes early).
    const recorded = validTime(input.goneSince.get(env));
    const since = recorded ?? now;
    const due = since + identity.retainDays * DAY_MS;
    const goneSince = new Date(since).toISOString();
    const dueAt = new Date(due).toISOString();
    const what = gone === "stopped" ? "stopped in GitLab" : "no longer in GitLab (deleted)";
    const base = { environment: env, markSeen, gone, goneSince, dueAt };
    if (now < due)
      return {
        ...base,
        action: "wait",
        why: `${what} since ${goneSince}: identity removed at ${dueAt} (retainStoppedEnvironmentDays ${identity.retainDays})`,
      };
    if (identity.privileged)
      return {
        ...base,
        action: "report",
        why: `${what} since ${goneSince}, past its ${identity.retainDays}-day retention, but privileged: never removed automatically; remove it with /entra offboard ${env}`,
      };
    return {
      ...base,
      action: "remove",
      why: `${what} since ${goneSince}, past its ${identity.retainDays}-day retention: removing its identity`,
    };
  });
}
