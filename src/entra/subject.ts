import type { SubClaimComponent } from "../config/policy-schema.ts";

/** Claim values that can appear in a GitLab ID token's `sub`, as strings (GitLab's custom claims are strings). */
export type SubjectClaims = Partial<Record<SubClaimComponent, string | null | undefined>>;

/**
 * Builds `sub` exactly as GitLab does (JwtV2#initialize): `<claim>:<value>` pairs joined by ":", in the
 * configured order, skipping components whose value is absent. No escaping: GitLab does none, so a ref
 * containing ":" stays as is, and Entra compares the result byte for byte.
 */
export function buildSubject(components: readonly SubClaimComponent[], claims: SubjectClaims): string {
  const parts: string[] = [];
  for (const component of components) {
    const value = claims[component];
    if (value === undefined || value === null || value === "") continue;
    parts.push(`${component}:${value}`);
  }
  return parts.join(":");
}

/** A policy ref rule ("branch:main", "tag:v1.2.3") split into GitLab's ref_type and ref claims. */
export function parseRefRule(rule: string): { refType: "branch" | "tag"; ref: string } {
  const colon = rule.indexOf(":");
  const type = rule.slice(0, colon);
  if (colon < 0 || (type !== "branch" && type !== "tag")) {
    throw new Error(`ref rule "${rule}" must be "branch:<name>" or "tag:<name>"`);
  }
  return { refType: type, ref: rule.slice(colon + 1) };
}
