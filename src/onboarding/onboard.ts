import type { Redis } from "ioredis";
import type { Policy } from "../config/policy.ts";
import { EntraError } from "../entra/errors.ts";
import type { GraphApi } from "../entra/graph.ts";
import type { ProjectRef } from "../gitlab/intents.ts";
import { identityLockKey, type LockOptions, withLock } from "./lock.ts";
import { parseIdentityTags } from "./naming.ts";
import { planIdentity } from "./planner.ts";
import { findIdentityApps, type Mode, offboardApp, reconcileIdentity } from "./reconciler.ts";
import { Registry } from "./registry.ts";
import type { EnvironmentOutcome, OnboardResult } from "./types.ts";

export interface OnboardingDeps {
  graph: GraphApi;
  redis: Redis;
  keyPrefix: string;
  policy: Policy;
  issuer: string;
  tenantId: string;
  /** Job log. */
  log?: (line: string) => void;
  /** Identity lock tuning (defaults: lease 30 s, wait 60 s). */
  lock?: LockOptions;
  /** Replication-delay 404 retries inside a step (defaults: 5 retries from 500 ms, doubling). */
  notFoundRetries?: number;
  notFoundBaseMs?: number;
}

/**
 * Retryable errors (throttling, outages, lock contention, replication) are thrown so BullMQ retries the
 * whole job, which is safe because every step is idempotent. Permanent ones (403, 400, plan refusals)
 * become a "failed"/"refused" outcome for that environment, so the other environments still proceed and
 * the operator gets the message in GitLab.
 */
function settle(
  env: string,
  err: unknown,
  base: Omit<EnvironmentOutcome, "status" | "changes">,
): EnvironmentOutcome {
  if (err instanceof EntraError && err.permanent) {
    const refused = err.code.startsWith("PLAN_");
    return {
      ...base,
      environment: env,
      status: refused ? "refused" : "failed",
      changes: [],
      message: err.message,
    };
  }
  throw err;
}

function result(
  deps: OnboardingDeps,
  project: ProjectRef,
  mode: Mode,
  envs: EnvironmentOutcome[],
): OnboardResult {
  return {
    project,
    mode,
    tenantId: deps.tenantId,
    issuer: deps.issuer,
    audience: deps.policy.gitlab.audience,
    subClaimComponents: [...deps.policy.gitlab.subClaimComponents],
    environments: envs,
  };
}

export async function onboardProject(
  deps: OnboardingDeps,
  input: { project: ProjectRef; environments: string[]; mode: Mode },
): Promise<OnboardResult> {
  const { project, mode } = input;
  const registry = new Registry(deps.redis, deps.keyPrefix);
  const outcomes: EnvironmentOutcome[] = [];
  for (const environment of [...new Set(input.environments)]) {
    const empty = { environment, refs: [], subjects: [], groups: [] };
    let plan: ReturnType<typeof planIdentity>;
    try {
      plan = planIdentity({ project, environment, policy: deps.policy, issuer: deps.issuer });
    } catch (err) {
      outcomes.push(settle(environment, err, empty));
      continue;
    }
    if (!plan) {
      outcomes.push({
        ...empty,
        status: "refused",
        changes: [],
        message: `the policy has no rule for environment "${environment}": add environments.${environment} (or a glob key such as "${environment.split("/")[0]}/*") with its refs to the policy file`,
      });
      continue;
    }
    const desired = plan;
    const base = {
      environment,
      refs: desired.refs,
      subjects: desired.fics.map((f) => f.subject),
      groups: desired.groups,
    };
    deps.log?.(
      `${environment}: plan ${desired.displayName}: ${desired.fics.length} credential(s) [${base.subjects.join(", ")}], ${desired.groups.length} group(s)`,
    );
    try {
      const r = await withLock(
        deps.redis,
        identityLockKey(deps.keyPrefix, project.id, environment),
        () =>
          reconcileIdentity(deps.graph, desired, {
            mode,
            ...(deps.log ? { log: deps.log } : {}),
            ...(deps.notFoundRetries !== undefined ? { notFoundRetries: deps.notFoundRetries } : {}),
            ...(deps.notFoundBaseMs !== undefined ? { notFoundBaseMs: deps.notFoundBaseMs } : {}),
          }),
        deps.lock,
      );
      if (mode === "apply" && r.identity) await registry.setIdentity(project.id, project.path, r.identity);
      const status = r.changes.length === 0 ? "unchanged" : mode === "plan" ? "would-change" : "changed";
      deps.log?.(
        `${environment}: ${status} (${r.changes.length} change${r.changes.length === 1 ? "" : "s"})`,
      );
      // The job log is what an operator reads in the queue UI: one line per write (or planned write).
      for (const c of r.changes) {
        deps.log?.(
          `  ${mode === "plan" ? "would " : ""}${c.op} ${c.kind} ${c.target}${c.objectId ? ` [${c.objectId}]` : ""}${c.detail ? ` (${c.detail})` : ""}`,
        );
      }
      outcomes.push({ ...base, status, changes: r.changes, ...(r.identity ? { identity: r.identity } : {}) });
    } catch (err) {
      if (err instanceof Error) deps.log?.(`${environment}: ${err.message}`);
      outcomes.push(settle(environment, err, base));
    }
  }
  return result(deps, project, mode, outcomes);
}

export async function offboardProject(
  deps: OnboardingDeps,
  input: { projectId: number; environments?: string[]; mode: Mode },
): Promise<OnboardResult> {
  const { projectId, mode } = input;
  const registry = new Registry(deps.redis, deps.keyPrefix);
  const registered = await registry.get(projectId);
  // Entra is the truth: a lost registry must not leave credentials behind on a reusable path.
  const apps = await findIdentityApps(deps.graph, projectId);
  const byEnv = new Map<string, typeof apps>();
  for (const app of apps) {
    const env = parseIdentityTags(app.tags)?.environment;
    if (env !== undefined) byEnv.set(env, [...(byEnv.get(env) ?? []), app]);
  }
  const path =
    registered?.path ??
    apps.map((a) => parseIdentityTags(a.tags)?.path).find(Boolean) ??
    `project-${projectId}`;
  const wanted = input.environments ?? [
    ...new Set([...byEnv.keys(), ...Object.keys(registered?.environments ?? {})]),
  ];
  const outcomes: EnvironmentOutcome[] = [];
  for (const environment of [...new Set(wanted)].sort()) {
    const base = { environment, refs: [], subjects: [], groups: [] };
    const envApps = byEnv.get(environment) ?? [];
    try {
      const changes = await withLock(
        deps.redis,
        identityLockKey(deps.keyPrefix, projectId, environment),
        async () => {
          const all = [];
          for (const app of envApps) all.push(...(await offboardApp(deps.graph, app, { mode })));
          return all;
        },
        deps.lock,
      );
      if (mode === "apply") await registry.removeIdentity(projectId, environment);
      const status = changes.length === 0 ? "unchanged" : mode === "plan" ? "would-change" : "removed";
      outcomes.push({
        ...base,
        status,
        changes,
        ...(changes.length === 0 ? { message: `no identity exists for environment "${environment}"` } : {}),
      });
    } catch (err) {
      outcomes.push(settle(environment, err, base));
    }
  }
  return result(deps, { id: projectId, path }, mode, outcomes);
}

/** Environments the bot manages for a project: the registry's, plus any Entra has (registry loss). */
async function managedEnvironments(deps: OnboardingDeps, projectId: number) {
  const registered = await new Registry(deps.redis, deps.keyPrefix).get(projectId);
  const apps = await findIdentityApps(deps.graph, projectId);
  const envs = new Set(Object.keys(registered?.environments ?? {}));
  let tagPath: string | undefined;
  for (const a of apps) {
    const t = parseIdentityTags(a.tags);
    if (t) envs.add(t.environment);
    tagPath ??= t?.path;
  }
  return { environments: [...envs].sort(), path: registered?.path ?? tagPath };
}

/** Re-subjects every managed environment after a rename or transfer (FIC names are stable: PATCH in place). */
export async function moveProject(
  deps: OnboardingDeps,
  input: { project: ProjectRef },
): Promise<OnboardResult> {
  const { environments } = await managedEnvironments(deps, input.project.id);
  const res = await onboardProject(deps, { project: input.project, environments, mode: "apply" });
  await new Registry(deps.redis, deps.keyPrefix).setPath(input.project.id, input.project.path);
  return res;
}

/** What would change for the project's managed environments; reads only. */
export async function projectStatus(deps: OnboardingDeps, projectId: number): Promise<OnboardResult> {
  const { environments, path } = await managedEnvironments(deps, projectId);
  return onboardProject(deps, {
    project: { id: projectId, path: path ?? `project-${projectId}` },
    environments,
    mode: "plan",
  });
}
