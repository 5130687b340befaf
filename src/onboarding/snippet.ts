import { Document, isMap, isSeq, Scalar, type YAMLMap } from "yaml";
import type { SubClaimComponent } from "../config/policy-schema.ts";
import { cell, code, fenced, join, md, plain, type SafeMarkdown, trusted } from "../gitlab/markdown-inert.ts";
import type { EnvironmentOutcome, OnboardResult } from "./types.ts";

/**
 * The `.gitlab-ci.yml` fragment the bot hands to a project: a hidden login template per environment and an
 * example deploy job that extends it. Built with the `yaml` package so names and refs with odd characters
 * stay valid YAML; the shell parts are POSIX sh (the azure-cli image has bash, Alpine images only ash).
 */

export type SnippetVariant = "azure-cli" | "terraform" | "azure-sdk";

export interface SnippetInput {
  environment: string;
  /** Application (client) id of the environment's app registration. */
  appId: string;
  tenantId: string;
  audience: string;
  /** Policy ref rules allowed to log in: "branch:main", "tag:v1". */
  refs: string[];
  variant: SnippetVariant;
  /** AZURE_CLIENT_ID / AZURE_TENANT_ID are env-scoped CI/CD variables set by the bot. */
  ciVariablesSet: boolean;
  subClaimComponents: readonly SubClaimComponent[];
  /** Entra authority for the token-exchange pre-check of non-CLI variants. */
  authorityHost?: string;
  /** Attempts and delay of the login retry loop (new credentials take minutes to propagate). */
  loginAttempts?: number;
  loginDelaySeconds?: number;
}

/**
 * The "no matching federated identity record" family (reference/entra.md §3): Entra answers these while a new
 * or changed federated credential is not yet visible everywhere, and also when it genuinely does not match.
 * AADSTS700213 names a subject mismatch, 700211 the issuer, 7002121 the audience, 70021 is the generic form.
 * AADSTS7002138 (subject matches only case-insensitively) is NOT retried: it never heals by waiting.
 */
export const PROPAGATION_ERRORS = ["AADSTS70021", "AADSTS700211", "AADSTS700213", "AADSTS7002121"] as const;

/** Variants `/entra snippet <variant>` and the policy's `snippet.variant` can name. */
export const SNIPPET_VARIANTS = ["azure-cli", "terraform", "azure-sdk"] as const;

/** A POSIX sh single-quoted word: nothing inside is expanded. */
function shQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

/** Job-name-safe form of an environment name ("review/fix-1" -> "review-fix-1"). */
export function jobSlug(environment: string): string {
  return (
    environment
      .replace(/[^A-Za-z0-9_-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .toLowerCase() || "env"
  );
}

export function templateName(environment: string): string {
  return `.azure-login-${jobSlug(environment)}`;
}

export function deployJobName(environment: string): string {
  return `deploy-${jobSlug(environment)}`;
}

/** A GitLab CI expression string literal; refs may contain `/`, `.`, `-`, even quotes. */
function quoteLiteral(value: string): string {
  if (!value.includes('"')) return `"${value}"`;
  if (!value.includes("'")) return `'${value}'`;
  throw new Error(`ref ${value} contains both quote characters and cannot be written in a rules: expression`);
}

/** `rules:` entries matching exactly the refs the policy lets log in. */
export function refRules(refs: readonly string[]): { if: string }[] {
  return refs.map((rule) => {
    const colon = rule.indexOf(":");
    const type = rule.slice(0, colon);
    const ref = rule.slice(colon + 1);
    if (type === "branch") return { if: `$CI_COMMIT_BRANCH == ${quoteLiteral(ref)}` };
    if (type === "tag") return { if: `$CI_COMMIT_TAG == ${quoteLiteral(ref)}` };
    throw new Error(`ref rule ${rule} must be branch:<name> or tag:<name>`);
  });
}

function describeRefs(refs: readonly string[]): string {
  return refs.map((r) => r.replace(/^branch:/, "branch ").replace(/^tag:/, "tag ")).join(", ");
}

/** Prints iss/sub/aud/exp of the job's own token (never the token), for `/entra doctor`. */
const CLAIMS_FN = `entra_claims() {
  p=$(printf '%s' "$GITLAB_OIDC_TOKEN" | cut -d. -f2 | tr '_-' '/+')
  case $((\${#p} % 4)) in 2) p="$p==" ;; 3) p="$p=" ;; esac
  printf '%s' "$p" | base64 -d 2>/dev/null | tr -d '{}' | tr ',' '\\n' | grep -E '^"(iss|sub|aud|exp)"' || echo "(the ID token could not be decoded)"
}`;

const CLI_LOGIN_FN = `entra_login() {
  az login --service-principal -u $AZURE_CLIENT_ID -t $AZURE_TENANT_ID --federated-token $GITLAB_OIDC_TOKEN --allow-no-subscriptions --output none 2>&1
}`;

/** Token exchange against Entra, as the Terraform provider / Azure SDK will do; prints only the AADSTS line. */
function exchangeLoginFn(authorityHost: string): string {
  return `entra_login() {
  if ! command -v curl >/dev/null 2>&1; then echo "curl not found: skipping the Azure login pre-check"; return 0; fi
  r=$(curl -sS -X POST "${authorityHost}/$AZURE_TENANT_ID/oauth2/v2.0/token" \\
    --data-urlencode "client_id=$AZURE_CLIENT_ID" \\
    --data-urlencode "scope=https://management.azure.com/.default" \\
    --data-urlencode "grant_type=client_credentials" \\
    --data-urlencode "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer" \\
    --data-urlencode "client_assertion=$GITLAB_OIDC_TOKEN" 2>&1)
  case "$r" in *'"access_token"'*) return 0 ;; esac
  # Only the error code line (or curl's own error): the body of a success would hold an access token.
  printf '%s\\n' "$r" | grep -o -E 'AADSTS[0-9]+[^"]*|^curl: .*' | head -n 1
  return 1
}`;
}

/**
 * Fails at once, before any login, when the job's ref is not one the policy lets log in to this environment:
 * Entra would answer AADSTS700213 for it forever, and waiting out "propagation" would only hide that.
 * MR pipelines use the source branch (CI_COMMIT_REF_NAME), as GitLab does in the ID token's `ref`.
 */
function refCheck(refs: readonly string[]): string {
  const allowed = refs.map(shQuote).join("|");
  return `entra_ref="\${CI_COMMIT_TAG:+tag:$CI_COMMIT_TAG}"
[ -n "$entra_ref" ] || entra_ref="branch:$CI_COMMIT_REF_NAME"
case "$entra_ref" in
  ${allowed}) ;;
  *)
    echo "This job runs for $entra_ref, which the platform policy does not allow to log in to environment $CI_ENVIRONMENT_NAME (allowed: ${describeRefs(refs).replace(/[`"$\\]/g, "")})."
    echo "Entra would refuse its token with AADSTS700213. Run the job from an allowed ref, or ask the platform team to change the policy."
    exit 1 ;;
esac`;
}

function loginScript(input: SnippetInput): string {
  const authority = (input.authorityHost ?? "https://login.microsoftonline.com").replace(/\/+$/, "");
  const login = input.variant === "azure-cli" ? CLI_LOGIN_FN : exchangeLoginFn(authority);
  const subscription =
    input.variant === "terraform"
      ? `
if [ -z "$ARM_SUBSCRIPTION_ID" ]; then
  echo "Set the CI/CD variable AZURE_SUBSCRIPTION_ID (scoped to environment $CI_ENVIRONMENT_NAME): the azurerm provider 4.x requires a subscription id, and the bot does not know which one you deploy to."
  exit 1
fi`
      : "";
  return `${CLAIMS_FN}
${login}
${refCheck(input.refs)}${subscription}
attempt=1
while :; do
  if out=$(entra_login); then echo "Azure login OK"; break; fi
  printf '%s\\n' "$out" >&2
  code=$(printf '%s' "$out" | grep -o -E 'AADSTS[0-9]+' | head -n 1)
  case "$code" in
    ${PROPAGATION_ERRORS.join("|")})
      if [ "$attempt" -lt "$ENTRA_LOGIN_ATTEMPTS" ]; then
        echo "$code: federated credential not active yet (new credentials take a few minutes); retry $attempt/$ENTRA_LOGIN_ATTEMPTS in $ENTRA_LOGIN_DELAY s"
        attempt=$((attempt + 1)); sleep "$ENTRA_LOGIN_DELAY"; continue
      fi ;;
  esac
  echo "Azure login failed. Paste these claims of this job's ID token into an issue comment after /entra doctor:"
  entra_claims
  exit 1
done
`;
}

function headerLines(input: SnippetInput): string[] {
  const minutes = Math.ceil(((input.loginAttempts ?? 10) * (input.loginDelaySeconds ?? 30)) / 60);
  const lines = [
    `Azure login for environment "${input.environment}" (generated by gitlab-entra-bot, ${input.variant}).`,
    `Only these refs can log in: ${describeRefs(input.refs)}. The login step stops at once for any other ref;`,
    "Entra would refuse its token with AADSTS700213 (subject), as it refuses a wrong issuer with AADSTS700211",
    "and a wrong audience with AADSTS7002121 (AADSTS70021 is the generic form of all three).",
    `Jobs using it must set environment: ${input.environment} and id_tokens aud ${input.audience}.`,
    "New or changed federated credentials take a few minutes to propagate in Entra ID: for allowed refs the",
    `login retries ${PROPAGATION_ERRORS.join("/")} for up to ${minutes} minutes, and nothing else.`,
  ];
  if (input.ciVariablesSet) {
    lines.push(
      `AZURE_CLIENT_ID (scoped to environment "${input.environment}") and AZURE_TENANT_ID are CI/CD variables`,
      "set by the bot in Settings > CI/CD > Variables, so they are not repeated here.",
    );
  }
  if (input.variant === "terraform") {
    lines.push(
      "azurerm 4.x requires a subscription id: set the CI/CD variable AZURE_SUBSCRIPTION_ID (scoped to this",
      "environment); the bot does not know which subscription you deploy to. It becomes ARM_SUBSCRIPTION_ID.",
    );
  }
  if (input.subClaimComponents[0] === "project_id") {
    lines.push(
      `The bot changed this project's ID token sub claim (ci_id_token_sub_claim_components) to`,
      `[${input.subClaimComponents.join(", ")}]: logins keep working after renames and transfers.`,
    );
  }
  // Comment lines: a line break in a value must not end the comment and start YAML.
  return lines.map((l) => l.replace(/[\r\n\u0085\u2028\u2029]/g, " "));
}

function literal(text: string): Scalar {
  const s = new Scalar(text);
  s.type = Scalar.BLOCK_LITERAL;
  return s;
}

/** Builds the two jobs as plain data (exported for tests that merge `extends` and validate the result). */
export function snippetJobs(input: SnippetInput): Record<string, Record<string, unknown>> {
  const variables: Record<string, string> = {};
  if (!input.ciVariablesSet) {
    variables.AZURE_CLIENT_ID = input.appId;
    variables.AZURE_TENANT_ID = input.tenantId;
  }
  if (input.variant === "terraform") {
    variables.ARM_USE_OIDC = "true";
    variables.ARM_OIDC_TOKEN = "$GITLAB_OIDC_TOKEN";
    variables.ARM_CLIENT_ID = input.ciVariablesSet ? "$AZURE_CLIENT_ID" : input.appId;
    variables.ARM_TENANT_ID = input.ciVariablesSet ? "$AZURE_TENANT_ID" : input.tenantId;
    variables.ARM_SUBSCRIPTION_ID = "$AZURE_SUBSCRIPTION_ID";
  }
  variables.ENTRA_LOGIN_ATTEMPTS = String(input.loginAttempts ?? 10);
  variables.ENTRA_LOGIN_DELAY = String(input.loginDelaySeconds ?? 30);

  const beforeScript: string[] = [];
  if (input.variant === "azure-sdk") {
    beforeScript.push(
      'export AZURE_FEDERATED_TOKEN_FILE="$(mktemp)"',
      'printf \'%s\' "$GITLAB_OIDC_TOKEN" > "$AZURE_FEDERATED_TOKEN_FILE"',
    );
  }
  beforeScript.push(loginScript(input));

  const template: Record<string, unknown> = {};
  if (input.variant === "azure-cli") template.image = "mcr.microsoft.com/azure-cli:latest";
  if (input.variant === "terraform")
    template.image = { name: "hashicorp/terraform:latest", entrypoint: [""] };
  template.id_tokens = { GITLAB_OIDC_TOKEN: { aud: input.audience } };
  template.variables = variables;
  template.before_script = beforeScript;

  const job: Record<string, unknown> = {
    extends: templateName(input.environment),
    stage: "deploy",
  };
  if (input.variant === "azure-sdk") job.image = "python:3.13";
  job.environment = input.environment;
  job.rules = refRules(input.refs);
  job.script =
    input.variant === "azure-cli"
      ? ["az account show"]
      : input.variant === "terraform"
        ? ["terraform init", "terraform plan"]
        : [
            "pip install --quiet azure-identity",
            `python -c "from azure.identity import WorkloadIdentityCredential as C; C().get_token('https://management.azure.com/.default'); print('Azure SDK login OK')"`,
          ];
  return { [templateName(input.environment)]: template, [deployJobName(input.environment)]: job };
}

/** One environment's `.gitlab-ci.yml` fragment, ready to paste. */
export function renderSnippet(input: SnippetInput): string {
  if (input.refs.length === 0)
    throw new Error(`environment ${input.environment} has no refs allowed to log in`);
  const doc = new Document(snippetJobs(input));
  doc.commentBefore = headerLines(input)
    .map((l) => ` ${l}`)
    .join("\n");
  const tpl = doc.get(templateName(input.environment));
  if (isMap(tpl)) {
    // Quoted like GitLab's docs: a YAML 1.1 parser (GitLab's Psych) must never read an id as anything else.
    const vars = (tpl as YAMLMap).get("variables");
    if (isMap(vars)) {
      for (const pair of vars.items) if (pair.value instanceof Scalar) pair.value.type = Scalar.QUOTE_DOUBLE;
    }
    // The login script reads best as a literal block; yaml would otherwise pick a quoted style.
    const before = (tpl as YAMLMap).get("before_script");
    if (isSeq(before)) {
      const last = before.items.length - 1;
      const item = before.items[last];
      const text = item instanceof Scalar ? String(item.value) : undefined;
      if (text !== undefined) before.items[last] = literal(text);
    }
  }
  const jobPair = isMap(doc.contents) ? doc.contents.items[1] : undefined;
  if (jobPair && jobPair.key instanceof Scalar) jobPair.key.spaceBefore = true;
  return doc.toString({ lineWidth: 0 });
}

export interface OnboardingMarkdownOptions {
  variant?: SnippetVariant;
  /** The bot set env-scoped AZURE_CLIENT_ID / AZURE_TENANT_ID for this project. */
  ciVariablesSet: boolean;
  authorityHost?: string;
  /** Refs outside the policy fail the login at once instead of waiting out propagation. */
  loginAttempts?: number;
  loginDelaySeconds?: number;
}

const STATUS_LABEL: Record<EnvironmentOutcome["status"], SafeMarkdown> = {
  unchanged: trusted("ready (no change)"),
  changed: trusted("ready (updated)"),
  "would-change": trusted("would change (plan)"),
  refused: trusted("refused"),
  failed: trusted("failed"),
  removed: trusted("removed"),
};

const dash = trusted("-");

/** Environments whose identity exists and may log in: they get a snippet. */
export function usableEnvironments(result: OnboardResult): EnvironmentOutcome[] {
  return result.environments.filter(
    (e) => e.identity && (e.status === "changed" || e.status === "unchanged") && e.refs.length > 0,
  );
}

/** One environment's snippet section: subjects, then the fenced YAML. */
export function snippetSection(
  result: OnboardResult,
  env: EnvironmentOutcome,
  opts: OnboardingMarkdownOptions,
): SafeMarkdown {
  if (!env.identity) return trusted("");
  const variant = opts.variant ?? "azure-cli";
  const yaml = renderSnippet({
    environment: env.environment,
    appId: env.identity.appId,
    tenantId: result.tenantId,
    audience: result.audience,
    refs: env.refs,
    variant,
    ciVariablesSet: opts.ciVariablesSet,
    subClaimComponents: result.subClaimComponents,
    authorityHost: opts.authorityHost,
    ...(opts.loginAttempts !== undefined ? { loginAttempts: opts.loginAttempts } : {}),
    ...(opts.loginDelaySeconds !== undefined ? { loginDelaySeconds: opts.loginDelaySeconds } : {}),
  }).trimEnd();
  return join([
    md`### ${code(env.environment)}`,
    trusted(""),
    trusted("Federated credential subjects (must equal the `sub` of the job's ID token):"),
    trusted(""),
    ...env.subjects.map((s) => md`- ${code(s)}`),
    trusted(""),
    md`Add to \`.gitlab-ci.yml\` (variant ${code(variant)}; \`/entra snippet <azure-cli|terraform|azure-sdk> [env]\` shows another):`,
    trusted(""),
    fenced(yaml, "yaml"),
  ]);
}

/** Issue/comment body: a status table per environment, then each usable environment's snippet. */
export function renderOnboardingMarkdown(
  result: OnboardResult,
  opts: OnboardingMarkdownOptions,
): SafeMarkdown {
  const out: SafeMarkdown[] = [
    md`## Azure access for ${code(result.project.path)}`,
    trusted(""),
    result.mode === "plan"
      ? trusted("**Plan only**: nothing was changed. Run `/entra onboard` to apply.")
      : trusted(
          "Pipelines of this project log in to Azure with their own short-lived GitLab ID token; no secret is stored.",
        ),
    trusted(""),
    trusted("| Environment | Status | Client ID | Refs that may log in | Entra groups | Note |"),
    trusted("|---|---|---|---|---|---|"),
  ];
  for (const env of result.environments) {
    const refs = env.refs.length ? join(env.refs.map(cell), ", ") : dash;
    out.push(
      md`| ${cell(env.environment)} | ${STATUS_LABEL[env.status]} | ${env.identity ? cell(env.identity.appId) : dash} | ${refs} | ${env.groups.length} | ${env.message ? cellText(env.message) : trusted("")} |`,
    );
  }
  out.push(
    trusted(""),
    md`Issuer ${code(result.issuer)}, audience ${code(result.audience)}, tenant ${code(result.tenantId)}.`,
  );
  const usable = usableEnvironments(result);
  for (const env of usable) out.push(trusted(""), snippetSection(result, env, opts));
  if (usable.length > 0) {
    out.push(
      trusted(""),
      trusted(
        "If a login still fails after a few minutes, comment `/entra doctor` followed by the claims the job printed.",
      ),
    );
  }
  return join(out);
}

/** A table cell holding bot prose that may quote values: plain when harmless, else a code span. */
function cellText(text: string): SafeMarkdown {
  const p = plain(text);
  return p.startsWith("`") ? cell(text) : p;
}
