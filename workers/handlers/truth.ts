import type { GitLabProject } from "../../src/gitlab/api.ts";
import { isGitLabError } from "../../src/gitlab/errors.ts";
import type { ProjectRef } from "../../src/gitlab/intents.ts";
import { isPendingDeletion, isUnderNamespace } from "../../src/gitlab/paths.ts";
import type { WorkContext } from "./context.ts";
import { observeDelivery, refuseDelivery } from "./shared.ts";

/**
 * "The webhook is a hint; GitLab's API is the truth." Everything the worker writes to Entra is derived from
 * what these functions read back from GitLab, never from the delivery's JSON.
 */

export type ProjectRead =
  | { state: "live"; project: GitLabProject; ref: ProjectRef }
  /** Marked for deletion (or renamed `-deletion_scheduled-`): its path is already free for someone else. */
  | { state: "pending-deletion"; project: GitLabProject; ref: ProjectRef }
  /** 404: deleted, or the bot can no longer see it. Either way the bot cannot vouch for it any more. */
  | { state: "gone" };

/** `GET /projects/:id`. A 404 is an answer (gone); any other failure is thrown (retried if transient). */
export async function readProject(ctx: WorkContext, id: number): Promise<ProjectRead> {
  let project: GitLabProject;
  try {
    project = await ctx.rt.gitlab.getProject(id);
  } catch (err) {
    if (isGitLabError(err) && err.status === 404) return { state: "gone" };
    throw err;
  }
  // An answer about another project than the one asked for is no answer.
  if (project.id !== id) return { state: "gone" };
  const ref = { id: project.id, path: project.pathWithNamespace };
  return isPendingDeletion(project)
    ? { state: "pending-deletion", project, ref }
    : { state: "live", project, ref };
}

/**
 * Whether the secret that vouched for this work may speak for a project at `path` (GitLab's path, not the
 * payload's): a namespace-bound secret only for projects under its namespace; the instance secret and the
 * bot's own scheduled work for every project.
 */
export function speaksFor(ctx: WorkContext, path: string): boolean {
  const source = ctx.trigger.source;
  return source.kind !== "namespace" || isUnderNamespace(path, source.namespace);
}

/**
 * Re-reads the project a delivery names, before anything is written:
 * - 404: refused (the delivery is about nothing GitLab confirms);
 * - the payload's path differs from GitLab's: observed (logged, audited), GitLab's path is used;
 * - a namespace-bound delivery for a project GitLab places outside that namespace: refused.
 * Returns undefined when refused (already audited); the caller then stops, having written nothing.
 */
export async function confirmProject(
  ctx: WorkContext,
  hint: ProjectRef,
): Promise<Exclude<ProjectRead, { state: "gone" }> | undefined> {
  const read = await readProject(ctx, hint.id);
  if (read.state === "gone") {
    await refuseDelivery(
      ctx,
      hint,
      "project-not-found",
      `GitLab answers 404 for project ${hint.id} (the delivery named path ${hint.path})`,
    );
    return undefined;
  }
  if (!speaksFor(ctx, read.ref.path)) {
    const ns = ctx.trigger.source.kind === "namespace" ? ctx.trigger.source.namespace : "";
    await refuseDelivery(
      ctx,
      read.ref,
      "outside-namespace",
      `a delivery vouched for by the secret of namespace ${ns} named project ${hint.id}, which GitLab places at ${read.ref.path}`,
    );
    return undefined;
  }
  if (read.ref.path !== hint.path) {
    await observeDelivery(
      ctx,
      read.ref,
      "path-mismatch",
      `the delivery said project ${hint.id} is at ${hint.path}; GitLab says ${read.ref.path} (GitLab's path is used)`,
    );
  }
  return read;
}
