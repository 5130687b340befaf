import { inScope } from "../../src/config/policy.ts";
import { stripJwtSignatures } from "../../src/doctor/input.ts";
import { doctorReply } from "../../src/doctor/reply.ts";
import type { GitLabNote } from "../../src/gitlab/api.ts";
import { NAME_ENVIRONMENTS } from "../../src/gitlab/command-replies.ts";
import { helpText, type ParsedCommand, parseCommand } from "../../src/gitlab/commands.ts";
import { isGitLabError } from "../../src/gitlab/errors.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { code, md, type SafeMarkdown, trusted } from "../../src/gitlab/markdown-inert.ts";
import { BOT_MARKER } from "../../src/gitlab/normalise.ts";
import { authorizeCommand } from "../../src/onboarding/authorize.ts";
import { offboardProject, projectStatus } from "../../src/onboarding/onboard.ts";
import { parseSnippetArgs, snippetReply } from "../../src/onboarding/snippet-command.ts";
import { plannedSubjectLayout } from "../../src/onboarding/subject-components.ts";
import { projectRule } from "../../src/policy/rules.ts";
import { approveCommand, auditApproval } from "./approve-command.ts";
import type { Handler, JobContext } from "./context.ts";
import { type CommandSource, noteReply, onboardCommand } from "./onboard-command.ts";
import { onboardLive } from "./onboard-live.ts";
import { commandLimitMessage } from "./policy-gate.ts";
import { deliveryAuditBudget, observeDelivery, refuseDelivery, report, summary } from "./shared.ts";
import { confirmProject } from "./truth.ts";

type CommandIntent = Extract<Intent, { type: "command" }>;

/** The note as GitLab's API has it on that issue, or why the delivery is refused. */
async function readNote(
  ctx: JobContext<CommandIntent>,
): Promise<GitLabNote | { refuse: string; detail: string }> {
  const { rt, intent } = ctx;
  const where = `note ${intent.noteId} on issue #${intent.issueIid} of project ${intent.project.id}`;
  let note: GitLabNote;
  try {
    // Scoped to the issue: GitLab answers 404 for a note of another issue (lib/api/notes.rb).
    note = await rt.gitlab.getIssueNote(intent.project.id, intent.issueIid, intent.noteId);
  } catch (err) {
    if (isGitLabError(err) && err.status === 404)
      return { refuse: "note-not-found", detail: `GitLab has no ${where}` };
    throw err;
  }
  if (note.id !== intent.noteId)
    return { refuse: "note-mismatch", detail: `GitLab answered note ${note.id} for ${where}` };
  if (
    (note.noteableType ?? "Issue") !== "Issue" ||
    (note.noteableIid ?? intent.issueIid) !== intent.issueIid
  ) {
    return {
      refuse: "note-elsewhere",
      detail: `GitLab says ${where} belongs to ${note.noteableType ?? "?"} #${note.noteableIid ?? "?"}`,
    };
  }
  if (note.system) return { refuse: "system-note", detail: `GitLab says ${where} is a system note` };
  return note;
}

/**
 * A slash command, acted on only as GitLab's API shows the note: its author (authorised, never the payload's
 * `user`), its body (the command parsed from it, never the payload's text), that it is on that issue, and
 * whether it is internal. The delivery only says which note to read.
 */
export const onCommand: Handler<CommandIntent> = async (ctx) => {
  const { rt, intent } = ctx;
  const note = await readNote(ctx);
  if ("refuse" in note) return refuseDelivery(ctx, intent.project, note.refuse, note.detail);

  const me = await rt.gitlab.currentUser();
  if (me.id === note.authorId) return { skipped: "note written by the bot itself" };
  if (note.body.includes(BOT_MARKER)) return { skipped: "note carries the bot's marker" };
  const author = {
    id: note.authorId,
    username:
      note.authorUsername ??
      (intent.author.id === note.authorId ? intent.author.username : `user-${note.authorId}`),
  };
  if (intent.author.id !== note.authorId) {
    await observeDelivery(
      ctx,
      intent.project,
      "author-mismatch",
      `the delivery said user ${intent.author.id} wrote note ${intent.noteId}; GitLab says user ${note.authorId} did (GitLab's author is authorised)`,
    );
  }
  // Whatever the delivery claimed, the audit trail and every report name the note's real author.
  ctx.trigger = { ...ctx.trigger, actor: author };

  // A pasted ID token loses its signature before anything else sees the text.
  const command = parseCommand(stripJwtSignatures(note.body));
  const claimed = parseCommand(intent.line);
  if (!command || command.kind !== claimed?.kind) {
    await observeDelivery(
      ctx,
      intent.project,
      "body-mismatch",
      `the delivery's comment text holds ${claimed ? `a ${claimed.kind} command` : "no command"}; the note as GitLab has it holds ${command ? `a ${command.kind} command` : "none"} (GitLab's text is used)`,
    );
  }
  if (
    claimed?.kind === "approve" &&
    command?.kind !== "approve" &&
    (await deliveryAuditBudget(ctx, "approval-unconfirmed")) === "record"
  ) {
    // An approval GitLab's API does not confirm is one more refusal in the approval trail, where an auditor of
    // privileged environments looks: nothing was approved.
    await auditApproval(
      ctx,
      intent.project,
      {
        op: "refuse",
        kind: "approval",
        target: `note ${intent.noteId}`,
        detail:
          "GitLab's API does not confirm this /entra approve note (the note as GitLab has it holds another text)",
      },
      undefined,
      "refused",
    );
  }
  if (!command) return { skipped: "the note as GitLab has it holds no /entra command" };

  const read = await confirmProject(ctx, intent.project);
  if (!read) return { refused: true };
  if (read.state === "pending-deletion") {
    return refuseDelivery(ctx, read.ref, "pending-deletion", `project ${read.ref.id} is pending deletion`);
  }
  if (!inScope(rt.policy, read.ref.path))
    return { skipped: `project ${read.ref.path} is outside the policy scope` };

  // Answer internally when GitLab says the note is internal or its issue confidential.
  const internal = note.internal || (await rt.gitlab.getIssue(read.ref.id, intent.issueIid)).confidential;
  return runCommand(ctx, command, { live: read.project, author, internal });
};

async function runCommand(ctx: JobContext<CommandIntent>, command: ParsedCommand, who: CommandSource) {
  const { rt } = ctx;
  const { live, author, internal } = who;
  const project = { id: live.id, path: live.pathWithNamespace };
  const rule = projectRule(rt.policy, project.path);
  const base = { trigger: ctx.trigger, project };
  const reply = (body?: SafeMarkdown, react: "thumbsup" | "eyes" | false = "thumbsup") =>
    noteReply(ctx, internal, body, react);

  if (command.kind === "help" || command.kind === "unknown") {
    // Help is for the project's members. Anyone else (any signed-in user may comment on a public project)
    // gets no answer at all: the bot neither talks to strangers nor repeats what they typed.
    if ((await rt.gitlab.memberAccessLevel(live.id, author.id)) === null) {
      ctx.log.info({ user: author.id, command: command.kind }, "command from a non-member: no reply");
      ctx.note(`${command.kind} from user ${author.id}, not a member of the project: no reply`);
      return { skipped: "not a project member" };
    }
    // The word the commenter typed is never repeated; a suggestion is one of the bot's own command words.
    const preface =
      command.kind === "unknown"
        ? md`That is not a command I know.${command.suggestion ? md` Did you mean ${code(`/entra ${command.suggestion}`)}?` : trusted("")}\n\n`
        : trusted("");
    return {
      reply: await report(ctx, {
        ...base,
        reply: reply(
          md`${preface}${helpText(rt.policy, project.path)}`,
          command.kind === "help" ? "thumbsup" : false,
        ),
      }),
    };
  }

  // An approver need not be a member of the project: approvals are authorized by the policy's approvers.
  if (command.kind === "approve") return approveCommand(ctx, who, command.environments);

  const registered = command.kind === "offboard" && command.environments.length === 0;
  const envs =
    command.kind === "onboard" || command.kind === "plan"
      ? command.environments.length
        ? command.environments
        : rule.onProjectCreate.environments
      : command.kind === "offboard"
        ? registered
          ? Object.keys((await ctx.rt.registry.get(live.id))?.environments ?? {})
          : command.environments
        : [];
  const auth = await authorizeCommand(rt.gitlab, rt.policy, live.id, author.id, envs, {
    removal: command.kind === "offboard",
    projectPath: project.path,
  });
  if (!auth.ok) {
    ctx.log.info({ user: author.username, command: command.kind }, "command refused");
    ctx.note(`refused: ${auth.message}`);
    return { refused: true, reply: await report(ctx, { ...base, reply: reply(auth.message, false) }) };
  }
  // The limit is on what a comment names; defaults (the rule's, or every identity to offboard) are the policy's.
  const tooMany =
    "environments" in command ? commandLimitMessage(rt.policy, command.environments) : undefined;
  if (tooMany) {
    ctx.note("refused: too many environments in one command");
    return { refused: true, reply: await report(ctx, { ...base, reply: reply(tooMany, false) }) };
  }

  const deps = ctx.onboarding();
  switch (command.kind) {
    case "onboard":
    case "plan": {
      if (envs.length === 0) {
        return {
          reply: await report(ctx, {
            ...base,
            reply: reply(NAME_ENVIRONMENTS, false),
          }),
        };
      }
      // Onboarding: approvals of privileged environments and the project's identity limit first.
      if (command.kind === "onboard") return onboardCommand(ctx, who, envs);
      const result = await onboardLive(ctx, live, envs, "plan");
      return {
        environments: summary(result),
        reply: await report(ctx, { ...base, result, reply: reply() }),
      };
    }
    case "status": {
      // The layout recorded as established in GitLab, as every plan reads it; nothing is written.
      const recorded = (await rt.registry.get(live.id))?.subjectLayout;
      const binding = plannedSubjectLayout(
        rt.policy,
        project.path,
        recorded,
        live.ciIdTokenSubClaimComponents,
      );
      const result = await projectStatus(deps, live.id, { path: project.path, binding });
      return {
        environments: summary(result),
        reply: await report(ctx, { ...base, result, reply: reply() }),
      };
    }
    case "offboard": {
      const result = await offboardProject(ctx.onboarding("offboarding"), {
        projectId: live.id,
        environments: envs,
        mode: "apply",
      });
      return {
        environments: summary(result),
        reply: await report(ctx, { ...base, result, reply: reply() }),
      };
    }
    case "snippet": {
      const body = snippetReply({
        project,
        registered: await rt.registry.get(live.id),
        policy: rt.policy,
        issuer: rt.issuer,
        tenantId: rt.tenantId,
        request: parseSnippetArgs(command.args, rt.policy.snippet.variant),
      });
      return { reply: await report(ctx, { ...base, reply: reply(body) }) };
    }
    case "doctor": {
      const body = await doctorReply(
        {
          graph: rt.graph,
          policy: rt.policy,
          issuer: rt.issuer,
          registry: rt.registry,
          audit: rt.audit,
          botSp: rt.botSp,
        },
        live.id,
        command.rest,
      );
      return { reply: await report(ctx, { ...base, reply: reply(body) }) };
    }
  }
}
