import type { Intent } from "../../src/gitlab/intents.ts";
import type { Handler } from "./context.ts";
import { checkProject } from "./freed-paths.ts";
import { firstSeenKey, refuseDelivery, summary } from "./shared.ts";
import { readProject } from "./truth.ts";

/**
 * project_destroy: acted on only when GitLab confirms it (404, or the project pending deletion). Then the
 * project's identities are retired: credentials and memberships removed, principals disabled, apps kept for
 * the retention period. A destroy of a project GitLab still shows changes nothing.
 */
export const onProjectDestroyed: Handler<Extract<Intent, { type: "project.destroyed" }>> = async (ctx) => {
  const { rt, intent } = ctx;
  const read = await readProject(ctx, intent.project.id);
  if (read.state === "live") {
    return refuseDelivery(
      ctx,
      read.ref,
      "destroy-not-confirmed",
      `a project_destroy for project ${intent.project.id} (${intent.project.path}), but GitLab shows it at ${read.ref.path}, not pending deletion`,
    );
  }
  const check = await checkProject(ctx, intent.project.id);
  if (check.outcome === "refused") return { refused: true };
  await rt.redis.del(firstSeenKey(ctx, intent.project.id));
  if (check.outcome === "retired") return { retired: check.reason, environments: summary(check.result) };
  return { skipped: "project has no identities" };
};
