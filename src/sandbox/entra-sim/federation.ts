import { flexibleExpressionHolds, parseFlexibleExpression } from "./flexible-expression.ts";

/**
 * Entra's decision on a federated token exchange, written from Microsoft's documents only (reference/entra.md
 * §1-3), never from the bot's code: the simulator judges the credentials the bot writes, so a shared
 * misunderstanding must not make both sides agree.
 *
 * - "issuer, subject and audience must all match exactly", case-sensitive since the breaking change
 *   "Federated Identity Credentials now use case-sensitive matching"; no trailing-slash or whitespace
 *   tolerance (Azure/login#175: a FIC issuer with a trailing slash fails).
 * - `audiences` holds a single value; the token's `aud` (a string or a list) must contain it.
 * - A flexible credential (beta `claimsMatchingExpression`) replaces the subject comparison.
 * - Which error: no credential for the presented issuer -> AADSTS700211; issuer known but no subject ->
 *   AADSTS700213, or AADSTS7002138 when a subject equals it ignoring case; issuer and subject known but not
 *   the audience -> AADSTS70021 (verbatim body, fixture token-error-aadsts70021.json) or, when the simulator
 *   is asked to, AADSTS7002121 (wording known only secondhand).
 */

export interface FederatedCredentialView {
  issuer: string;
  subject: string | null;
  audiences: readonly string[];
  claimsMatchingExpression?: { value: string; languageVersion: number } | null;
}

export interface PresentedAssertion {
  iss: string;
  sub: string;
  aud: string | readonly string[];
  [claim: string]: unknown;
}

export type FederationErrorCode = 70021 | 700211 | 700213 | 7002121 | 7002138;

export type FederationVerdict<F> =
  | { accepted: true; credential: F }
  | { accepted: false; code: FederationErrorCode; error: "invalid_request" | "invalid_client"; text: string };

/** The link Entra appends to federation errors (fixtures token-error-aadsts70021/700211.json). */
export const WORKLOAD_IDENTITY_FEDERATION_DOC =
  "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation";

const CHECK =
  "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.";

/**
 * AADSTS texts (without Entra's "\r\nTrace ID … Correlation ID … Timestamp" tail), each from its source:
 * 70021 verbatim from fixture token-error-aadsts70021.json; 700211 from fixture token-error-aadsts700211.json
 * (adapted there: markdown removed); 700213 Azure/login#453; 7002138 Azure/login#515; 7002121 secondhand.
 */
export const FEDERATION_TEXTS = {
  70021: (a: { iss: string; sub: string; aud: string }) =>
    `AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '${a.iss}'. Assertion Subject: '${a.sub}'. Assertion Audience: '${a.aud}'. ${WORKLOAD_IDENTITY_FEDERATION_DOC}`,
  700211: (a: { iss: string }) =>
    `AADSTS700211: No matching federated identity record found for presented assertion issuer '${a.iss}'. ${CHECK} ${WORKLOAD_IDENTITY_FEDERATION_DOC}`,
  700213: (a: { sub: string }) =>
    `AADSTS700213: No matching federated identity record found for presented assertion subject '${a.sub}'. ${CHECK} ${WORKLOAD_IDENTITY_FEDERATION_DOC}`,
  7002138: (a: { sub: string }) =>
    `AADSTS7002138: No matching federated identity record found for presented assertion subject '${a.sub}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. ${CHECK} ${WORKLOAD_IDENTITY_FEDERATION_DOC}`,
  7002121: (a: { aud: string }) =>
    `AADSTS7002121: No matching federated identity record found for presented assertion audience '${a.aud}'. ${CHECK} ${WORKLOAD_IDENTITY_FEDERATION_DOC}`,
} as const;

function subjectHolds(credential: FederatedCredentialView, assertion: PresentedAssertion): boolean {
  const expression = credential.claimsMatchingExpression;
  if (expression) {
    const clauses = parseFlexibleExpression(expression.value);
    return clauses !== null && flexibleExpressionHolds(clauses, assertion);
  }
  return credential.subject !== null && credential.subject === assertion.sub;
}

function audienceHolds(credential: FederatedCredentialView, assertion: PresentedAssertion): boolean {
  if (credential.audiences.length !== 1) return false;
  const presented = typeof assertion.aud === "string" ? [assertion.aud] : assertion.aud;
  return presented.includes(credential.audiences[0] as string);
}

/** Which of `credentials` (one application's, already propagated) accepts the assertion, or Entra's error. */
export function judgeAssertion<F extends FederatedCredentialView>(
  assertion: PresentedAssertion,
  credentials: readonly F[],
  opts: { audienceMismatchCode?: 70021 | 7002121 } = {},
): FederationVerdict<F> {
  const audText = typeof assertion.aud === "string" ? assertion.aud : assertion.aud.join(" ");
  const sameIssuer = credentials.filter((c) => c.issuer === assertion.iss);
  if (sameIssuer.length === 0) {
    return {
      accepted: false,
      code: 700211,
      error: "invalid_client",
      text: FEDERATION_TEXTS[700211](assertion),
    };
  }
  const sameSubject = sameIssuer.filter((c) => subjectHolds(c, assertion));
  if (sameSubject.length === 0) {
    const folded = assertion.sub.toLocaleLowerCase("en-US");
    const caseOnly = sameIssuer.some(
      (c) => !c.claimsMatchingExpression && c.subject?.toLocaleLowerCase("en-US") === folded,
    );
    const code = caseOnly ? 7002138 : 700213;
    return { accepted: false, code, error: "invalid_client", text: FEDERATION_TEXTS[code](assertion) };
  }
  const credential = sameSubject.find((c) => audienceHolds(c, assertion));
  if (credential) return { accepted: true, credential };
  if (opts.audienceMismatchCode === 7002121) {
    return {
      accepted: false,
      code: 7002121,
      error: "invalid_client",
      text: FEDERATION_TEXTS[7002121]({ aud: audText }),
    };
  }
  return {
    accepted: false,
    code: 70021,
    error: "invalid_request",
    text: FEDERATION_TEXTS[70021]({ iss: assertion.iss, sub: assertion.sub, aud: audText }),
  };
}
