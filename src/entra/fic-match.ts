/**
 * The one implementation of "does this token match this federated identity credential", as Entra decides it
 * (reference/entra.md §1-3): issuer, subject and a single audience compared byte for byte, case-sensitive, no
 * trailing-slash or whitespace tolerance; flexible FICs (beta `claimsMatchingExpression`) evaluated instead of
 * `subject`. Used by the Entra simulator's token endpoint and by the doctor to explain mismatches.
 */

export interface FicLike {
  name: string;
  issuer: string;
  subject: string | null;
  audiences: string[];
  claimsMatchingExpression?: { value: string; languageVersion: number } | null;
}

/** The assertion's claims. Extra claims are only read by flexible expressions naming them. */
export interface AssertionClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  [claim: string]: unknown;
}

export type MismatchCode =
  | "AADSTS70021"
  | "AADSTS700211"
  | "AADSTS700213"
  | "AADSTS7002121"
  | "AADSTS7002138";

export type MatchResult =
  | { ok: true; fic: FicLike }
  | {
      ok: false;
      code: MismatchCode;
      /** Entra's wording (reference/entra.md §3), without the trace/correlation suffix the token endpoint adds. */
      message: string;
      /** The credential closest to the assertion, and exactly where it differs. Absent when the app has none. */
      nearest?: { fic: FicLike; differences: FieldDiff[] };
    };

export interface FieldDiff {
  field: "issuer" | "subject" | "audience";
  expected: string;
  actual: string;
  /** `case`: equal ignoring case; `trailing-slash`: equal ignoring trailing "/"; `whitespace`: equal once trimmed. */
  kind: "case" | "trailing-slash" | "whitespace" | "different";
  /** First differing character (index into both strings; equals the shorter length when one is a prefix). */
  index: number;
}

export const ENTRA_FEDERATION_DOC =
  "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation";

/** Compares one field the way Entra does (exactly) and, when different, says how, for a human. */
export function diffField(field: FieldDiff["field"], expected: string, actual: string): FieldDiff | null {
  if (expected === actual) return null;
  let index = 0;
  while (index < expected.length && index < actual.length && expected[index] === actual[index]) index++;
  let kind: FieldDiff["kind"] = "different";
  if (expected.toLowerCase() === actual.toLowerCase()) kind = "case";
  else if (expected.replace(/\/+$/, "") === actual.replace(/\/+$/, "")) kind = "trailing-slash";
  else if (expected.trim() === actual.trim()) kind = "whitespace";
  return { field, expected, actual, kind, index };
}

// ---------------------------------------------------------------------------------------------------------
// Flexible FIC expressions: `claims['<claim>'] matches|eq '<value>'` clauses joined by ` and ` (no `or`).

export interface ExpressionClause {
  claim: string;
  op: "matches" | "eq";
  value: string;
}

const CLAUSE = /^claims\['([^']+)'\] (matches|eq) '([^']*)'$/;

/** Parses a flexible FIC expression; returns null for anything Entra's documented grammar does not allow. */
export function parseClaimsExpression(expression: string): ExpressionClause[] | null {
  const clauses: ExpressionClause[] = [];
  for (const part of expression.split(" and ")) {
    const m = CLAUSE.exec(part);
    if (!m) return null;
    clauses.push({ claim: m[1] as string, op: m[2] as "matches" | "eq", value: m[3] as string });
  }
  return clauses.length > 0 ? clauses : null;
}

/** `matches`: `*` any run of characters, `?` exactly one; everything else literal and case-sensitive. */
export function wildcardMatches(pattern: string, text: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, "[\\s\\S]*")
    .replace(/\?/g, "[\\s\\S]");
  return new RegExp(`^${source}$`).test(text);
}

export function evaluateClaimsExpression(expression: string, claims: AssertionClaims): boolean {
  const clauses = parseClaimsExpression(expression);
  if (!clauses) return false;
  return clauses.every(({ claim, op, value }) => {
    const actual = claims[claim];
    if (typeof actual !== "string") return false;
    return op === "eq" ? actual === value : wildcardMatches(value, actual);
  });
}

// ---------------------------------------------------------------------------------------------------------

function audiencesOf(claims: AssertionClaims): string[] {
  return typeof claims.aud === "string" ? [claims.aud] : claims.aud;
}

function subjectMatches(fic: FicLike, claims: AssertionClaims): boolean {
  const expression = fic.claimsMatchingExpression?.value;
  if (expression) return evaluateClaimsExpression(expression, claims);
  return fic.subject !== null && fic.subject === claims.sub;
}

function audienceMatches(fic: FicLike, claims: AssertionClaims): boolean {
  const wanted = fic.audiences[0];
  return fic.audiences.length === 1 && wanted !== undefined && audiencesOf(claims).includes(wanted);
}

/** Every field of `fic` that would stop `claims` from matching, in issuer, subject, audience order. */
export function differencesFor(fic: FicLike, claims: AssertionClaims): FieldDiff[] {
  const diffs: FieldDiff[] = [];
  const issuer = diffField("issuer", fic.issuer, claims.iss);
  if (issuer) diffs.push(issuer);
  if (!subjectMatches(fic, claims)) {
    const expected = fic.claimsMatchingExpression?.value ?? fic.subject ?? "";
    // An expression is not a string to compare char by char: report it whole.
    diffs.push(
      fic.claimsMatchingExpression?.value
        ? { field: "subject", expected, actual: claims.sub, kind: "different", index: 0 }
        : (diffField("subject", expected, claims.sub) ?? {
            field: "subject",
            expected,
            actual: claims.sub,
            kind: "different",
            index: 0,
          }),
    );
  }
  if (!audienceMatches(fic, claims)) {
    const expected = fic.audiences[0] ?? "";
    const candidates = audiencesOf(claims);
    const best = candidates
      .map((a) => diffField("audience", expected, a))
      .filter((d): d is FieldDiff => d !== null)
      .sort((a, b) => diffCost(a) - diffCost(b))[0];
    diffs.push(
      best ?? { field: "audience", expected, actual: candidates.join(" "), kind: "different", index: 0 },
    );
  }
  return diffs;
}

/** Near misses (case, slash, whitespace) and long shared prefixes rank closer than unrelated values. */
function diffCost(d: FieldDiff): number {
  if (d.kind !== "different") return 1;
  const longest = Math.max(d.expected.length, d.actual.length, 1);
  return 2 + (1 - d.index / longest);
}

function nearestOf(
  fics: FicLike[],
  claims: AssertionClaims,
): { fic: FicLike; differences: FieldDiff[] } | undefined {
  let best: { fic: FicLike; differences: FieldDiff[]; cost: number } | undefined;
  for (const fic of fics) {
    const differences = differencesFor(fic, claims);
    // The issuer decides which credentials Entra even considers, so an issuer difference weighs most.
    const cost = differences.reduce((sum, d) => sum + diffCost(d) * (d.field === "issuer" ? 10 : 1), 0);
    if (!best || cost < best.cost) best = { fic, differences, cost };
  }
  return best && { fic: best.fic, differences: best.differences };
}

/**
 * Chooses the credential Entra would accept, or the error Entra would answer:
 * - no credential with exactly this issuer -> AADSTS700211;
 * - issuer matches but no subject (or expression) does -> AADSTS700213, or AADSTS7002138 when a subject
 *   matches only case-insensitively;
 * - issuer and subject match but no audience does -> AADSTS70021. We deliberately answer the generic,
 *   verbatim-documented AADSTS70021 (its message names the assertion's audience) rather than AADSTS7002121,
 *   whose wording is only known secondhand. AADSTS7002121 stays in the type for callers matching on it.
 */
export function matchAssertion(claims: AssertionClaims, fics: FicLike[]): MatchResult {
  const byIssuer = fics.filter((f) => f.issuer === claims.iss);
  const bySubject = byIssuer.filter((f) => subjectMatches(f, claims));
  const full = bySubject.find((f) => audienceMatches(f, claims));
  if (full) return { ok: true, fic: full };

  const nearest = nearestOf(bySubject.length > 0 ? bySubject : byIssuer.length > 0 ? byIssuer : fics, claims);
  const withNearest = nearest ? { nearest } : {};
  const aud = audiencesOf(claims).join(" ");
  if (byIssuer.length === 0) {
    return {
      ok: false,
      code: "AADSTS700211",
      message: `AADSTS700211: No matching federated identity record found for presented assertion issuer '${claims.iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      ...withNearest,
    };
  }
  if (bySubject.length === 0) {
    const lower = claims.sub.toLowerCase();
    const caseOnly = byIssuer.some((f) => f.subject !== null && f.subject.toLowerCase() === lower);
    if (caseOnly) {
      return {
        ok: false,
        code: "AADSTS7002138",
        message: `AADSTS7002138: No matching federated identity record found for presented assertion subject '${claims.sub}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
        ...withNearest,
      };
    }
    return {
      ok: false,
      code: "AADSTS700213",
      message: `AADSTS700213: No matching federated identity record found for presented assertion subject '${claims.sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      ...withNearest,
    };
  }
  return {
    ok: false,
    code: "AADSTS70021",
    message: `AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '${claims.iss}'. Assertion Subject: '${claims.sub}'. Assertion Audience: '${aud}'.`,
    ...withNearest,
  };
}
