import type { Intent } from "../../src/gitlab/intents.ts";
import { answerMergeRequestComment } from "../merge-request-comment.ts";
import type { Handler } from "./context.ts";
import { report } from "./shared.ts";
import { confirmProject } from "./truth.ts";

/**
 * An `/entra` command in a merge-request comment is never run: it gets one pointer to the onboarding issue.
 * Even that GitLab write waits until GitLab confirms the project and that the delivery's secret may speak
 * for it.
 */
export const onMergeRequestComment: Handler<Extract<Intent, { type: "mergeRequest.comment" }>> = async (
  ctx,
) => {
  const { rt, intent, job } = ctx;
  const read = await confirmProject(ctx, intent.project);
  if (!read) return { refused: true };
  const project = { ...intent, project: read.ref };
  return answerMergeRequestComment(rt, job, project, ctx.trigger, (_rt, _job, data) => report(ctx, data));
};
