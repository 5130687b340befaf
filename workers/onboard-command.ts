import type { Job } from "bullmq";
import type { Intent, Trigger } from "../src/gitlab/intents.ts";
import { onboardProject } from "../src/onboarding/onboard.ts";
import type { EnvironmentOutcome } from "../src/onboarding/types.ts";
import { projectRule } from "../src/policy/rules.ts";
import type { ReportJob } from "../src/queue/jobs.ts";
import { approvalGate, identityLimitGate } from "./policy-gate.ts";
import type { WorkerRuntime } from "./runtime.ts";

type CommandIntent = Extract<Intent, { type: "command" }>;
export type ReportPort = (data: ReportJob) => Promise<string>;

/**
 * `/entra onboard <env ...>` once the command is authorized: privileged environments with approvers need a
 * valid approval (used up here) or wait for one; the project's identity limit applies; then apply, audit and
 * answer with the result, refused and waiting environments shown next to the others.
 */
export async function onboardCommand(
  rt: WorkerRuntime,
  job: Job,
  intent: CommandIntent,
  trigger: Trigger,
  environments: readonly string[],
  report: ReportPort,
) {
  const approved = await approvalGate(
    rt,
    trigger,
    { project: intent.project, requester: intent.author, issueIid: intent.issueIid, noteId: intent.noteId },
    environments,
  );
  const messages = new Map(
    approved.approvals.map((a) => [a.environment, `Approved by @${a.approver.username} (${a.via}).`]),
  );
  return onboardNow(rt, job, intent, trigger, approved.environments, approved.outcomes, messages, report);
}

/** Applies, audits and answers the command's note (also when an approval completes a pending request). */
export async function onboardNow(
  rt: WorkerRuntime,
  job: Job,
  intent: CommandIntent,
  trigger: Trigger,
  environments: readonly string[],
  extra: EnvironmentOutcome[],
  messages: ReadonlyMap<string, string>,
  report: ReportPort,
) {
  const limited = await identityLimitGate(rt, intent.project.id, environments);
  // Every Entra write is audited inside the onboarding (deps.audit), under this command's trigger.
  const onboarded = await onboardProject(
    rt.onboarding((l) => void job.log(l), "onboarding", trigger),
    { project: intent.project, environments: limited.environments, mode: "apply" },
  );
  const result = {
    ...onboarded,
    environments: [
      ...onboarded.environments.map((e) => {
        const m = messages.get(e.environment);
        return m && !e.message ? { ...e, message: m } : e;
      }),
      ...extra,
      ...limited.outcomes,
    ],
  };
  const summary = Object.fromEntries(
    result.environments.map((e) => [e.environment, `${e.status} (${e.changes.length} changes)`]),
  );
  return {
    environments: summary,
    reply: await report({
      trigger,
      project: intent.project,
      result,
      subClaim: rt.policy.gitlab.subClaimComponents[0] === "project_id",
      ciVariables: projectRule(rt.policy, intent.project.path).onProjectCreate.setCiVariables,
      issue: true,
      reply: {
        issueIid: intent.issueIid,
        noteId: intent.noteId,
        react: "thumbsup",
        internal: intent.confidential,
      },
    }),
  };
}
