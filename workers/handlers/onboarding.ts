import type { GitLabProject } from "../../src/gitlab/api.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import type { EnvironmentOutcome } from "../../src/onboarding/types.ts";
import { projectRule } from "../../src/policy/rules.ts";
import type { WorkContext } from "./context.ts";
import { checkProject } from "./freed-paths.ts";
import { onboardLive } from "./onboard-live.ts";
import { report, summary } from "./shared.ts";

/**
 * Before a project is onboarded at a path, any other project the bot registered at that path is checked
 * against GitLab: whatever freed the path (a deletion, a rename) sent the bot no event, and the old project's
 * credentials must be gone before the newcomer's pipelines can run. The project itself, registered at another
 * path (moved without an event), is handled as the move it is first (checkProject): its other identities'
 * subjects and grants follow the move rules, instead of being left for drift repair to find.
 */
export async function clearFreedPath(ctx: WorkContext, live: GitLabProject): Promise<void> {
  const registry = new Registry(ctx.rt.redis, ctx.rt.config.queuePrefix);
  const own = await registry.get(live.id);
  if (own && own.path !== live.pathWithNamespace) {
    ctx.note(
      `project ${live.id} is registered at ${own.path}, GitLab has it at ${live.pathWithNamespace}: moving it first`,
    );
    await checkProject(ctx, live.id, { part: "moved" });
  }
  for (const other of await registry.findByPath(live.pathWithNamespace)) {
    if (other.projectId === live.id) continue;
    ctx.note(
      `path ${live.pathWithNamespace} was registered to project ${other.projectId}: checking it first`,
    );
    await checkProject(ctx, other.projectId, { part: `p${other.projectId}` });
  }
}

/**
 * Automatic onboarding (no command): apply, audit, then report with the project-creation settings of the rule
 * that governs the project. `extra`: environments the policy gates refused or held back (privileged, limits),
 * shown in the issue next to the others with what to do.
 */
export async function onboardAndReport(
  ctx: WorkContext,
  live: GitLabProject,
  environments: string[],
  issue: boolean,
  extra: EnvironmentOutcome[] = [],
) {
  await clearFreedPath(ctx, live);
  const onboarded = await onboardLive(ctx, live, environments, "apply");
  const result = { ...onboarded, environments: [...onboarded.environments, ...extra] };
  const reportId = await report(ctx, {
    trigger: ctx.trigger,
    project: result.project,
    result,
    ciVariables: projectRule(ctx.rt.policy, live.pathWithNamespace).onProjectCreate.setCiVariables,
    issue,
  });
  return { environments: summary(result), report: reportId };
}
