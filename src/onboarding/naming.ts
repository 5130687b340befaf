import { createHash } from "node:crypto";

/** Marker tag on every app registration the bot owns; the registry rebuilds itself from it. */
export const BOT_TAG = "gitlab-entra-bot";
export const projectTag = (projectId: number) => `gitlab-project:${projectId}`;
export const environmentTag = (environment: string) => `gitlab-env:${environment}`;
export const pathTag = (path: string) => `gitlab-path:${path}`;

/**
 * A retired identity (its project is gone or pending deletion): no credentials, service principal disabled,
 * kept for the audit trail until drift repair deletes it after the retention period. The exact tag lets one
 * filtered list call find every retired app; the dated one says since when.
 */
export const RETIRED_TAG = "gitlab-retired";
export const retiredOnTag = (when: Date) => `gitlab-retired-on:${when.toISOString()}`;

export function isRetired(tags: readonly string[]): boolean {
  return tags.includes(RETIRED_TAG);
}

/** When the identity was retired, from its tags; undefined when not retired or the date is unreadable. */
export function retiredOn(tags: readonly string[]): Date | undefined {
  if (!isRetired(tags)) return undefined;
  const raw = tags.find((t) => t.startsWith("gitlab-retired-on:"))?.slice("gitlab-retired-on:".length);
  const when = raw ? new Date(raw) : undefined;
  return when && !Number.isNaN(when.getTime()) ? when : undefined;
}

/** Graph caps each tag at 256 characters. */
export const MAX_TAG_LENGTH = 256;
/** Kept well under Graph's displayName limit so the Entra portal stays readable. */
export const MAX_DISPLAY_NAME = 120;
export const MAX_FIC_NAME = 120;
export const FIC_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/;

const hash = (s: string, len: number) => createHash("sha256").update(s, "utf8").digest("hex").slice(0, len);

/** Collapses anything outside [A-Za-z0-9_-] to "-" (refs may hold "/", ".", unicode). */
function slug(s: string): string {
  return s
    .replace(/[^A-Za-z0-9_-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[-_]+|[-_]+$/g, "");
}

/**
 * Deterministic display name `${prefix}-${projectPath}-${env}`; too-long names keep their head and get a
 * hash of the full name, so two long paths never collide.
 */
export function appDisplayName(prefix: string, projectPath: string, environment: string): string {
  const full = `${prefix}-${projectPath}-${environment}`;
  if (full.length <= MAX_DISPLAY_NAME) return full;
  const h = hash(full, 10);
  return `${full.slice(0, MAX_DISPLAY_NAME - h.length - 1)}~${h}`;
}

/**
 * FIC name for a ref rule ("branch:main" -> "gitlab-branch-main-1a2b3c4d5e"). Derived from the ref rule only,
 * never from the project path, so a rename re-subjects the FIC in place under the same name. The hash of
 * the exact rule keeps names unique when slugs collide ("feature/a" vs "feature-a", case variants).
 */
export function ficName(prefix: string, refRule: string): string {
  const h = hash(refRule, 10);
  const colon = refRule.indexOf(":");
  const type = colon >= 0 ? refRule.slice(0, colon) : "ref";
  const ref = colon >= 0 ? refRule.slice(colon + 1) : refRule;
  const head = slug(`${prefix}-${type}`);
  const room = MAX_FIC_NAME - head.length - h.length - 2;
  const body = slug(ref)
    .slice(0, Math.max(0, room))
    .replace(/[-_]+$/, "");
  return body ? `${head}-${body}-${h}` : `${head}-${h}`;
}

/** Reads project id and environment back from an app's tags (registry rebuild, offboarding). */
export function parseIdentityTags(
  tags: readonly string[],
): { projectId: number; environment: string; path?: string } | undefined {
  if (!tags.includes(BOT_TAG)) return undefined;
  const pid = tags.find((t) => t.startsWith("gitlab-project:"))?.slice("gitlab-project:".length);
  const env = tags.find((t) => t.startsWith("gitlab-env:"))?.slice("gitlab-env:".length);
  const path = tags.find((t) => t.startsWith("gitlab-path:"))?.slice("gitlab-path:".length);
  const projectId = Number(pid);
  if (!pid || !Number.isSafeInteger(projectId) || projectId <= 0 || env === undefined || env === "") {
    return undefined;
  }
  return { projectId, environment: env, ...(path ? { path } : {}) };
}

/** Tags for one identity; the path tag is dropped when it would exceed Graph's tag length. */
export function identityTags(projectId: number, environment: string, projectPath: string): string[] {
  const tags = [BOT_TAG, projectTag(projectId), environmentTag(environment)];
  const p = pathTag(projectPath);
  if (p.length <= MAX_TAG_LENGTH) tags.push(p);
  return tags;
}
