/**
 * Whether a project path lies under a namespace full path: compared case-insensitively (GitLab routes are
 * case-insensitive) and on a "/" boundary, so `acme` covers `acme/x` and `ACME/sub/y` but not `acme-evil/x`,
 * nor `acme` itself (a project's path always has its namespace before it).
 */
export function isUnderNamespace(projectPath: string, namespace: string): boolean {
  const ns = namespace.replace(/^\/+|\/+$/g, "").toLowerCase();
  if (ns === "") return false;
  return projectPath.toLowerCase().startsWith(`${ns}/`) && projectPath.length > ns.length + 1;
}
