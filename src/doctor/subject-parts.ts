import { SUB_CLAIM_HEADS, SUB_CLAIM_TAILS, type SubClaimComponent } from "../config/policy-schema.ts";
import { buildSubject, type SubjectClaims } from "../entra/subject.ts";

/**
 * The inverse of buildSubject for GitLab's `sub`: `claim:value` pairs joined by ":". Unambiguous because
 * no value GitLab puts there can contain ":" (paths, git ref names and tiers cannot). Returns undefined when
 * the text is not such a subject (e.g. a hand-typed or foreign one), so callers fall back to plain diffs.
 */
export interface SubjectParts {
  components: SubClaimComponent[];
  values: SubjectClaims;
}

const KNOWN: ReadonlySet<string> = new Set([...SUB_CLAIM_HEADS, ...SUB_CLAIM_TAILS]);

export function parseSubject(sub: string): SubjectParts | undefined {
  const tokens = sub.split(":");
  const components: SubClaimComponent[] = [];
  const values: SubjectClaims = {};
  let i = 0;
  while (i < tokens.length) {
    const key = tokens[i] ?? "";
    if (!KNOWN.has(key)) return undefined;
    // A value runs to the next component name (defensive: git and GitLab forbid ":" in refs and paths).
    let j = i + 1;
    const parts: string[] = [];
    while (j < tokens.length && !KNOWN.has(tokens[j] ?? "")) parts.push(tokens[j++] ?? "");
    if (parts.length === 0) return undefined;
    components.push(key as SubClaimComponent);
    values[key as SubClaimComponent] = parts.join(":");
    i = j;
  }
  if (components.length === 0) return undefined;
  // Round trip through the one subject builder, so what we parsed is exactly what GitLab would build.
  return buildSubject(components, values) === sub ? { components, values } : undefined;
}

/** "branch:main" from a subject's ref_type/ref, when it has them. */
export function refRuleOf(parts: SubjectParts | undefined): string | undefined {
  const type = parts?.values.ref_type;
  const ref = parts?.values.ref;
  return type && ref ? `${type}:${ref}` : undefined;
}
