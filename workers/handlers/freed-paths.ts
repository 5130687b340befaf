import { EntraError } from "../../src/entra/errors.ts";
import type { GitLabProject } from "../../src/gitlab/api.ts";
import { code, md, plain, trusted } from "../../src/gitlab/markdown-inert.ts";
import { isRetired } from "../../src/onboarding/naming.ts";
import { moveProject, retireProject } from "../../src/onboarding/onboard.ts";
import { findIdentityApps } from "../../src/onboarding/reconciler.ts";
import { Registry, soleOwner } from "../../src/onboarding/registry.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";
import { projectRule } from "../../src/policy/rules.ts";
import type { WorkContext } from "./context.ts";
import { establishLayout, recordLayout } from "./onboard-live.ts";
import { firstSeenKey, refuseDelivery, report } from "./shared.ts";
import { readProject, speaksFor } from "./truth.ts";

/**
 * Fail closed on freed paths. A project's credentials are only as good as its path is its own: when GitLab says
 * the project is gone (404), pending deletion (its path already renamed `-deletion_scheduled-` and free), or
 * now somewhere else (renamed or transferred without an event reaching the bot, a subgroup moved), the
 * credentials naming the old path must stop working before anyone else can take that path.
 */

export type RetireReason = "not-found" | "path-reused" | "pending-deletion";

export type ProjectCheck =
  /** The bot manages no identity for this project. */
  | { outcome: "not-managed" }
  /** Where the bot has it; nothing to do. */
  | { outcome: "unchanged"; live: GitLabProject }
  /** Re-subjected to GitLab's path: the old path's subjects are gone. */
  | { outcome: "moved"; live: GitLabProject; from: string; result: OnboardResult }
  /** Credentials removed, service principals disabled, apps kept for the retention period. */
  | { outcome: "retired"; reason: RetireReason; result: OnboardResult }
  /** The secret that vouched for the work may not speak for this project (refused and audited). */
  | { outcome: "refused" };

/**
 * The path the bot last wrote credentials for: the registry's, else (registry loss) the path tags of apps the
 * bot alone owns. Tags are labels anyone who registers an app can copy: a look-alike app must not make a
 * project the bot never onboarded "managed" (lifecycle events would then write GitLab's settings and issues
 * for it), nor put its tag text into an issue.
 */
async function knownPath(ctx: WorkContext, projectId: number): Promise<string | undefined> {
  const registered = await new Registry(ctx.rt.redis, ctx.rt.config.queuePrefix).get(projectId);
  if (registered) return registered.path;
  const found = (await findIdentityApps(ctx.rt.graph, projectId)).filter((a) => !isRetired(a.tags));
  if (found.length === 0) return undefined;
  const me = await ctx.rt.botSp.objectId();
  const apps: typeof found = [];
  for (const app of found) {
    const owners = await ctx.rt.graph.listApplicationOwners(app.id).catch((err: unknown) => {
      if (err instanceof EntraError && err.code === "GRAPH_NOT_FOUND") return [];
      throw err;
    });
    if (soleOwner(owners, me)) apps.push(app);
  }
  if (apps.length === 0) return undefined;
  const tagged = apps.map((a) => a.tags.find((t) => t.startsWith("gitlab-path:"))?.slice(12)).find(Boolean);
  return tagged ?? `project-${projectId}`;
}

/**
 * Re-reads one project the bot manages and makes its credentials match GitLab's answer (see the module
 * comment). `part` names the report job when one event checks several projects. Used by drift repair and by
 * every lifecycle event, which are only hints that such a check is due.
 */
export async function checkProject(
  ctx: WorkContext,
  projectId: number,
  opts: { part?: string } = {},
): Promise<ProjectCheck> {
  const path = await knownPath(ctx, projectId);
  if (path === undefined) return { outcome: "not-managed" };
  const read = await readProject(ctx, projectId);

  if (read.state === "gone") {
    // The bot's own record of the path decides whether this delivery's secret may speak for it.
    if (!speaksFor(ctx, path)) {
      await refuseDelivery(
        ctx,
        { id: projectId, path },
        "outside-namespace",
        `project ${projectId} (${path})`,
      );
      return { outcome: "refused" };
    }
    // Who holds the freed path now (GitLab follows redirects, so a plain rename would have shown the project).
    const holder = await ctx.rt.gitlab.findProjectByPath(path);
    const reason: RetireReason = holder && holder.id !== projectId ? "path-reused" : "not-found";
    return retire(ctx, projectId, path, reason, undefined, opts.part);
  }
  if (!speaksFor(ctx, read.ref.path)) {
    await refuseDelivery(ctx, read.ref, "outside-namespace", `project ${projectId} is at ${read.ref.path}`);
    return { outcome: "refused" };
  }
  if (read.state === "pending-deletion") {
    return retire(ctx, projectId, path, "pending-deletion", read.project, opts.part);
  }
  const live = read.project;
  if (live.pathWithNamespace === path) return { outcome: "unchanged", live };

  // Renamed or transferred without an event reaching the bot (GitLab.com group hooks send none; subgroup
  // transfers send none anywhere): re-subject to GitLab's path, so the old path's subjects are gone at once.
  // The old path's subjects must go even when GitLab takes no layout: then the policy's components are used,
  // and privileged environments, which could not be bound to protected refs, lose their credentials.
  const layout = await establishLayout(ctx, live);
  if (!layout.ok) ctx.note(`sub-claim layout refused: ${layout.message}`);
  const deps = ctx.onboarding();
  ctx.note(`project ${projectId} moved: ${path} -> ${live.pathWithNamespace}`);
  const result = await moveProject(deps, {
    project: { id: projectId, path: live.pathWithNamespace },
    binding: layout.ok ? layout : layout.fallback,
  });
  await recordLayout(ctx, projectId, layout);
  // The issue shows the project path; keep it true. The variables are re-checked (reads only when unchanged)
  // so that the issue keeps saying they are set rather than listing the client ids.
  if (result.environments.length > 0) {
    await report(
      ctx,
      {
        trigger: ctx.trigger,
        project: result.project,
        result: layout.ok && layout.notice ? { ...result, notices: [layout.notice] } : result,
        issue: true,
        ciVariables: projectRule(ctx.rt.policy, live.pathWithNamespace).onProjectCreate.setCiVariables,
        bestEffort: true,
      },
      opts.part,
    );
  }
  return { outcome: "moved", live, from: path, result };
}

const WHY: Record<RetireReason, string> = {
  "not-found": "GitLab answers 404 for the project (deleted, or the bot can no longer see it)",
  "path-reused": "GitLab answers 404 for the project and its former path now belongs to another project",
  "pending-deletion": "GitLab shows the project as pending deletion, and its former path is free to be taken",
};

async function retire(
  ctx: WorkContext,
  projectId: number,
  path: string,
  reason: RetireReason,
  live: GitLabProject | undefined,
  part: string | undefined,
): Promise<ProjectCheck> {
  const { rt } = ctx;
  ctx.log.warn({ project: projectId, path, reason }, "retiring the project's identities (fail closed)");
  ctx.note(`project ${projectId} (${path}): ${WHY[reason]}: retiring its identities`);
  const where = ctx.trigger.source.kind === "internal" ? "drift" : "offboarding";
  const result = await retireProject(ctx.onboarding(where), { projectId, path, mode: "apply" });
  await rt.redis.del(firstSeenKey(ctx, projectId));
  // A pending-deletion project still has its issues (possibly read-only): say so there, if GitLab lets us.
  if (live && result.environments.length > 0) {
    const days = rt.policy.retention.disabledIdentityDays;
    await report(
      ctx,
      {
        trigger: ctx.trigger,
        project: { id: projectId, path: live.pathWithNamespace },
        result: {
          ...result,
          // Every value through the escaping layer: the path is the bot's record, but never trusted as markdown.
          notices: [
            md`> **The Azure identities of this project are retired.** ${plain(WHY[reason])}. Their federated credentials and group memberships were removed and their service principals disabled, so no pipeline can log in with them, whoever takes the path ${code(path)} next. The app registrations are kept, disabled, for the audit trail for ${days} day${days === 1 ? trusted("") : trusted("s")}, then deleted. If the project is restored, comment \`/entra onboard\` to set them up again.`,
          ],
        },
        issue: true,
        bestEffort: true,
      },
      part,
    );
  }
  return { outcome: "retired", reason, result };
}
