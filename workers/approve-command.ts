import type { Job } from "bullmq";
import { ACCESS_LEVELS } from "../src/config/policy-schema.ts";
import { parseCommand, roleLabel } from "../src/gitlab/commands.ts";
import type { Intent, Trigger } from "../src/gitlab/intents.ts";
import { code, join, md, plain, type SafeMarkdown, trusted } from "../src/gitlab/markdown-inert.ts";
import type { Logger } from "../src/logging.ts";
import { ApprovalStore, approverMatch } from "../src/onboarding/approvals.ts";
import type { Change, EnvironmentOutcome } from "../src/onboarding/types.ts";
import { environmentFor } from "../src/policy/rules.ts";
import { onboardNow, type ReportPort } from "./onboard-command.ts";
import { commandLimitMessage, refusedOutcome } from "./policy-gate.ts";
import type { WorkerRuntime } from "./runtime.ts";

type CommandIntent = Extract<Intent, { type: "command" }>;

export interface ApprovePorts {
  /** Answers the command's note with this text. */
  reply(body: string, react: "thumbsup" | false): Promise<string>;
  /**
   * Onboards these environments now (an approval completed a pending request) and answers the note with
   * the result; `outcomes` are shown next to them.
   */
  onboard(
    environments: string[],
    outcomes: EnvironmentOutcome[],
    messages: Map<string, string>,
  ): Promise<unknown>;
}

/**
 * `/entra approve <env ...>`: one of the policy's approvers consents to onboarding a privileged environment
 * of this project. The note is re-read from GitLab (its author and text are what counts, not the webhook's
 * copy); the approver is matched by current username or effective group membership; every decision is
 * audited. An approval completes a pending `/entra onboard` request at once, else waits (bounded) for one.
 */
export async function approveCommand(
  rt: WorkerRuntime,
  job: Job,
  intent: CommandIntent,
  trigger: Trigger,
  log: Logger,
  report: ReportPort,
  now: () => number = Date.now,
) {
  const project = intent.project;
  const reply = (body: SafeMarkdown, react: "thumbsup" | false) =>
    report({
      trigger,
      project,
      reply: { issueIid: intent.issueIid, noteId: intent.noteId, body, react, internal: intent.confidential },
    });
  const audit = async (change: Change, environment: string | undefined, outcome: "ok" | "refused") => {
    await rt.audit.append({
      trigger: {
        event: trigger.event,
        eventId: trigger.eventId,
        ...(trigger.actor ? { actor: trigger.actor } : {}),
      },
      project,
      ...(environment ? { environment } : {}),
      change,
      outcome,
    });
  };

  // GitLab's copy of the note decides: a forged or edited delivery cannot approve in someone's name.
  const note = (await rt.gitlab.listIssueNotes(project.id, intent.issueIid)).find(
    (n) => n.id === intent.noteId,
  );
  const parsed = note && !note.system && note.authorId === intent.author.id ? parseCommand(note.body) : null;
  if (!note || parsed?.kind !== "approve") {
    await audit(
      {
        op: "refuse",
        kind: "approval",
        target: `note ${intent.noteId}`,
        detail:
          "GitLab's API does not confirm this /entra approve note (missing, other author, or other text)",
      },
      undefined,
      "refused",
    );
    await job.log("refused: the approval note is not confirmed by GitLab's API");
    return { refused: true, skipped: "approval note not confirmed by GitLab" };
  }
  const environments = parsed.environments;
  if (environments.length === 0) {
    return {
      reply: await reply(
        trusted("Name the environment to approve, e.g. `/entra approve production`."),
        false,
      ),
    };
  }
  const over = commandLimitMessage(rt.policy, environments);
  if (over) return { refused: true, reply: await reply(over, false) };

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
    const match = await approverMatch(rt.gitlab, approvers, intent.author.id);
    const who = `@${match.username ?? intent.author.username} (user ${intent.author.id})`;
    if (!match.ok) {
      refused = true;
      await audit(
        {
          op: "refuse",
          kind: "approval",
          target: env,
          detail: `${who} is not an approver (approvers: ${approvers.join(", ")}); note ${intent.noteId}`,
        },
        env,
        "refused",
      );
      log.info({ user: intent.author.id, environment: env }, "approval refused: not an approver");
      say(
        env,
        md`Sorry, only the approvers of ${code(env)} may approve it (${join(approvers.map(code), ", ")}); this was recorded.`,
        `Sorry, only the approvers of ${env} may approve it (${approvers.join(", ")}); this was recorded.`,
      );
      continue;
    }
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
      await audit(
        {
          op: "add",
          kind: "approval",
          target: env,
          detail: `approved by ${who} as ${match.via}, completing @${request.requester.username}'s request (note ${request.noteId}); approval note ${intent.noteId}`,
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
      approver: { id: intent.author.id, username: match.username },
      via: match.via,
      noteId: intent.noteId,
      validUntil,
    });
    await audit(
      {
        op: "add",
        kind: "approval",
        target: env,
        detail: `approved by ${who} as ${match.via}, valid until ${new Date(validUntil).toISOString()}; note ${intent.noteId}`,
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
  await job.log(lines.join("\n") || `approved and onboarding ${toOnboard.join(", ")}`);
  if (toOnboard.length > 0) {
    const done = await onboardNow(rt, job, intent, trigger, toOnboard, outcomes, messages, report);
    return { approved: toOnboard, ...done };
  }
  return {
    ...(refused ? { refused: true } : {}),
    reply: await reply(join(lines, "\n\n"), refused ? false : "thumbsup"),
  };
}
