import type { Intent } from "../../src/gitlab/intents.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import type { Handler } from "./context.ts";
import { checkProject } from "./freed-paths.ts";
import { observeDelivery } from "./shared.ts";

/**
 * group_rename / user_rename: GitLab sends no per-project event although every path below changes. The
 * delivery's old path only selects which registered projects to re-read; each one's new path comes from
 * GitLab, never from the delivery.
 */
export const onNamespaceRenamed: Handler<Extract<Intent, { type: "namespace.renamed" }>> = async (ctx) => {
  const { rt, intent } = ctx;
  const registry = new Registry(rt.redis, rt.config.queuePrefix);
  const affected = await registry.findByPathPrefix(`${intent.oldPath}/`);
  const moved: Record<string, string> = {};
  const retired: Record<string, string> = {};
  for (const p of affected) {
    const check = await checkProject(ctx, p.projectId, { part: `p${p.projectId}` });
    if (check.outcome === "retired") retired[String(p.projectId)] = check.reason;
    if (check.outcome !== "moved" && check.outcome !== "unchanged") continue;
    const livePath = check.live.pathWithNamespace;
    if (check.outcome === "moved") moved[String(p.projectId)] = livePath;
    if (!livePath.toLowerCase().startsWith(`${intent.newPath.toLowerCase()}/`)) {
      await observeDelivery(
        ctx,
        { id: p.projectId, path: livePath },
        "path-mismatch",
        `the delivery said ${intent.oldPath} was renamed to ${intent.newPath}; GitLab shows project ${p.projectId} at ${livePath} (GitLab's path is used)`,
      );
    }
  }
  return { moved, retired };
};
