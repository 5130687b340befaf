import type { Config } from "../config/env.ts";

/**
 * The bot serves exactly one GitLab instance: GITLAB_URL (also known by GITLAB_OIDC_ISSUER, GitLab's external
 * URL, and by the deprecated GITLAB_INSTANCES). X-Gitlab-Instance is not authenticated, so it is never a
 * trust signal: it can only make the intake ignore a delivery that says it comes from elsewhere (a
 * misconfigured second GitLab sending here), never accept or refuse one.
 */
function canonical(v: string): string {
  try {
    const u = new URL(v.trim());
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`.toLowerCase();
  } catch {
    return v.trim().replace(/\/+$/, "").toLowerCase();
  }
}

export function instanceNames(
  gitlab: Pick<Config["gitlab"], "url" | "oidcIssuer" | "instances">,
): Set<string> {
  const names = [gitlab.url, gitlab.oidcIssuer, ...gitlab.instances].filter((v): v is string => Boolean(v));
  return new Set(names.map(canonical));
}

/** True when the header names an instance other than ours (absent, or nothing configured: false). */
export function namesAnotherInstance(header: string | undefined, names: ReadonlySet<string>): boolean {
  if (header === undefined || header.trim() === "" || names.size === 0) return false;
  return !names.has(canonical(header));
}
