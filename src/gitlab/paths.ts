/**
 * Facts about GitLab project paths, as GitLab's API reports them. Pure functions: the worker uses them to
 * decide whether a project is still the one the bot onboarded and whether a delivery may speak for it.
 */

/** GitLab paths are unique case-insensitively (routes are looked up with LOWER(path)), though case-preserving. */
export function samePathIgnoringCase(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/**
 * Whether `path` lies under `namespace` (the namespace full path itself excluded: a namespace is not a
 * project), compared case-insensitively on a `/` boundary, so `acme` does not cover `acme-evil/x`.
 */
export function isUnderNamespace(path: string, namespace: string): boolean {
  const ns = namespace.replace(/^\/+|\/+$/g, "").toLowerCase();
  if (ns === "") return false;
  return path.toLowerCase().startsWith(`${ns}/`);
}

/**
 * GitLab renames a project to `<path>-deletion_scheduled-<project id>` when it is marked for deletion (and a
 * group's path segment to `<path>-deletion_scheduled-<group id>`), freeing the old path at once; the
 * `project_destroy` event only follows after the deletion delay (Projects::MarkForDeletionService; spec
 * fixtures such as "project-1-deletion_scheduled-177483").
 */
const DELETION_SCHEDULED = /-deletion_scheduled-\d+$/;

export function hasDeletionScheduledSegment(path: string): boolean {
  return path.split("/").some((segment) => DELETION_SCHEDULED.test(segment));
}

/** Pending deletion as GitLab shows it: the marked-for-deletion date, or the renamed path. */
export function isPendingDeletion(project: {
  pathWithNamespace: string;
  markedForDeletionOn?: string;
}): boolean {
  return Boolean(project.markedForDeletionOn) || hasDeletionScheduledSegment(project.pathWithNamespace);
}
