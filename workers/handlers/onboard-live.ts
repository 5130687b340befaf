import type { GitLabProject } from "../../src/gitlab/api.ts";
import { type OnboardInput, onboardProject } from "../../src/onboarding/onboard.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import { resolveSubjectComponents } from "../../src/onboarding/subject-components.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";
import { auditChanges } from "../audit-changes.ts";
import type { WorkContext } from "./context.ts";

/**
 * Onboards (or plans) environments of a project as GitLab's API just showed it: its live path, and token
 * subjects in the layout GitLab will mint for it (resolveSubjectComponents; the project setting is written
 * to GitLab first, before any Entra write). When no layout can match, every environment is refused and
 * nothing is written to Entra. Applied results are audited.
 */
export async function onboardLive(
  ctx: WorkContext,
  live: GitLabProject,
  environments: string[],
  mode: OnboardInput["mode"],
): Promise<OnboardResult> {
  const { rt } = ctx;
  const deps = ctx.onboarding();
  const project = { id: live.id, path: live.pathWithNamespace };
  const registry = new Registry(rt.redis, rt.config.queuePrefix);
  const recorded = mode === "plan" ? (await registry.get(live.id))?.subjectLayout : undefined;
  const layout = await resolveSubjectComponents(rt.gitlab, rt.policy, live, {
    write: mode === "apply",
    ...(recorded ? { recorded } : {}),
  });
  if (!layout.ok) {
    ctx.note(`sub-claim layout refused: ${layout.message}`);
    ctx.log.warn({ project: live.id }, "no token subject layout the credentials could match");
    return {
      project,
      mode,
      tenantId: rt.tenantId,
      issuer: rt.issuer,
      audience: rt.policy.gitlab.audience,
      subClaimComponents: [...rt.policy.gitlab.subClaimComponents],
      environments: [...new Set(environments)].map((environment) => ({
        environment,
        status: "refused",
        refs: [],
        subjects: [],
        groups: [],
        changes: [],
        message: "no token subject layout GitLab accepts for this project (see above)",
      })),
      notices: [layout.message],
    };
  }
  if (layout.changes.length > 0) {
    await auditChanges(
      rt,
      ctx.trigger,
      project,
      layout.changes.map((change) => ({ change })),
    );
  }
  const result = await onboardProject(deps, {
    project,
    environments,
    mode,
    components: layout.components,
  });
  // Its Entra writes were audited as they happened (deps.audit); the GitLab setting change above by us.
  if (mode === "apply") await registry.setSubjectLayout(project.id, layout.components);
  return layout.notice ? { ...result, notices: [...(result.notices ?? []), layout.notice] } : result;
}
