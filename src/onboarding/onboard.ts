import type { Redis } from "ioredis";
import type { Policy } from "../config/policy.ts";
import type { SubClaimComponent } from "../config/policy-schema.ts";
import { EntraError } from "../entra/errors.ts";
import type { GraphApi, GraphApplication } from "../entra/graph.ts";
import type { BotServicePrincipal } from "../entra/self.ts";
import type { ProjectRef } from "../gitlab/intents.ts";
import { moveNeedsNewGrant } from "../policy/grants.ts";
import { GroupResolver } from "../policy/group-resolver.ts";
import { bindingRefusal, defaultBinding, type ProjectBinding } from "../policy/protection.ts";
import { environmentFor, projectRule } from "../policy/rules.ts";
import { templateValues } from "../policy/templates.ts";
import type { EntraWriteAudit } from "./entra-audit.ts";
import { identityLockKey, type LockOptions, withLock } from "./lock.ts";
import { managedGroups } from "./managed-groups.ts";
import { MembershipLedger } from "./memberships.ts";
import { appDisplayName, identityTags, parseIdentityTags } from "./naming.ts";
import { type IdentityPlan, planIdentity } from "./planner.ts";
import {
  isWrite,
  type Mode,
  type OwnershipCollision,
  offboardIdentity,
  reconcileIdentity,
  taggedApps,
} from "./reconciler.ts";
import { type IdentityPin, type PinStore, Registry, registeredIdentity } from "./registry.ts";
import type { ReplicationWait } from "./replication.ts";
import { RetiredIdentities } from "./retired.ts";
import type { Change, EnvironmentOutcome, OnboardResult } from "./types.ts";

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
   * Audit of Entra writes (entra-audit.ts): with it, an apply records each write as "intended" right before
   * making it (the reconciler's beforeWrite; offboarding and retirement plan first instead), and records the
   * outcome after.
   */
  audit?: EntraWriteAudit;
  /** Resolves group templates (cached per worker); default: a fresh resolver per call. */
  groups?: GroupResolver;
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
  /**
   * What GitLab mints in `sub` for the project, as its caller established it (subject-components.ts): the
   * components, and why GitLab refused ref_protected if it did. With it, privileged environments the binding
   * cannot protect are refused (bindingRefusal). Every worker path passes it; without it (tests of the
   * reconciler alone) subjects use the policy's components and nothing is refused for binding.
   */
  binding?: ProjectBinding;
  /** The project's former path, when this onboarding re-subjects a moved project (moveProject). */
  movedFrom?: string;
  /**
   * Environments someone the policy allows asked for just now (a command past its role and approval gates,
   * or the automatic onboarding the policy allows): their grant follows the project's current path. For every
   * other environment, a path that changed what the policy grants it (another rule, other template groups)
   * does not carry a privileged grant along (policy/grants.ts): its credentials and memberships are removed.
   */
  authorized?: readonly string[];
}

/**
 * The identity's pin, or, for an identity retired when its project looked gone, the retired pin: onboarding a
 * restored project takes its old app back (and enables it again) instead of making a second one. Every save
 * records `grantPath`, the path whose grant the identity now holds.
 */
function pinsWithRetired(
  registry: Registry,
  retired: RetiredIdentities,
  project: ProjectRef,
  environment: string,
  grantPath: string,
): PinStore {
  const store = registry.pinStore(project.id, project.path, environment);
  return {
    get: async () => (await store.get()) ?? (await retired.get(project.id, environment))?.pin,
    save: async (pin) => {
      await store.save({ ...pin, grantPath });
      await retired.remove(project.id, environment);
    },
  };
}

/**
 * The plan of an identity whose grant a move voided: no credential, no group; named for the project's
 * current path. The reconciler then removes its credentials and the memberships the bot made (the app and
 * principal stay, pinned, for a new /entra onboard).
 */
function voidedPlan(deps: OnboardingDeps, project: ProjectRef, environment: string, grantPath: string) {
  const decision =
    environmentFor(deps.policy, project.path, environment) ??
    environmentFor(deps.policy, grantPath, environment);
  const tags = identityTags(project.id, environment, project.path);
  const plan: IdentityPlan = {
    projectId: project.id,
    projectPath: project.path,
    environment,
    rule: decision?.key ?? environment,
    where: decision?.where ?? environment,
    privileged: decision?.privileged ?? true,
    displayName: appDisplayName(deps.policy.naming.prefix, project.path, environment),
    tags,
    lookupTag: tags[1] ?? "",
    fics: [],
    groups: [],
    refs: [],
  };
  return plan;
}

function voidedMessage(deps: OnboardingDeps, project: ProjectRef, environment: string, from: string) {
  const decision = environmentFor(deps.policy, project.path, environment);
  const why = decision
    ? `"${environment}" is privileged, and the move from ${from} to ${project.path} changed what the policy grants it (now ${decision.where})`
    : `the policy has no setting for "${environment}" in the rule that governs ${project.path} (moved from ${from})`;
  const next = decision
    ? `ask for it again with /entra onboard ${environment}${decision.settings.approvers?.length ? `, approved by one of ${decision.settings.approvers.join(", ")}` : ""}`
    : `/entra offboard ${environment} removes it`;
  return `${why}: a move does not carry a privileged grant into another rule, so its credentials and group memberships were removed (the app registration is kept); ${next}.`;
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
  const wanted = [...new Set(input.environments)];
  // GitLab first (the caller established it): what it puts in `sub` decides every subject below, and whether
  // privileged environments may exist.
  const binding = input.binding ?? defaultBinding(deps.policy);
  const groups = deps.groups ?? new GroupResolver(deps.graph);
  const ledger = new MembershipLedger(deps.redis, deps.keyPrefix);
  const registeredAtStart = await registry.get(project.id);
  for (const environment of wanted) {
    const empty = { environment, refs: [], subjects: [], groups: [] };
    const decision = environmentFor(deps.policy, project.path, environment);
    // The path whose grant this identity holds: a move (or a rename no event announced) may have changed it.
    const existingPin = await pinsWithRetired(registry, retired, project, environment, project.path).get();
    const heldAt = existingPin?.grantPath ?? input.movedFrom ?? registeredAtStart?.path ?? project.path;
    const voided =
      existingPin !== undefined &&
      !input.authorized?.includes(environment) &&
      moveNeedsNewGrant(deps.policy, heldAt, project.path, environment);
    if (!decision && !voided) {
      const rule = projectRule(deps.policy, project.path);
      outcomes.push({
        ...empty,
        status: "refused",
        changes: [],
        message: `the policy has no rule for environment "${environment}" in ${rule.index < 0 ? "its default environments" : `rule ${rule.name}`} (which governs ${project.path}): add ${rule.path}.${environment} (or a glob key such as "${environment.split("/")[0]}/*") with its refs to the policy file`,
      });
      continue;
    }
    const refusal = input.binding && decision && !voided ? bindingRefusal(binding, decision) : undefined;
    // Set when a refused identity's credentials must go anyway: they name the project's former path.
    let stripped: string | undefined;
    // Set when a move voided the identity's grant: credentials and memberships go (voidedPlan).
    let voidMessage: string | undefined;
    if (refusal) {
      const registered = await registry.get(project.id);
      const existing = registeredIdentity(registered, environment);
      if (!existing || !registered || registered.path === project.path) {
        // An identity made before binding existed is not torn down by an upgrade: say so, leave it to people.
        const message = existing
          ? `${refusal} Its existing credentials (app ${existing.appId}) were left as they are; /entra offboard ${environment} removes them.`
          : refusal;
        deps.log?.(`${environment}: refused: ${message}`);
        outcomes.push({
          ...empty,
          refs: [...(decision?.settings.refs ?? [])],
          status: "refused",
          changes: [],
          message,
        });
        continue;
      }
      // The project moved (rename, transfer): its credentials may name the former path, which someone else can
      // take. They cannot be re-subjected safely, and must not stay: removed, the identity kept (fail closed).
      stripped = `${refusal} Its credentials named the project's former path ${registered.path}, so they were removed (the app ${existing.appId} is kept): once GitLab can bind protected refs, /entra onboard ${environment} sets them up again.`;
      deps.log?.(`${environment}: refused: ${stripped}`);
    }
    let plan: IdentityPlan | undefined;
    if (voided || !decision) {
      plan = voidedPlan(deps, project, environment, heldAt);
      voidMessage = voidedMessage(deps, project, environment, heldAt);
      deps.log?.(`${environment}: refused: ${voidMessage}`);
    } else {
      try {
        const groupIds = await groups.resolve(
          decision.settings.groups,
          templateValues(project.path, environment),
          `${decision.where}.groups`,
        );
        plan = planIdentity({
          project,
          environment,
          policy: deps.policy,
          issuer: deps.issuer,
          groups: groupIds,
          binding,
        });
      } catch (err) {
        outcomes.push(settle(environment, err, empty));
        continue;
      }
    }
    if (!plan) {
      outcomes.push({ ...empty, status: "refused", changes: [], message: `no rule for "${environment}"` });
      continue;
    }
    const desired = stripped ? { ...plan, fics: [] } : plan;
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
      const made = await ledger.made(project.id, environment);
      tagged ??= await taggedApps(deps.graph, project.id);
      const seen = tagged;
      const options = {
        botSpId,
        // A voided grant stays voided (drift must not re-grant it); otherwise the grant follows this path.
        pins: pinsWithRetired(registry, retired, project, environment, voided ? heldAt : project.path),
        // Removable: groups the policy names by id, this plan's resolved groups, and those the bot made.
        managedGroups: new Set([...managed, ...desired.groups, ...made]),
        tagged: seen,
        ...(deps.replication ? { replication: deps.replication } : {}),
      };
      const reconcile = () =>
        reconcileIdentity(deps.graph, desired, {
          ...options,
          mode,
          ...(deps.log ? { log: deps.log } : {}),
          ...(deps.onCollision ? { onCollision: deps.onCollision } : {}),
          // Each write's intent is on record right before the write (entra-audit.ts), from the same reads.
          ...(audited ? { beforeWrite: (c: Change) => audited.intended(project, environment, [c]) } : {}),
        });
      // A plan only reads: it takes no lock, so `policy diff` and status never wait for (or block) a worker.
      const r =
        mode === "plan"
          ? await reconcile()
          : await withLock(
              deps.redis,
              identityLockKey(deps.keyPrefix, project.id, environment),
              reconcile,
              deps.lock,
            );
      if (mode === "apply" && r.identity) {
        const removed = r.changes.filter((c) => c.kind === "groupMembership" && c.op === "remove");
        await ledger.record(
          project.id,
          environment,
          desired.groups,
          removed.map((c) => c.target),
        );
      }
      const writes = r.changes.filter(isWrite).length;
      // A stripped identity (credentials removed, see above) is a refusal, whatever was written to get there.
      // A voided grant is refused too, except in a plan that still has its removals to make (drift applies them).
      const status =
        r.refused || (stripped && mode === "apply")
          ? "refused"
          : voidMessage && (mode === "apply" || writes === 0)
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
        ...(r.refused || voidMessage || stripped ? { message: r.refused ?? voidMessage ?? stripped } : {}),
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
  return result(deps, project, mode, outcomes, binding.components);
}

export async function offboardProject(
  deps: OnboardingDeps,
  input: {
    projectId: number;
    environments?: string[];
    mode: Mode;
    /**
     * Asked under the identity lock, with the pin as it is then, before anything is planned or written: a
     * reason to keep the identity after all (an onboarding re-created it meanwhile), or undefined to go on.
     * The environment cleanup uses it; a person's /entra offboard does not.
     */
    recheck?: (environment: string, pin: IdentityPin | undefined) => Promise<string | undefined>;
  },
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
          // Read again under the lock: a job that held it may have just pinned this identity.
          const pin = await registry.getPin(projectId, environment);
          const keep = await input.recheck?.(environment, pin);
          if (keep !== undefined) return { kept: keep };
          const options = { botSpId, projectId, environment, pin, managedGroups: managed, tagged };
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
      if ("kept" in r) {
        deps.log?.(`${environment}: kept: ${r.kept}`);
        outcomes.push({ ...base, status: "unchanged", changes: [], message: r.kept });
        continue;
      }
      if (mode === "apply") {
        await registry.removeIdentity(projectId, environment);
        await new MembershipLedger(deps.redis, deps.keyPrefix).forget(projectId, environment);
      }
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
  input: { project: ProjectRef; binding?: ProjectBinding },
): Promise<OnboardResult> {
  const { environments, path } = await managedEnvironments(deps, input.project.id);
  const res = await onboardProject(deps, {
    project: input.project,
    environments,
    mode: "apply",
    ...(input.binding ? { binding: input.binding } : {}),
    ...(path !== undefined ? { movedFrom: path } : {}),
  });
  await new Registry(deps.redis, deps.keyPrefix).setPath(input.project.id, input.project.path);
  return res;
}

/** What would change for the project's managed environments; reads only. */
export async function projectStatus(
  deps: OnboardingDeps,
  projectId: number,
  opts: { path?: string; binding?: ProjectBinding } = {},
): Promise<OnboardResult> {
  const { environments, path } = await managedEnvironments(deps, projectId);
  return onboardProject(deps, {
    project: { id: projectId, path: opts.path ?? path ?? `project-${projectId}` },
    environments,
    mode: "plan",
    ...(opts.binding ? { binding: opts.binding } : {}),
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
  const ledger = new MembershipLedger(deps.redis, deps.keyPrefix);
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
            // Groups named by template count as the bot's where it made the membership (memberships.ts).
            managedGroups: new Set([...managed, ...(await ledger.made(projectId, environment))]),
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
            const removed = done.changes.filter((c) => c.kind === "groupMembership" && c.op === "remove");
            await ledger.record(
              projectId,
              environment,
              [],
              removed.map((c) => c.target),
            );
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
