import type { Intent } from "../../src/gitlab/intents.ts";
import type { Handler } from "./context.ts";
import { checkProject } from "./freed-paths.ts";
import { observeDelivery, summary } from "./shared.ts";

/**
 * project_rename / project_transfer: only a hint that the project may be somewhere else. The project is
 * re-read and its credentials follow GitLab's path (or are retired when GitLab no longer has it); the path
 * the delivery names is never used.
 */
export const onProjectMoved: Handler<Extract<Intent, { type: "project.moved" }>> = async (ctx) => {
  const { intent } = ctx;
  const check = await checkProject(ctx, intent.project.id);
  if (check.outcome === "not-managed") return { skipped: "project has no identities" };
  if (check.outcome === "refused") return { refused: true };
  if (check.outcome === "retired") return { retired: check.reason, environments: summary(check.result) };
  const livePath = check.live.pathWithNamespace;
  if (livePath !== intent.project.path) {
    await observeDelivery(
      ctx,
      { id: check.live.id, path: livePath },
      "path-mismatch",
      `the delivery said project ${intent.project.id} moved from ${intent.oldPath} to ${intent.project.path}; GitLab says it is at ${livePath} (GitLab's path is used)`,
    );
  }
  if (check.outcome === "unchanged") return { unchanged: livePath };
  return { moved: { from: check.from, to: livePath }, environments: summary(check.result) };
};
