import { environmentRule, type Policy } from "../config/policy.ts";
import {
  type AssertionClaims,
  differencesFor,
  type FicLike,
  type FieldDiff,
  type MatchResult,
  matchAssertion,
} from "../entra/fic-match.ts";
import { buildSubject } from "../entra/subject.ts";
import type { AadstsInfo, DoctorClaims } from "./input.ts";
import { parseSubject, refRuleOf } from "./subject-parts.ts";

/** A credential as doctor sees it: Graph's FIC plus where it lives and, when known, when it last changed. */
export interface DoctorFic extends FicLike {
  id?: string;
  description?: string | null;
  environment?: string;
  /** Application (client) id of the app holding it: what the pipeline's AZURE_CLIENT_ID must be. */
  appId?: string;
  /** Last create/update, from the bot's audit trail (Graph's FIC resource has no timestamp). */
  changedAt?: Date;
}

export interface IssuerCheck {
  ok: boolean;
  url: string;
  detail: string;
}

export interface DiagnoseInput {
  claims: DoctorClaims;
  aadsts?: AadstsInfo;
  fics: DoctorFic[];
  policy: Policy;
  /** The issuer the bot writes into credentials (resolveIssuer). */
  issuer: string;
  now: Date;
  project?: { id: number; path?: string };
  /** The environment the pipeline deploys to, when known (flag, or the token's `environment` claim). */
  environment?: string;
  issuerCheck?: IssuerCheck;
  /** How long after a write a credential may still be propagating (default 600 s). */
  propagationSeconds?: number;
}

export interface FieldCell {
  /** The credential's value. */
  expected: string;
  /** The token's value; undefined when the input did not say. */
  actual: string | undefined;
  diff: FieldDiff | null;
}

export interface DiagnosisRow {
  fic: DoctorFic;
  issuer: FieldCell;
  subject: FieldCell;
  audience: FieldCell;
  /** Every field the input names equals this credential's. */
  matches: boolean;
  /** The credential the verdicts talk about. */
  nearest: boolean;
  ageSeconds?: number;
}

export type VerdictCode =
  | "token-expired"
  | "credential-propagating"
  | "credential-matches"
  | "match"
  | "wrong-client-id"
  | "missing-service-principal"
  | "no-identity"
  | "issuer-trailing-slash"
  | "issuer-case"
  | "issuer-whitespace"
  | "issuer-different"
  | "project-renamed"
  | "subject-form"
  | "ref-not-allowed"
  | "ref-credential-missing"
  | "environment-not-in-policy"
  | "subject-case"
  | "subject-whitespace"
  | "subject-different"
  | "audience-mismatch"
  | "issuer-unreachable"
  | "issuer-discoverable"
  | "signature-invalid"
  | "insufficient-input";

export interface Verdict {
  code: VerdictCode;
  severity: "error" | "warning" | "info";
  message: string;
  fix: string;
}

export interface Diagnosis {
  token: DoctorClaims & { expiresInSeconds?: number };
  aadsts?: AadstsInfo;
  rows: DiagnosisRow[];
  verdicts: Verdict[];
  /** Entra's decision (matchAssertion) when the input names issuer, subject and audience. */
  match?: MatchResult;
}

const KIND_WORDS: Record<FieldDiff["kind"], string> = {
  case: "only in letter case",
  "trailing-slash": "only by a trailing slash",
  whitespace: "only by surrounding whitespace",
  different: "",
};

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function describeRef(rule: string): string {
  return rule.replace(/^branch:/, "branch ").replace(/^tag:/, "tag ");
}

function ficLabel(fic: DoctorFic): string {
  return fic.environment ? `${fic.name} (${fic.environment})` : fic.name;
}

/** Fills what the input does not say with the credential's own value, so only known fields can differ. */
function filledClaims(claims: DoctorClaims, fic: DoctorFic): AssertionClaims {
  return {
    iss: claims.iss ?? fic.issuer,
    sub: claims.sub ?? fic.subject ?? "",
    aud: claims.aud ?? fic.audiences,
  };
}

function rowFor(claims: DoctorClaims, fic: DoctorFic, now: Date): DiagnosisRow {
  const diffs = differencesFor(fic, filledClaims(claims, fic));
  const cell = (field: FieldDiff["field"], expected: string, actual: string | undefined): FieldCell => ({
    expected,
    actual,
    diff: diffs.find((d) => d.field === field) ?? null,
  });
  const audienceDiff = diffs.find((d) => d.field === "audience");
  return {
    fic,
    issuer: cell("issuer", fic.issuer, claims.iss),
    subject: cell("subject", fic.claimsMatchingExpression?.value ?? fic.subject ?? "", claims.sub),
    audience: cell(
      "audience",
      fic.audiences[0] ?? "",
      claims.aud === undefined ? undefined : (audienceDiff?.actual ?? claims.aud.join(" ")),
    ),
    matches: diffs.length === 0,
    nearest: false,
    ...(fic.changedAt ? { ageSeconds: (now.getTime() - fic.changedAt.getTime()) / 1000 } : {}),
  };
}

/** Lower is closer; the issuer decides which credentials Entra even considers, so it weighs most. */
function distance(row: DiagnosisRow): number {
  let cost = 0;
  for (const c of [row.issuer, row.subject, row.audience]) {
    if (!c.diff) continue;
    const near = c.diff.kind === "different" ? 2 + 1 - c.diff.index / Math.max(c.expected.length, 1) : 1;
    cost += near * (c.diff.field === "issuer" ? 10 : 1);
  }
  return cost;
}

/**
 * Pure: the token's claims (or what an AADSTS message says of them) against the project's credentials and
 * the policy -> one row per credential and the verdicts, each with a fix. Matching is fic-match.ts's.
 */
export function diagnose(input: DiagnoseInput): Diagnosis {
  const { claims, fics, now } = input;
  const verdicts: Verdict[] = [];
  const add = (v: Verdict) => verdicts.push(v);
  const token: Diagnosis["token"] = { ...claims };
  if (claims.exp !== undefined) token.expiresInSeconds = Math.round(claims.exp - now.getTime() / 1000);

  const code = input.aadsts?.code;
  const expired =
    (token.expiresInSeconds !== undefined && token.expiresInSeconds <= 0) || code === "AADSTS700024";
  if (expired) {
    const when = claims.exp !== undefined ? ` at ${new Date(claims.exp * 1000).toISOString()}` : "";
    add({
      code: "token-expired",
      severity: "error",
      message: `token expired${when}: Entra refuses an expired ID token (AADSTS700024) whatever the credentials say`,
      fix: "read a fresh ID token: exchange it right after the job starts (GitLab ID tokens live 5 minutes by default), or re-run the job",
    });
  }
  if (code === "AADSTS700016") {
    add({
      code: "wrong-client-id",
      severity: "error",
      message: "the client id the pipeline used names no app registration in this tenant",
      fix: `set AZURE_CLIENT_ID to the environment's client id${appIdsHint(fics)} (the bot sets it as an environment-scoped CI/CD variable)`,
    });
  }
  if (code === "AADSTS7000229") {
    add({
      code: "missing-service-principal",
      severity: "error",
      message: "the app registration has no service principal in the tenant",
      fix: "run /entra onboard for the environment: the bot recreates the service principal and its group memberships",
    });
  }
  if (code === "AADSTS700027") {
    add({
      code: "signature-invalid",
      severity: "error",
      message: "Entra could not verify the ID token's signature with the issuer's published keys",
      fix: "pass the job's own GITLAB_OIDC_TOKEN unmodified; if GitLab rotated its signing key, retry in a few minutes",
    });
  }
  if (code === "AADSTS50166") {
    add({
      code: "issuer-unreachable",
      severity: "error",
      message: `Entra could not fetch the issuer's OIDC discovery document${claims.iss ? ` (${claims.iss}/.well-known/openid-configuration)` : ""}`,
      fix: "the issuer must be reachable for discovery: GitLab must serve /.well-known/openid-configuration and its keys over HTTPS from the public internet",
    });
  }
  if (input.issuerCheck) {
    const c = input.issuerCheck;
    if (c.ok) {
      add({
        code: "issuer-discoverable",
        severity: "info",
        message: `issuer discovery OK: ${c.detail}`,
        fix: "-",
      });
    } else if (!verdicts.some((v) => v.code === "issuer-unreachable")) {
      add({
        code: "issuer-unreachable",
        severity: "error",
        message: `issuer must be reachable for discovery: GET ${c.url} failed: ${c.detail}`,
        fix: "Entra fetches the signing keys through the issuer's discovery document: serve GitLab over HTTPS with a publicly trusted certificate, reachable from the internet, and make iss equal the document's issuer",
      });
    }
  }

  const hasFields = claims.iss !== undefined || claims.sub !== undefined || claims.aud !== undefined;
  if (fics.length === 0) {
    const env = input.environment ? ` ${input.environment}` : "";
    add({
      code: "no-identity",
      severity: "error",
      message: input.project
        ? `GitLab project ${input.project.id}${input.project.path ? ` (${input.project.path})` : ""} has no Entra identity${env ? ` for environment${env}` : ""} made by the bot`
        : "could not tell which GitLab project this is, so no credentials were loaded",
      fix: input.project
        ? `run /entra onboard${env} in an issue of the project (or check that the policy scope includes it)`
        : "pass --project <id> (the token's project_id), or paste the claims JSON which carries it",
    });
    return finish({ token, rows: [], verdicts, input });
  }
  const rows = fics.map((f) => rowFor(claims, f, now));
  if (!hasFields) {
    if (verdicts.length === 0) {
      add({
        code: "insufficient-input",
        severity: "warning",
        message: "the input names no issuer, subject or audience to compare",
        fix: "paste the iss/sub/aud lines the failed job printed, or the whole AADSTS message",
      });
    }
    return finish({ token, rows, verdicts, input });
  }

  // The environment the job deploys to decides which app Entra looked at: judge against its credentials
  // only, and mention a match elsewhere (the same token would log in to that other environment).
  const envRows = input.environment ? rows.filter((r) => r.fic.environment === input.environment) : [];
  const scope = envRows.length > 0 ? envRows : rows;
  let match: MatchResult | undefined;
  let nearest: DiagnosisRow | undefined;
  if (claims.iss !== undefined && claims.sub !== undefined && claims.aud !== undefined) {
    match = matchAssertion(
      { iss: claims.iss, sub: claims.sub, aud: claims.aud },
      scope.map((r) => r.fic),
    );
    const chosen = match.ok ? match.fic : match.nearest?.fic;
    nearest = scope.find((r) => r.fic === chosen);
  } else {
    nearest = [...scope].sort((a, b) => distance(a) - distance(b))[0];
  }
  if (nearest) nearest.nearest = true;

  const matching = scope.filter((r) => r.matches);
  const window = input.propagationSeconds ?? 600;
  if (matching.length > 0) {
    const fresh = matching.find((r) => r.ageSeconds !== undefined && r.ageSeconds < window);
    const row = fresh ?? matching[0];
    if (row && !expired) verdictForMatch(row, fresh !== undefined, input, add, matching);
    return finish({ token, rows, verdicts, input, match });
  }
  const envs = [...new Set(scope.map((r) => r.fic.environment).filter((e): e is string => !!e))].sort();
  if (nearest) explainMismatch(nearest, input, add, envs);
  const elsewhere = rows.find((r) => r.matches && !scope.includes(r));
  if (elsewhere) {
    add({
      code: "match",
      severity: "info",
      message: `the same token matches credential ${ficLabel(elsewhere.fic)}${elsewhere.fic.appId ? ` (client id ${elsewhere.fic.appId})` : ""}, not one of ${input.environment}`,
      fix: "-",
    });
  }
  return finish({ token, rows, verdicts, input, match });
}

function appIdsHint(fics: DoctorFic[]): string {
  const byEnv = new Map<string, string>();
  for (const f of fics) if (f.appId && f.environment) byEnv.set(f.environment, f.appId);
  if (byEnv.size === 0) return "";
  return ` (${[...byEnv].map(([env, id]) => `${env}: ${id}`).join(", ")})`;
}

function verdictForMatch(
  row: DiagnosisRow,
  fresh: boolean,
  input: DiagnoseInput,
  add: (v: Verdict) => void,
  matching: DiagnosisRow[],
): void {
  const label = ficLabel(row.fic);
  // Several environments may allow the same ref (main for staging and production): name them all.
  const all = matching
    .map((r) => `${ficLabel(r.fic)}${r.fic.appId ? ` of app ${r.fic.appId}` : ""}`)
    .join("; ");
  const ids = [...new Set(matching.map((r) => r.fic.appId).filter((id): id is string => !!id))];
  if (fresh && row.ageSeconds !== undefined) {
    add({
      code: "credential-propagating",
      severity: "warning",
      message: `credential ${label} created ${formatAge(row.ageSeconds)} ago: Entra takes a few minutes to use a new or changed credential`,
      fix: "retry in a few minutes (the CI snippet's login already retries AADSTS70021/700211/700213)",
    });
    return;
  }
  const complete =
    input.claims.iss !== undefined && input.claims.sub !== undefined && input.claims.aud !== undefined;
  if (input.aadsts) {
    const when =
      row.ageSeconds !== undefined ? `last changed ${formatAge(row.ageSeconds)} ago` : "change time unknown";
    add({
      code: "credential-matches",
      severity: "warning",
      message: `${input.aadsts.code} was answered, yet the ${complete ? "token" : "values Entra reported"} match credential ${all} (${when})`,
      fix: `check that the job's AZURE_CLIENT_ID is ${ids.join(" or ") || "this environment's client id"}; if the credential was created or changed in the last few minutes, retry in a few minutes`,
    });
    return;
  }
  add({
    code: "match",
    severity: "info",
    message: complete
      ? `the token matches credential ${all}: Entra accepts it`
      : `the given fields match credential ${all} (the rest was not given)`,
    fix: ids.length ? `log in with client id ${ids.join(" or ")}` : "-",
  });
}

function explainMismatch(
  row: DiagnosisRow,
  input: DiagnoseInput,
  add: (v: Verdict) => void,
  envs: string[],
): void {
  const label = ficLabel(row.fic);
  const rerun = `run /entra onboard${row.fic.environment ? ` ${row.fic.environment}` : ""}`;
  const iss = row.issuer.diff;
  if (iss) {
    const tokenIss = iss.actual;
    const botWrites =
      input.issuer === tokenIss
        ? `the bot's configured issuer already equals it, so the credential is stale: ${rerun} or wait for the reconciler`
        : `set gitlab.issuer in the policy (or GITLAB_OIDC_ISSUER) to exactly '${tokenIss}', copied from the token's iss, then ${rerun}`;
    if (iss.kind === "trailing-slash") {
      add({
        code: "issuer-trailing-slash",
        severity: "error",
        message: `issuer differs ${KIND_WORDS[iss.kind]}: the token's iss is '${tokenIss}', credential ${label} expects '${iss.expected}' (Entra compares byte for byte)`,
        fix: botWrites,
      });
    } else if (iss.kind === "case" || iss.kind === "whitespace") {
      add({
        code: iss.kind === "case" ? "issuer-case" : "issuer-whitespace",
        severity: "error",
        message: `issuer differs ${KIND_WORDS[iss.kind]} at character ${iss.index + 1}: token '${tokenIss}', credential ${label} '${iss.expected}'`,
        fix: botWrites,
      });
    } else {
      add({
        code: "issuer-different",
        severity: "error",
        message: `the token comes from issuer '${tokenIss}' but credential ${label} trusts '${iss.expected}'`,
        fix:
          input.issuer === tokenIss
            ? botWrites
            : `use a token from ${iss.expected} (is this pipeline on another GitLab instance?), or point gitlab.issuer / GITLAB_OIDC_ISSUER at '${tokenIss}' and ${rerun}`,
      });
    }
  }
  const sub = row.subject.diff;
  if (sub) explainSubject(row, sub, input, add, envs);
  const aud = row.audience.diff;
  if (aud) {
    const how = aud.kind === "different" ? "" : ` (${KIND_WORDS[aud.kind]})`;
    add({
      code: "audience-mismatch",
      severity: "error",
      message: `audience differs from the snippet's id_tokens aud${how}: the token's aud is '${aud.actual}', credential ${label} expects '${aud.expected}'`,
      fix: `set \`id_tokens: GITLAB_OIDC_TOKEN: aud: ${aud.expected}\` in the job, as in the onboarding snippet`,
    });
  }
}

function explainSubject(
  row: DiagnosisRow,
  diff: FieldDiff,
  input: DiagnoseInput,
  add: (v: Verdict) => void,
  envs: string[],
): void {
  const label = ficLabel(row.fic);
  const env = row.fic.environment;
  const rerun = `run /entra onboard${env ? ` ${env}` : ""}`;
  const token = parseSubject(diff.actual);
  const fic = parseSubject(diff.expected);
  const plain = () =>
    add({
      code:
        diff.kind === "case"
          ? "subject-case"
          : diff.kind === "whitespace"
            ? "subject-whitespace"
            : "subject-different",
      severity: "error",
      message: `subject differs${diff.kind === "different" ? "" : ` ${KIND_WORDS[diff.kind]}`} at character ${diff.index + 1}: token '${diff.actual}', credential ${label} '${diff.expected}'${diff.kind === "case" ? " (AADSTS7002138: Entra compares case-sensitively)" : ""}`,
      fix: `credentials must equal the token's sub exactly: ${rerun} so the bot rewrites them, and do not edit them by hand`,
    });
  // Surrounding whitespace is never GitLab's doing: a hand-edited credential or a pasted value.
  if (!token || !fic || diff.kind === "whitespace") {
    plain();
    return;
  }

  const tokenHead = token.components[0];
  const ficHead = fic.components[0];
  if (tokenHead !== ficHead) {
    add({
      code: "subject-form",
      severity: "error",
      message: `the token's sub starts with ${tokenHead} but credential ${label} uses ${ficHead} (project path vs id form): GitLab's ci_id_token_sub_claim_components for the project [${token.components.join(", ")}] differ from the policy's gitlab.subClaimComponents [${input.policy.gitlab.subClaimComponents.join(", ")}]`,
      fix: `make them agree: set the project's ID token sub claim components to [${fic.components.join(", ")}] (Settings > CI/CD > Token, or the API), or change gitlab.subClaimComponents in the policy and ${rerun}`,
    });
    return;
  }

  let explained = false;
  const tokenPath = token.values.project_path;
  const ficPath = fic.values.project_path;
  if (tokenPath && ficPath && tokenPath !== ficPath) {
    // Same credential re-subjected with the token's path: is the path the only difference?
    const moved = buildSubject(fic.components, { ...fic.values, project_path: tokenPath });
    const caseOnly = tokenPath.toLowerCase() === ficPath.toLowerCase() ? " (letter case only)" : "";
    add({
      code: "project-renamed",
      severity: "error",
      message: `project renamed from ${ficPath} to ${tokenPath}${caseOnly}: credential ${label} still names the old path`,
      fix: "run /entra onboard or wait for the reconciler: the bot re-subjects the credentials in place (or switch the policy to project_id subjects, which survive renames)",
    });
    explained = true;
    if (moved === diff.actual) return;
  }

  const tokenRule = refRuleOf(token);
  if (tokenRule && tokenRule !== refRuleOf(fic)) {
    explainRef(tokenRule, row, input, add, envs);
    explained = true;
  }
  for (const component of ["deployment_tier", "environment_protected"] as const) {
    const a = token.values[component];
    const b = fic.values[component];
    if (a !== b) {
      add({
        code: "subject-different",
        severity: "error",
        message: `the token's ${component} is ${a ?? "(absent)"} but credential ${label} expects ${b ?? "(absent)"}`,
        fix:
          component === "deployment_tier"
            ? `set the job's environment (deployment_tier) to ${b ?? "the policy's tier"}, or set the environment rule's tier in the policy and ${rerun}`
            : "protect the environment in GitLab (Settings > CI/CD > Protected environments), or drop environment_protected from gitlab.subClaimComponents",
      });
      explained = true;
    }
  }
  if (!explained) plain();
}

/** Without a known environment, every environment the project has credentials for is judged. */
function explainRef(
  tokenRule: string,
  row: DiagnosisRow,
  input: DiagnoseInput,
  add: (v: Verdict) => void,
  envs: string[],
): void {
  const known = input.environment ?? input.claims.environment;
  const targets = known ? [known] : envs.length > 0 ? envs : row.fic.environment ? [row.fic.environment] : [];
  const what = describeRef(tokenRule);
  if (targets.length === 0) {
    add({
      code: "ref-not-allowed",
      severity: "error",
      message: `${what} has no credential (nearest: ${ficLabel(row.fic)})`,
      fix: "deploy from a ref the policy allows, or add it to the environment's refs in the policy and run /entra onboard",
    });
    return;
  }
  for (const env of targets) {
    const rule = environmentRule(input.policy, env);
    if (!rule) {
      add({
        code: "environment-not-in-policy",
        severity: "error",
        message: `environment ${env} has no rule in the policy, so no credential allows ${what}`,
        fix: `ask the platform team to add environments.${env} to the policy, then run /entra onboard ${env}`,
      });
    } else if (!rule.policy.refs.includes(tokenRule)) {
      const allowed = rule.policy.refs.map(describeRef);
      add({
        code: "ref-not-allowed",
        severity: "error",
        message: `${what} is not allowed for ${env} by the policy (allowed: ${allowed.join(", ")})`,
        fix: `deploy ${env} from ${allowed.join(" or ")}, or ask the platform team to add "${tokenRule}" to environments.${rule.rule}.refs, then run /entra onboard ${env}`,
      });
    } else {
      add({
        code: "ref-credential-missing",
        severity: "error",
        message: `the policy allows ${what} for ${env}, but no credential of the project names it yet`,
        fix: `run /entra onboard ${env} (or wait for the reconciler); then retry in a few minutes`,
      });
    }
  }
}

function finish(parts: {
  token: Diagnosis["token"];
  rows: DiagnosisRow[];
  verdicts: Verdict[];
  input: DiagnoseInput;
  match?: MatchResult | undefined;
}): Diagnosis {
  const order = { error: 0, warning: 1, info: 2 } as const;
  const verdicts = [...parts.verdicts].sort((a, b) => order[a.severity] - order[b.severity]);
  return {
    token: parts.token,
    ...(parts.input.aadsts ? { aadsts: parts.input.aadsts } : {}),
    rows: parts.rows,
    verdicts,
    ...(parts.match ? { match: parts.match } : {}),
  };
}
