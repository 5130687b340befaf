import type { GitLabProject } from "../../src/gitlab/api.ts";
import { type OnboardInput, onboardProject } from "../../src/onboarding/onboard.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import {
  establishSubjectLayout,
  layoutRecord,
  plannedSubjectLayout,
  type SubjectResolution,
} from "../../src/onboarding/subject-components.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";
import { auditChanges } from "../audit-changes.ts";
import type { WorkContext } from "./context.ts";

/**
 * Establishes the project's `sub` layout in GitLab (subject-components.ts, the one place that decides it: the
 * policy's components plus ref_protected where the project's rule binds refs), before any Entra write. A
 * change to GitLab's setting is audited here. Every worker path that writes credentials comes through this:
 * onboarding, commands, renames (freed-paths.ts) and drift repair.
 */
export async function establishLayout(ctx: WorkContext, live: GitLabProject): Promise<SubjectResolution> {
  const { rt } = ctx;
  const layout = await establishSubjectLayout(rt.gitlab, rt.policy, live);
  if (layout.ok && layout.changes.length > 0) {
    await auditChanges(
      rt,
      ctx.trigger,
      { id: live.id, path: live.pathWithNamespace },
      layout.changes.map((change) => ({ change })),
    );
  }
  if (layout.ok && layout.unsupported) ctx.note(`ref_protected not set in GitLab: ${layout.unsupported}`);
  return layout;
}

/** Records what was established, once the project has credentials (the registry keeps registered projects only). */
export async function recordLayout(ctx: WorkContext, projectId: number, layout: SubjectResolution) {
  if (!layout.ok) return;
  await new Registry(ctx.rt.redis, ctx.rt.config.queuePrefix).setSubjectLayout(
    projectId,
    layoutRecord(layout),
  );
}

/**
 * Onboards (or plans) environments of a project as GitLab's API just showed it: its live path, and token
 * subjects in the layout GitLab will mint for it (establishLayout; in plan mode the registry's record, nothing
 * written). When no layout can match, every environment is refused and nothing is written to Entra. Applied
 * results are audited.
 */
export async function onboardLive(
  ctx: WorkContext,
  live: GitLabProject,
  environments: readonly string[],
  mode: OnboardInput["mode"],
): Promise<OnboardResult> {
  const { rt } = ctx;
  const deps = ctx.onboarding();
  const project = { id: live.id, path: live.pathWithNamespace };
  const registry = new Registry(rt.redis, rt.config.queuePrefix);
  const wanted = [...new Set(environments)];
  if (mode === "plan" || wanted.length === 0) {
    // Nothing to write (a plan, or every environment was refused or is waiting): GitLab is not asked.
    const recorded = (await registry.get(live.id))?.subjectLayout;
    const binding = plannedSubjectLayout(rt.policy, project.path, recorded, live.ciIdTokenSubClaimComponents);
    return onboardProject(deps, { project, environments: wanted, mode, binding });
  }
  const layout = await establishLayout(ctx, live);
  if (!layout.ok) {
    ctx.note(`sub-claim layout refused: ${layout.message}`);
    ctx.log.warn({ project: live.id }, "no token subject layout the credentials could match");
    return {
      project,
      mode,
      tenantId: rt.tenantId,
      issuer: rt.issuer,
      audience: rt.policy.gitlab.audience,
      subClaimComponents: [...layout.fallback.components],
      environments: wanted.map((environment) => ({
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
  // The environments asked for (or the policy's automatic ones): their grant follows the live path.
  const result = await onboardProject(deps, {
    project,
    environments: wanted,
    mode,
    binding: layout,
    authorized: wanted,
  });
  // Its Entra writes were audited as they happened (deps.audit); the GitLab setting change by establishLayout.
  await recordLayout(ctx, project.id, layout);
  return layout.notice ? { ...result, notices: [...(result.notices ?? []), layout.notice] } : result;
}
