import type { Policy } from "../../src/config/policy.ts";
import { ACCESS_LEVELS } from "../../src/config/policy-schema.ts";
import type { GitLabApi } from "../../src/gitlab/api.ts";
import { roleLabel } from "../../src/gitlab/commands.ts";
import type { ProjectRef, Trigger } from "../../src/gitlab/intents.ts";
import { md, type SafeMarkdown } from "../../src/gitlab/markdown-inert.ts";
import { type Approval, ApprovalStore } from "../../src/onboarding/approvals.ts";
import { accessLevelName } from "../../src/onboarding/authorize.ts";
import type { EnvironmentOutcome } from "../../src/onboarding/types.ts";
import { grantKey } from "../../src/policy/grants.ts";
import {
  type EnvironmentDecision,
  environmentFor,
  environmentIn,
  howToRequest,
  onboardsAutomatically,
  type ProjectRule,
  projectRule,
} from "../../src/policy/rules.ts";
import type { WorkerRuntime } from "../runtime.ts";

/**
 * What the policy lets happen before any Entra call: which environments are onboarded automatically, who may
 * trigger a first-deployment onboarding, how many environments one command and one project may have, and
 * whether a privileged environment has its approval. Refusals become outcomes with a message, so the
 * onboarding issue or the command's reply says why and what to do.
 */

export interface Gate {
  /** Environments that may proceed. */
  environments: string[];
  /** Refused or waiting environments, rendered in the issue or reply next to the others. */
  outcomes: EnvironmentOutcome[];
}

export function refusedOutcome(environment: string, message: string, refs: readonly string[] = []) {
  return {
    environment,
    status: "refused",
    refs: [...refs],
    subjects: [],
    groups: [],
    changes: [],
    message,
  } satisfies EnvironmentOutcome;
}

/** Project creation: the rule's onProjectCreate environments, minus privileged ones without autoOnboard. */
export function onCreateGate(policy: Policy, project: ProjectRef): Gate & { rule: ProjectRule } {
  const rule = projectRule(policy, project.path);
  const gate: Gate & { rule: ProjectRule } = { rule, environments: [], outcomes: [] };
  for (const env of rule.onProjectCreate.environments) {
    const d = environmentIn(rule, env);
    if (!d) continue;
    if (onboardsAutomatically(d)) gate.environments.push(env);
    else
      gate.outcomes.push(
        refusedOutcome(
          env,
          `Not set up automatically: ${env} is privileged, so creating a project does not grant it. ${cap(howToRequest(d))}.`,
          d.settings.refs,
        ),
      );
  }
  return gate;
}

const cap = (s: string) => `${s[0]?.toUpperCase() ?? ""}${s.slice(1)}`;

/**
 * First deployment: only environments the policy onboards on first sight, never a privileged one without
 * autoOnboard, and only when the deployer (the event's user, whose role is read from GitLab) has the
 * environment's minAccessLevel: a Developer's pipeline does not obtain a Maintainer-only environment.
 */
export async function firstSightCheck(
  rt: { policy: Policy; gitlab: Pick<GitLabApi, "memberAccessLevel"> },
  project: ProjectRef,
  env: { name: string; tier?: string | undefined },
  deployerId: number | undefined,
): Promise<{ ok: true; decision: EnvironmentDecision } | { ok: false; reason: string }> {
  const d = environmentFor(rt.policy, project.path, env.name, env.tier);
  if (!d?.settings.onFirstDeployment)
    return { ok: false, reason: "the policy does not onboard it on first sight" };
  if (!onboardsAutomatically(d)) {
    return { ok: false, reason: `it is privileged (${d.where}): ${howToRequest(d)}` };
  }
  if (deployerId === undefined) {
    return { ok: false, reason: "the event names no user, so the deployer's role cannot be checked" };
  }
  const level = await rt.gitlab.memberAccessLevel(project.id, deployerId);
  const needed = ACCESS_LEVELS[d.settings.minAccessLevel];
  if (level === null || level < needed) {
    return {
      ok: false,
      reason: `the deployer (user ${deployerId}) is ${level === null ? "not a member" : accessLevelName(level)}; ${d.where} needs ${roleLabel(d.settings.minAccessLevel)} or higher`,
    };
  }
  return { ok: true, decision: d };
}

/** One command names at most maxEnvironmentsPerCommand environments. */
export function commandLimitMessage(
  policy: Policy,
  environments: readonly string[],
): SafeMarkdown | undefined {
  const max = policy.maxEnvironmentsPerCommand;
  if (environments.length <= max) return undefined;
  return md`That names ${environments.length} environments; one command may name at most ${max}. Please split it into several commands.`;
}

/** A project has at most maxIdentitiesPerProject identities: new environments beyond that are refused. */
export async function identityLimitGate(
  rt: Pick<WorkerRuntime, "policy" | "registry">,
  projectId: number,
  environments: readonly string[],
): Promise<Gate> {
  const registered = (await rt.registry.get(projectId))?.environments ?? {};
  const have = Object.keys(registered).filter((e) => Object.hasOwn(registered, e));
  const max = rt.policy.maxIdentitiesPerProject;
  let count = have.length;
  const gate: Gate = { environments: [], outcomes: [] };
  for (const env of environments) {
    if (have.includes(env)) gate.environments.push(env);
    else if (count < max) {
      gate.environments.push(env);
      count += 1;
    } else {
      gate.outcomes.push(
        refusedOutcome(
          env,
          `Not set up: this project would have more than ${max} Azure identities, the most the platform policy allows per project (maxIdentitiesPerProject: ${max}). Offboard one you no longer use (/entra offboard <env>), or ask the platform team to raise the limit.`,
        ),
      );
    }
  }
  return gate;
}

/**
 * `/entra onboard` of privileged environments with approvers: proceeds with a valid approval (used up),
 * otherwise records the request, so that an approver's `/entra approve` completes it.
 */
export async function approvalGate(
  rt: Pick<WorkerRuntime, "policy" | "redis" | "config" | "audit">,
  trigger: Trigger,
  request: {
    project: ProjectRef;
    requester: { id: number; username: string };
    issueIid: number;
    noteId: number;
  },
  environments: readonly string[],
  now: () => number = Date.now,
): Promise<Gate & { approvals: Approval[]; waiting: string[] }> {
  const audit = (environment: string, detail: string) =>
    rt.audit.append({
      trigger: {
        event: trigger.event,
        eventId: trigger.eventId,
        ...(trigger.actor ? { actor: trigger.actor } : {}),
      },
      project: request.project,
      environment,
      change: { op: "observe", kind: "approval", target: environment, detail },
      outcome: "ok",
    });
  const store = new ApprovalStore(rt.redis, rt.config.queuePrefix, now);
  const gate = {
    environments: [] as string[],
    outcomes: [] as EnvironmentOutcome[],
    approvals: [] as Approval[],
    waiting: [] as string[],
  };
  for (const env of environments) {
    const d = environmentFor(rt.policy, request.project.path, env);
    const approvers = d?.privileged ? d.settings.approvers : undefined;
    if (!d || !approvers?.length) {
      gate.environments.push(env);
      continue;
    }
    // Bound to what was approved: an approval given before the project moved to another rule is void.
    const approval = await store.takeApproval(
      request.project.id,
      env,
      grantKey(rt.policy, request.project.path, env) ?? "",
    );
    if (approval) {
      gate.environments.push(env);
      gate.approvals.push(approval);
      await audit(
        env,
        `approval by @${approval.approver.username} (${approval.via}, note ${approval.noteId}) used by @${request.requester.username}'s /entra onboard (note ${request.noteId})`,
      );
      continue;
    }
    const validUntil = now() + rt.policy.approvalValidForMinutes * 60_000;
    await store.recordRequest({
      projectId: request.project.id,
      environment: env,
      requester: request.requester,
      issueIid: request.issueIid,
      noteId: request.noteId,
      validUntil,
    });
    gate.waiting.push(env);
    await audit(
      env,
      `requested by @${request.requester.username} (note ${request.noteId}); waiting for one of: ${approvers.join(", ")}`,
    );
    gate.outcomes.push(
      refusedOutcome(
        env,
        `Waiting for approval: ${env} is privileged. One of its approvers (${approvers.join(", ")}) must comment /entra approve ${env} in this project; the bot then sets it up. This request is valid until ${new Date(validUntil).toISOString()}.`,
        d.settings.refs,
      ),
    );
  }
  return gate;
}
