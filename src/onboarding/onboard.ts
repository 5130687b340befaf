import type { Redis } from "ioredis";
import type { Policy } from "../config/policy.ts";
import type { SubClaimComponent } from "../config/policy-schema.ts";
import { EntraError } from "../entra/errors.ts";
import type { GraphApi, GraphApplication } from "../entra/graph.ts";
import type { BotServicePrincipal } from "../entra/self.ts";
import type { ProjectRef } from "../gitlab/intents.ts";
import type { EntraWriteAudit } from "./entra-audit.ts";
import { identityLockKey, type LockOptions, withLock } from "./lock.ts";
import { managedGroups } from "./managed-groups.ts";
import { parseIdentityTags } from "./naming.ts";
import { planIdentity } from "./planner.ts";
import {
  isWrite,
  type Mode,
  type OwnershipCollision,
  offboardIdentity,
  reconcileIdentity,
  taggedApps,
} from "./reconciler.ts";
import { type PinStore, Registry } from "./registry.ts";
import type { ReplicationWait } from "./replication.ts";
import { RetiredIdentities } from "./retired.ts";
import type { EnvironmentOutcome, OnboardResult } from "./types.ts";

export interface OnboardingDeps {
  graph: GraphApi;
  /** The bot's own service principal: the owner every managed object must have, alone. */
  botSp: Pick<BotServicePrincipal, "objectId">;
  redis: Redis;
  keyPrefix: string;
  policy: Policy;
  issuer: string;
  tenantId: string;
  /** Job log. */
  log?: (line: string) => void;
  /** Identity lock tuning (defaults: lease 30 s, wait 60 s). */
  lock?: LockOptions;
  /** Waiting for Entra's replication after a create (replication.ts; defaults there). */
  replication?: Partial<ReplicationWait>;
  /** An app tagged like an identity that the bot does not own alone (log and metric it). */
  onCollision?: (c: OwnershipCollision) => void;
  /**
   * Audit of Entra writes (entra-audit.ts): with it, an apply first plans (reads only, inside the identity
   * lock) and records the planned writes as "intended" before making them, and records the outcome after.
   */
  audit?: EntraWriteAudit;
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
  components?: readonly SubClaimComponent[],
): OnboardResult {
  return {
    project,
    mode,
    tenantId: deps.tenantId,
    issuer: deps.issuer,
    audience: deps.policy.gitlab.audience,
    subClaimComponents: [...(components ?? deps.policy.gitlab.subClaimComponents)],
    environments: envs,
  };
}

export interface OnboardInput {
  project: ProjectRef;
  environments: string[];
  mode: Mode;
  /** The `sub` layout GitLab mints for the project (resolveSubjectComponents); default the policy's. */
  components?: readonly SubClaimComponent[];
}

/**
 * The identity's pin, or, for an identity retired when its project looked gone, the retired pin: onboarding a
 * restored project takes its old app back (and enables it again) instead of making a second one.
 */
function pinsWithRetired(
  registry: Registry,
  retired: RetiredIdentities,
  project: ProjectRef,
  environment: string,
): PinStore {
  const store = registry.pinStore(project.id, project.path, environment);
  return {
    get: async () => (await store.get()) ?? (await retired.get(project.id, environment))?.pin,
    save: async (pin) => {
      await store.save(pin);
      await retired.remove(project.id, environment);
    },
  };
}

export async function onboardProject(deps: OnboardingDeps, input: OnboardInput): Promise<OnboardResult> {
  const { project, mode } = input;
  const registry = new Registry(deps.redis, deps.keyPrefix);
  const retired = new RetiredIdentities(deps.redis, deps.keyPrefix);
  const managed = managedGroups(deps.policy);
  // One tag search per project, only to notice look-alikes: it never supplies an identity.
  let tagged: GraphApplication[] | undefined;
  const outcomes: EnvironmentOutcome[] = [];
  const audited = mode === "apply" ? deps.audit : undefined;
  for (const environment of [...new Set(input.environments)]) {
    const empty = { environment, refs: [], subjects: [], groups: [] };
    let plan: ReturnType<typeof planIdentity>;
    try {
      plan = planIdentity({
        project,
        environment,
        policy: deps.policy,
        issuer: deps.issuer,
        ...(input.components ? { components: input.components } : {}),
      });
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
      const botSpId = await deps.botSp.objectId();
      tagged ??= await taggedApps(deps.graph, project.id);
      const seen = tagged;
      const options = {
        botSpId,
        pins: pinsWithRetired(registry, retired, project, environment),
        managedGroups: managed,
        tagged: seen,
        ...(deps.replication ? { replication: deps.replication } : {}),
      };
      const r = await withLock(
        deps.redis,
        identityLockKey(deps.keyPrefix, project.id, environment),
        async () => {
          if (audited) {
            // The same reads, no writes, no log lines or collision counts of its own: only what will be written.
            const planned = await reconcileIdentity(deps.graph, desired, { ...options, mode: "plan" });
            await audited.intended(project, environment, planned.changes.filter(isWrite));
          }
          return reconcileIdentity(deps.graph, desired, {
            ...options,
            mode,
            ...(deps.log ? { log: deps.log } : {}),
            ...(deps.onCollision ? { onCollision: deps.onCollision } : {}),
          });
        },
        deps.lock,
      );
      const writes = r.changes.filter(isWrite).length;
      const status = r.refused
        ? "refused"
        : writes === 0
          ? "unchanged"
          : mode === "plan"
            ? "would-change"
            : "changed";
      deps.log?.(`${environment}: ${status} (${writes} change${writes === 1 ? "" : "s"})`);
      // The job log is what an operator reads in the queue UI: one line per write (or planned write).
      for (const c of r.changes) {
        deps.log?.(
          `  ${mode === "plan" ? "would " : ""}${c.op} ${c.kind} ${c.target}${c.objectId ? ` [${c.objectId}]` : ""}${c.detail ? ` (${c.detail})` : ""}`,
        );
      }
      const outcome: EnvironmentOutcome = {
        ...base,
        status,
        changes: r.changes,
        ...(r.identity ? { identity: r.identity } : {}),
        ...(r.refused ? { message: r.refused } : {}),
      };
      await audited?.settled(project, outcome);
      outcomes.push(outcome);
    } catch (err) {
      if (err instanceof Error) deps.log?.(`${environment}: ${err.message}`);
      const failed = settle(environment, err, base);
      await audited?.settled(project, failed);
      outcomes.push(failed);
    }
  }
  return result(deps, project, mode, outcomes, input.components);
}

export async function offboardProject(
  deps: OnboardingDeps,
  input: { projectId: number; environments?: string[]; mode: Mode },
): Promise<OnboardResult> {
  const { projectId, mode } = input;
  const registry = new Registry(deps.redis, deps.keyPrefix);
  const registered = await registry.get(projectId);
  const pins = await registry.pins(projectId);
  const botSpId = await deps.botSp.objectId();
  // The tag search finds what a lost registry forgot; only apps the bot alone owns are removed from it.
  const tagged = await taggedApps(deps.graph, projectId);
  const taggedEnvs = tagged.map((a) => parseIdentityTags(a.tags)?.environment).filter((e) => e !== undefined);
  const path = registered?.path ?? `project-${projectId}`;
  const wanted = input.environments ?? [...new Set([...Object.keys(pins), ...taggedEnvs])];
  const managed = managedGroups(deps.policy);
  const outcomes: EnvironmentOutcome[] = [];
  const project = { id: projectId, path };
  const audited = mode === "apply" ? deps.audit : undefined;
  for (const environment of [...new Set(wanted)].sort()) {
    const base = { environment, refs: [], subjects: [], groups: [] };
    try {
      const r = await withLock(
        deps.redis,
        identityLockKey(deps.keyPrefix, projectId, environment),
        async () => {
          const options = {
            botSpId,
            projectId,
            environment,
            // Read again under the lock: a job that held it may have just pinned this identity.
            pin: await registry.getPin(projectId, environment),
            managedGroups: managed,
            tagged,
          };
          if (audited) {
            const planned = await offboardIdentity(deps.graph, { ...options, mode: "plan" });
            await audited.intended(project, environment, planned.changes.filter(isWrite));
          }
          return offboardIdentity(deps.graph, {
            ...options,
            mode,
            ...(deps.log ? { log: deps.log } : {}),
            ...(deps.onCollision ? { onCollision: deps.onCollision } : {}),
          });
        },
        deps.lock,
      );
      if (mode === "apply") await registry.removeIdentity(projectId, environment);
      const writes = r.changes.filter(isWrite).length;
      const status =
        writes === 0 ? (r.refused ? "refused" : "unchanged") : mode === "plan" ? "would-change" : "removed";
      const outcome: EnvironmentOutcome = {
        ...base,
        status,
        changes: r.changes,
        ...(r.refused
          ? { message: r.refused }
          : writes === 0
            ? { message: `no identity of the bot exists for environment "${environment}"` }
            : {}),
      };
      await audited?.settled(project, outcome);
      outcomes.push(outcome);
    } catch (err) {
      const failed = settle(environment, err, base);
      await audited?.settled(project, failed);
      outcomes.push(failed);
    }
  }
  return result(deps, project, mode, outcomes);
}

/**
 * Environments the bot manages for a project: those the registry pins. Never from tags: a planted app tagged
 * "production" must not make a rename onboard production.
 */
async function managedEnvironments(deps: OnboardingDeps, projectId: number) {
  const registry = new Registry(deps.redis, deps.keyPrefix);
  const registered = await registry.get(projectId);
  const pins = await registry.pins(projectId);
  const envs = Object.entries(pins)
    .filter(([, pin]) => pin.appObjectId !== undefined || pin.uniqueName !== undefined)
    .map(([env]) => env);
  return { environments: envs.sort(), path: registered?.path };
}

/** Re-subjects every managed environment after a rename or transfer (FIC names are stable: PATCH in place). */
export async function moveProject(
  deps: OnboardingDeps,
  input: { project: ProjectRef; components?: readonly SubClaimComponent[] },
): Promise<OnboardResult> {
  const { environments } = await managedEnvironments(deps, input.project.id);
  const res = await onboardProject(deps, {
    project: input.project,
    environments,
    mode: "apply",
    ...(input.components ? { components: input.components } : {}),
  });
  await new Registry(deps.redis, deps.keyPrefix).setPath(input.project.id, input.project.path);
  return res;
}

/** What would change for the project's managed environments; reads only. */
export async function projectStatus(
  deps: OnboardingDeps,
  projectId: number,
  opts: { path?: string; components?: readonly SubClaimComponent[] } = {},
): Promise<OnboardResult> {
  const { environments, path } = await managedEnvironments(deps, projectId);
  return onboardProject(deps, {
    project: { id: projectId, path: opts.path ?? path ?? `project-${projectId}` },
    environments,
    mode: "plan",
    ...(opts.components ? { components: opts.components } : {}),
  });
}

/**
 * Retires every identity of a project that is gone (GitLab answers 404, or shows it pending deletion) or no
 * longer owns its path (retireApp): its pinned apps and, failing closed, any unpinned app tagged for it that the
 * bot alone owns; an app anyone else owns is never touched. The identities leave the registry (drift repair
 * stops managing them) for the retired list, which keeps them until the retention period ends. Idempotent.
 */
export async function retireProject(
  deps: OnboardingDeps,
  input: { projectId: number; path?: string; mode: Mode; now?: Date },
): Promise<OnboardResult> {
  const { projectId, mode } = input;
  const now = input.now ?? new Date();
  const registry = new Registry(deps.redis, deps.keyPrefix);
  const retired = new RetiredIdentities(deps.redis, deps.keyPrefix);
  const registered = await registry.get(projectId);
  const pins = await registry.pins(projectId);
  const botSpId = await deps.botSp.objectId();
  const tagged = await taggedApps(deps.graph, projectId);
  const taggedEnvs = tagged.map((a) => parseIdentityTags(a.tags)?.environment).filter((e) => e !== undefined);
  const path = input.path ?? registered?.path ?? `project-${projectId}`;
  const managed = managedGroups(deps.policy);
  const outcomes: EnvironmentOutcome[] = [];
  const project = { id: projectId, path };
  const audited = mode === "apply" ? deps.audit : undefined;
  for (const environment of [...new Set([...Object.keys(pins), ...taggedEnvs])].sort()) {
    const base = { environment, refs: [], subjects: [], groups: [] };
    try {
      const r = await withLock(
        deps.redis,
        identityLockKey(deps.keyPrefix, projectId, environment),
        async () => {
          const pin = await registry.getPin(projectId, environment);
          const options = {
            botSpId,
            projectId,
            environment,
            pin,
            managedGroups: managed,
            tagged,
            retire: { now },
          };
          // The same audit protocol as every Entra write (entra-audit.ts): intended first, then the outcome.
          if (audited) {
            const planned = await offboardIdentity(deps.graph, { ...options, mode: "plan" });
            await audited.intended(project, environment, planned.changes.filter(isWrite));
          }
          const done = await offboardIdentity(deps.graph, {
            ...options,
            mode,
            ...(deps.log ? { log: deps.log } : {}),
            ...(deps.onCollision ? { onCollision: deps.onCollision } : {}),
          });
          if (mode === "apply") {
            // The first retirement's date counts: a repeated retirement does not extend the retention.
            if (pin?.appObjectId && !(await retired.get(projectId, environment)))
              await retired.record(projectId, path, pin, now);
            await registry.removeIdentity(projectId, environment);
          }
          return done;
        },
        deps.lock,
      );
      const writes = r.changes.filter(isWrite).length;
      const outcome: EnvironmentOutcome = {
        ...base,
        status:
          writes === 0 ? (r.refused ? "refused" : "unchanged") : mode === "plan" ? "would-change" : "removed",
        changes: r.changes,
        message:
          r.refused ??
          "retired: no federated credential, service principal disabled, kept for the retention period",
      };
      await audited?.settled(project, outcome);
      outcomes.push(outcome);
    } catch (err) {
      const failed = settle(environment, err, base);
      await audited?.settled(project, failed);
      outcomes.push(failed);
    }
  }
  if (mode === "apply") await registry.removeProject(projectId);
  return result(deps, { id: projectId, path }, mode, outcomes);
}
