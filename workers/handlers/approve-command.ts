import { ACCESS_LEVELS } from "../../src/config/policy-schema.ts";
import { roleLabel } from "../../src/gitlab/commands.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { code, join, md, plain, type SafeMarkdown, trusted } from "../../src/gitlab/markdown-inert.ts";
import { ApprovalStore, approverMatch } from "../../src/onboarding/approvals.ts";
import { AuditValidationError } from "../../src/onboarding/audit.ts";
import type { Change, EnvironmentOutcome } from "../../src/onboarding/types.ts";
import { grantKey } from "../../src/policy/grants.ts";
import { environmentFor } from "../../src/policy/rules.ts";
import type { JobContext, WorkContext } from "./context.ts";
import { type CommandSource, noteReply, onboardNow } from "./onboard-command.ts";
import { commandLimitMessage, refusedOutcome } from "./policy-gate.ts";
import { report } from "./shared.ts";

type CommandIntent = Extract<Intent, { type: "command" }>;

/** One approval decision in the audit trail ({kind:"approval"}), under the context's trigger (the note's author). */
export async function auditApproval(
  ctx: WorkContext,
  project: { id: number; path: string },
  change: Change,
  environment: string | undefined,
  outcome: "ok" | "refused",
): Promise<void> {
  const t = ctx.trigger;
  const rec = {
    trigger: { event: t.event, eventId: t.eventId, ...(t.actor ? { actor: t.actor } : {}) },
    project,
    ...(environment ? { environment } : {}),
    change,
    outcome,
  };
  try {
    await ctx.rt.audit.append(rec);
  } catch (err) {
    // A delivery's path (not yet confirmed by GitLab) may hold text the trail refuses: the record is still written.
    if (!(err instanceof AuditValidationError)) throw err;
    await ctx.rt.audit.append({ ...rec, project: { id: project.id, path: `project-${project.id}` } });
  }
}

/**
 * `/entra approve <env ...>`: one of the policy's approvers consents to onboarding a privileged environment of
 * this project. Like every command, it is taken only from the note as GitLab's API returns it (command.ts:
 * author, text, issue, visibility), never from the delivery. The approver is matched by current username or
 * effective group membership; every decision is audited. An approval completes a pending `/entra onboard`
 * request at once, else waits (bounded) for one.
 */
export async function approveCommand(
  ctx: JobContext<CommandIntent>,
  source: CommandSource,
  environments: readonly string[],
  now: () => number = Date.now,
) {
  const { rt } = ctx;
  const { live, author, internal } = source;
  const project = { id: live.id, path: live.pathWithNamespace };
  const reply = (body: SafeMarkdown, react: "thumbsup" | false) =>
    report(ctx, { trigger: ctx.trigger, project, reply: noteReply(ctx, internal, body, react) });
  const noteId = ctx.intent.noteId;
  // Approvers need not be members of the project (a group of leads); anyone else who is not a member gets no
  // answer at all, like help and unknown commands (command.ts): the decision is audited, nothing is said.
  const member = (await rt.gitlab.memberAccessLevel(live.id, author.id)) !== null;
  let approver = false;
  const silent = (why: string) => {
    ctx.note(`approve from user ${author.id}, neither a member nor an approver: no reply (${why})`);
    return { refused: true, skipped: "neither a project member nor an approver" };
  };

  if (environments.length === 0) {
    if (!member) return silent("no environment named");
    return {
      reply: await reply(
        trusted("Name the environment to approve, e.g. `/entra approve production`."),
        false,
      ),
    };
  }
  const over = commandLimitMessage(rt.policy, environments);
  if (over)
    return member ? { refused: true, reply: await reply(over, false) } : silent("too many environments");

  const store = new ApprovalStore(rt.redis, rt.config.queuePrefix, now);
  const lines: SafeMarkdown[] = [];
  const toOnboard: string[] = [];
  const outcomes: EnvironmentOutcome[] = [];
  const messages = new Map<string, string>();
  let refused = false;
  // Each environment's answer: a line when the reply is plain text, a table row when an onboarding follows.
  // The outcome's message is plain text (the report renders it as a table cell); the line is markdown.
  const say = (env: string, line: SafeMarkdown, text: string, refs: readonly string[] = []) => {
    lines.push(line);
    outcomes.push(refusedOutcome(env, text, refs));
  };
  for (const env of environments) {
    const d = environmentFor(rt.policy, project.path, env);
    const approvers = d?.privileged ? d.settings.approvers : undefined;
    if (!d || !approvers?.length) {
      if (d) {
        const why = d.privileged
          ? "it is privileged but the policy names no approvers"
          : "it is not privileged";
        const role = roleLabel(d.settings.minAccessLevel);
        say(
          env,
          md`${code(env)} needs no approval: ${plain(why)}. Someone with the ${plain(role)} role can run ${code(`/entra onboard ${env}`)}.`,
          `${env} needs no approval: ${why}. Someone with the ${role} role can run /entra onboard ${env}.`,
        );
      } else {
        say(
          env,
          md`The platform policy has no rule for ${code(env)} in this project, so there is nothing to approve.`,
          `The platform policy has no rule for ${env} in this project, so there is nothing to approve.`,
        );
      }
      continue;
    }
    const match = await approverMatch(rt.gitlab, approvers, author.id);
    const who = `@${match.username ?? author.username} (user ${author.id})`;
    if (!match.ok) {
      refused = true;
      await auditApproval(
        ctx,
        project,
        {
          op: "refuse",
          kind: "approval",
          target: env,
          detail: `${who} is not an approver (approvers: ${approvers.join(", ")}); note ${noteId}`,
        },
        env,
        "refused",
      );
      ctx.log.info({ user: author.id, environment: env }, "approval refused: not an approver");
      say(
        env,
        md`Sorry, only the approvers of ${code(env)} may approve it (${join(approvers.map(code), ", ")}); this was recorded.`,
        `Sorry, only the approvers of ${env} may approve it (${approvers.join(", ")}); this was recorded.`,
      );
      continue;
    }
    approver = true;
    const request = await store.takeRequest(project.id, env);
    // The requester's role is read again: it may have changed since they asked.
    const requesterLevel = request
      ? await rt.gitlab.memberAccessLevel(project.id, request.requester.id)
      : null;
    const requesterOk =
      request !== undefined &&
      requesterLevel !== null &&
      requesterLevel >= ACCESS_LEVELS[d.settings.minAccessLevel];
    if (request && requesterOk) {
      await auditApproval(
        ctx,
        project,
        {
          op: "add",
          kind: "approval",
          target: env,
          detail: `approved by ${who} as ${match.via}, completing @${request.requester.username}'s request (note ${request.noteId}); approval note ${noteId}`,
        },
        env,
        "ok",
      );
      toOnboard.push(env);
      messages.set(
        env,
        `Approved by @${match.username} (${match.via}) for @${request.requester.username}'s request.`,
      );
      continue;
    }
    const validUntil = now() + rt.policy.approvalValidForMinutes * 60_000;
    await store.recordApproval({
      projectId: project.id,
      environment: env,
      approver: { id: author.id, username: match.username },
      via: match.via,
      noteId,
      validUntil,
      // What is approved: this rule's grant at this path; a move to another rule voids it (policy-gate.ts).
      grant: grantKey(rt.policy, project.path, env) ?? "",
    });
    await auditApproval(
      ctx,
      project,
      {
        op: "add",
        kind: "approval",
        target: env,
        detail: `approved by ${who} as ${match.via}, valid until ${new Date(validUntil).toISOString()}; note ${noteId}`,
      },
      env,
      "ok",
    );
    const until = new Date(validUntil).toISOString();
    const role = roleLabel(d.settings.minAccessLevel);
    const gone = request ? ` (@${request.requester.username}, who asked, no longer has that role)` : "";
    say(
      env,
      md`Approved ${code(env)} for this project until ${code(until)}. Someone with the ${plain(role)} role can now run ${code(`/entra onboard ${env}`)}${request ? md` (${code(`@${request.requester.username}`)}, who asked, no longer has that role)` : trusted("")}.`,
      `Approved ${env} for this project until ${until}. Someone with the ${role} role can now run /entra onboard ${env}${gone}.`,
      d.settings.refs,
    );
  }
  ctx.note(lines.join("\n") || `approved and onboarding ${toOnboard.join(", ")}`);
  if (toOnboard.length > 0) {
    const done = await onboardNow(ctx, source, toOnboard, outcomes, messages);
    return { approved: toOnboard, ...done };
  }
  if (!member && !approver) return silent("not an approver of any environment named");
  return {
    ...(refused ? { refused: true } : {}),
    reply: await reply(join(lines, "\n\n"), refused ? false : "thumbsup"),
  };
}
