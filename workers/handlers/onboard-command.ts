import type { GitLabProject } from "../../src/gitlab/api.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import type { SafeMarkdown } from "../../src/gitlab/markdown-inert.ts";
import type { EnvironmentOutcome } from "../../src/onboarding/types.ts";
import { projectRule } from "../../src/policy/rules.ts";
import type { JobContext } from "./context.ts";
import { onboardLive } from "./onboard-live.ts";
import { clearFreedPath } from "./onboarding.ts";
import { approvalGate, identityLimitGate } from "./policy-gate.ts";
import { report, summary } from "./shared.ts";

type CommandIntent = Extract<Intent, { type: "command" }>;

/** A command as GitLab's API showed it: the live project, the note's real author, and its visibility. */
export interface CommandSource {
  live: GitLabProject;
  author: { id: number; username: string };
  internal: boolean;
}

/** The reply to the command's note (rendered from the result when `body` is absent). */
export function noteReply(
  ctx: JobContext<CommandIntent>,
  internal: boolean,
  body?: SafeMarkdown,
  react: "thumbsup" | "eyes" | false = "thumbsup",
) {
  return {
    issueIid: ctx.intent.issueIid,
    noteId: ctx.intent.noteId,
    ...(body !== undefined ? { body } : {}),
    react,
    internal,
  };
}

/**
 * `/entra onboard <env ...>` once the command is authorized: privileged environments with approvers need a
 * valid approval (used up here) or wait for one; the project's identity limit applies; then apply, audit and
 * answer with the result, refused and waiting environments shown next to the others.
 */
export async function onboardCommand(
  ctx: JobContext<CommandIntent>,
  source: CommandSource,
  environments: readonly string[],
) {
  const { live, author } = source;
  const approved = await approvalGate(
    ctx.rt,
    ctx.trigger,
    {
      project: { id: live.id, path: live.pathWithNamespace },
      requester: author,
      issueIid: ctx.intent.issueIid,
      noteId: ctx.intent.noteId,
    },
    environments,
  );
  const messages = new Map(
    approved.approvals.map((a) => [a.environment, `Approved by @${a.approver.username} (${a.via}).`]),
  );
  return onboardNow(ctx, source, approved.environments, approved.outcomes, messages);
}

/** Applies, audits and answers the command's note (also when an approval completes a pending request). */
export async function onboardNow(
  ctx: JobContext<CommandIntent>,
  source: CommandSource,
  environments: readonly string[],
  extra: EnvironmentOutcome[],
  messages: ReadonlyMap<string, string>,
) {
  const { live, internal } = source;
  const limited = await identityLimitGate(ctx.rt, live.id, environments);
  await clearFreedPath(ctx, live);
  // Every Entra write is audited inside the onboarding (deps.audit), under this command's trigger.
  const onboarded = await onboardLive(ctx, live, limited.environments, "apply");
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
  return {
    environments: summary(result),
    reply: await report(ctx, {
      trigger: ctx.trigger,
      project: result.project,
      result,
      ciVariables: projectRule(ctx.rt.policy, live.pathWithNamespace).onProjectCreate.setCiVariables,
      issue: true,
      reply: noteReply(ctx, internal),
    }),
  };
}
