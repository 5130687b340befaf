import { z } from "zod";
import { inScope, type Policy } from "../config/policy.ts";
import { findCommandLine } from "./commands.ts";
import type { Intent } from "./intents.ts";
import { code, md, type SafeMarkdown, trusted } from "./markdown-inert.ts";

/**
 * `/entra …` written in a merge-request comment. Commands act on the project's Azure identities and are
 * answered with its CI snippet, which belong in the onboarding issue, not in a review thread: the bot only
 * answers with a short pointer there, and runs nothing. GitLab sends MR comments as Note Hook (or
 * Confidential Note Hook for internal notes) with `noteable_type: "MergeRequest"` and a `merge_request`
 * object (webhook_events.md, "Comment on a merge request").
 */
const mergeRequestNote = z.looseObject({
  user: z.looseObject({ id: z.number().int(), username: z.string() }),
  project: z.looseObject({ id: z.number().int().positive(), path_with_namespace: z.string().min(1) }),
  object_attributes: z.looseObject({
    id: z.number().int().positive(),
    note: z.string(),
    system: z.boolean().nullish(),
    action: z.string().nullish(),
  }),
  merge_request: z.looseObject({ iid: z.number().int().positive() }),
});

export type MergeRequestCommandIntent = Extract<Intent, { type: "mergeRequest.comment" }>;

/** The intent for a command in an MR comment, or why there is none. */
export function mergeRequestCommand(
  body: unknown,
  policy: Policy,
  confidentialHook: boolean,
  botMarker: string,
): { intent: MergeRequestCommandIntent } | { ignored: string } {
  const r = mergeRequestNote.safeParse(body);
  if (!r.success)
    return { ignored: "comment on a MergeRequest without the fields a command needs (merge_request.iid)" };
  const { object_attributes: note, merge_request: mr, user, project } = r.data;
  if (note.system === true) return { ignored: "system notes are not commands" };
  if ((note.action ?? "create") !== "create")
    return { ignored: `note action ${note.action} is not a new comment` };
  if (note.note.includes(botMarker)) return { ignored: "note written by the bot" };
  if (findCommandLine(note.note) === null) return { ignored: "comment has no /entra command" };
  if (!inScope(policy, project.path_with_namespace))
    return { ignored: `project ${project.path_with_namespace} is outside the policy scope` };
  return {
    intent: {
      type: "mergeRequest.comment",
      project: { id: project.id, path: project.path_with_namespace },
      mergeRequestIid: mr.iid,
      noteId: note.id,
      author: { id: user.id, username: user.username },
      confidential: confidentialHook,
    },
  };
}

/** The whole answer: where commands work. No user text is repeated. */
export function mergeRequestReplyText(onboardingIssueIid: number | undefined): SafeMarkdown {
  const where =
    onboardingIssueIid !== undefined
      ? md`in the onboarding issue #${onboardingIssueIid} (or any issue of this project)`
      : trusted("in an issue of this project");
  return md`\`/entra\` commands are not run from merge requests, so nothing was done. Write the command on its own line ${where}; ${code("/entra help")} lists the commands.`;
}
