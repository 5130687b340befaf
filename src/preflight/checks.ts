import type { TokenCredential } from "@azure/identity";
import { Redis } from "ioredis";
import { z } from "zod";
import type { Config } from "../config/env.ts";
import type { Policy } from "../config/policy.ts";
import { createTokenCredential, graphScope } from "../entra/credential.ts";
import { createGraphApi } from "../entra/graph-client.ts";
import { BotServicePrincipal } from "../entra/self.ts";
import { resolveIssuer } from "../onboarding/planner.ts";
import { policyWarnings } from "../policy/rules.ts";
import { isGroupId } from "../policy/templates.ts";

/**
 * Least privilege, checked against the live configuration. Each check says what it looked at and, when it
 * fails, exactly what is missing. Secrets and tokens are never part of a result.
 */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** What was found (ok) or what is missing and how to fix it (not ok). */
  detail: string;
  /** Warnings do not fail the run (e.g. a broader permission than needed). */
  warning?: string;
}

/** Graph application permissions the bot needs: always, and when the policy adds identities to groups. */
export const REQUIRED_ROLES = ["Application.ReadWrite.OwnedBy"] as const;
export const GROUP_ROLES = ["GroupMember.ReadWrite.All", "Application.ReadWrite.All"] as const;
/** The GitLab token scope the bot needs (issues, notes, CI variables, project settings, members). */
export const REQUIRED_GITLAB_SCOPE = "api";

/** Roles that can run `GET /groups?$filter=displayName eq '...'` (group templates), least privileged first. */
export const GROUP_READ_ROLES = [
  "GroupMember.Read.All",
  "Group.Read.All",
  "GroupMember.ReadWrite.All",
  "Group.ReadWrite.All",
  "Directory.Read.All",
] as const;

function allEnvironments(policy: Policy) {
  return [policy.environments, ...policy.rules.map((r) => r.environments)].flatMap((e) => Object.values(e));
}

export function policyUsesGroups(policy: Policy): boolean {
  return allEnvironments(policy).some((e) => e.groups.length > 0);
}

/** Whether some rule names a group by display-name template (resolved through Graph). */
export function policyUsesGroupTemplates(policy: Policy): boolean {
  return allEnvironments(policy).some((e) => e.groups.some((g) => !isGroupId(g)));
}

/** The app roles the bot needs for this policy. */
export function neededRoles(policy: Policy): string[] {
  return [...REQUIRED_ROLES, ...(policyUsesGroups(policy) ? GROUP_ROLES : [])];
}

const claimsSchema = z.object({ roles: z.array(z.string()).optional() }).loose();

/** The `roles` claim of an access token (decoded, not verified: we only read what Entra granted us). */
export function rolesOf(accessToken: string): string[] {
  const payload = accessToken.split(".")[1];
  if (!payload) throw new Error("the access token is not a JWT");
  const parsed = claimsSchema.safeParse(JSON.parse(Buffer.from(payload, "base64url").toString("utf8")));
  if (!parsed.success) throw new Error("the access token's claims are not readable");
  return parsed.data.roles ?? [];
}

export interface PreflightDeps {
  config: Config;
  /** The parsed policy, or the reason it could not be loaded. */
  policy: Policy | { error: string };
  /** Tests may inject; default from config. */
  credential?: TokenCredential;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

const oneLine = (s: string) => (s.split("\n")[0] ?? s).slice(0, 300);

async function checkGraph(deps: PreflightDeps, policy: Policy | undefined): Promise<CheckResult[]> {
  const { config } = deps;
  if (!config.azure.credential) {
    return [
      {
        name: "graph-token",
        ok: false,
        detail: "no Azure credential configured (AZURE_TENANT_ID, AZURE_CLIENT_ID, ...)",
      },
    ];
  }
  let token: string;
  const credential = deps.credential ?? createTokenCredential(config.azure);
  try {
    const got = await credential.getToken(graphScope(config.azure.graphBaseUrl));
    if (!got) throw new Error("no token returned");
    token = got.token;
  } catch (err) {
    return [
      {
        name: "graph-token",
        ok: false,
        detail: `could not get a Graph token as ${config.azure.credential.clientId} (${config.azure.credential.kind}): ${oneLine((err as Error).message)}`,
      },
    ];
  }
  let roles: string[];
  try {
    roles = rolesOf(token);
  } catch (err) {
    return [
      { name: "graph-token", ok: true, detail: "got a Graph token" },
      { name: "graph-roles", ok: false, detail: (err as Error).message },
    ];
  }
  const out: CheckResult[] = [
    {
      name: "graph-token",
      ok: true,
      detail: `got a Graph token for ${graphScope(config.azure.graphBaseUrl)}`,
    },
  ];
  const needed = policy ? neededRoles(policy) : [...REQUIRED_ROLES];
  const missing = needed.filter((r) => !roles.includes(r));
  const extra = roles.filter((r) => !needed.includes(r));
  const why = policy && policyUsesGroups(policy) ? " (the policy adds identities to groups)" : "";
  out.push({
    name: "graph-roles",
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `app roles granted: ${roles.join(", ") || "(none)"}; needed${why}: ${needed.join(", ")}`
        : `missing Graph application permission${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}${why}. Add ${missing.length > 1 ? "them" : "it"} to the bot's app registration (API permissions > Microsoft Graph > Application permissions) and grant admin consent. Granted now: ${roles.join(", ") || "(none)"}`,
    ...(extra.length ? { warning: `broader than needed: ${extra.join(", ")}` } : {}),
  });
  out.push(await checkOwnership(config, credential));

  if (policy && policyUsesGroupTemplates(policy)) {
    const reader = GROUP_READ_ROLES.find((r) => roles.includes(r));
    out.push({
      name: "graph-group-read",
      ok: reader !== undefined,
      detail: reader
        ? `the policy names groups by display-name template; ${reader} lets the bot look them up (GET /groups?$filter=displayName eq '...')`
        : `the policy names groups by display-name template, which the bot looks up with GET /groups?$filter=displayName eq '...': grant GroupMember.Read.All (least privileged; Group.Read.All or GroupMember.ReadWrite.All also work) and admin consent. Granted now: ${roles.join(", ") || "(none)"}`,
    });
  }
  return out;
}

/**
 * The bot manages only what its own service principal owns: it must resolve that principal from
 * AZURE_CLIENT_ID and read the objects it owns (the same calls onboarding and registry:rebuild make).
 */
async function checkOwnership(config: Config, credential: TokenCredential): Promise<CheckResult> {
  const clientId = config.azure.credential?.clientId ?? "";
  const graph = createGraphApi({ graphBaseUrl: config.azure.graphBaseUrl, credential });
  let spId: string;
  try {
    spId = await new BotServicePrincipal(graph, clientId).objectId();
  } catch (err) {
    return {
      name: "graph-ownership",
      ok: false,
      detail: `could not resolve the bot's own service principal (GET /servicePrincipals(appId='${clientId}')): ${oneLine((err as Error).message)}`,
    };
  }
  try {
    const owned = await graph.listOwnedObjects(spId);
    const apps = owned.filter((o) => o.type === "#microsoft.graph.application").length;
    const sps = owned.filter((o) => o.type === "#microsoft.graph.servicePrincipal").length;
    return {
      name: "graph-ownership",
      ok: true,
      detail: `the bot's service principal is ${spId}; it owns ${apps} app registration(s) and ${sps} service principal(s) (GET /servicePrincipals/${spId}/ownedObjects works)`,
    };
  } catch (err) {
    return {
      name: "graph-ownership",
      ok: false,
      detail: `could not list the objects the bot's service principal ${spId} owns (GET /servicePrincipals/${spId}/ownedObjects, needs Application.Read.All or Application.ReadWrite.OwnedBy): ${oneLine((err as Error).message)}`,
    };
  }
}

async function timedFetch(deps: PreflightDeps, url: string, init: RequestInit = {}): Promise<Response> {
  const f = deps.fetch ?? fetch;
  return f(url, { ...init, signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000) });
}

const userSchema = z.object({ id: z.number(), username: z.string() }).loose();
const patSchema = z
  .object({ scopes: z.array(z.string()), expires_at: z.string().nullable().optional() })
  .loose();

async function checkGitLab(deps: PreflightDeps): Promise<CheckResult[]> {
  const { url, token } = deps.config.gitlab;
  if (!url || !token)
    return [{ name: "gitlab-user", ok: false, detail: "GITLAB_URL and GITLAB_TOKEN are required" }];
  const headers = { "PRIVATE-TOKEN": token, Accept: "application/json" };
  const out: CheckResult[] = [];
  try {
    const res = await timedFetch(deps, `${url}/api/v4/user`, { headers });
    if (!res.ok) {
      return [
        {
          name: "gitlab-user",
          ok: false,
          detail: `GET ${url}/api/v4/user with GITLAB_TOKEN answered ${res.status}${res.status === 401 ? ": the token is wrong, expired or revoked" : ""}`,
        },
      ];
    }
    const user = userSchema.parse(await res.json());
    out.push({
      name: "gitlab-user",
      ok: true,
      detail: `GET /user works: the bot is @${user.username} (id ${user.id})`,
    });
  } catch (err) {
    return [
      {
        name: "gitlab-user",
        ok: false,
        detail: `GET ${url}/api/v4/user failed: ${oneLine((err as Error).message)}`,
      },
    ];
  }
  try {
    const res = await timedFetch(deps, `${url}/api/v4/personal_access_tokens/self`, { headers });
    if (res.ok) {
      const pat = patSchema.parse(await res.json());
      const ok = pat.scopes.includes(REQUIRED_GITLAB_SCOPE);
      out.push({
        name: "gitlab-scopes",
        ok,
        detail: ok
          ? `token scopes: ${pat.scopes.join(", ")}${pat.expires_at ? `; expires ${pat.expires_at}` : ""}`
          : `GITLAB_TOKEN lacks the "${REQUIRED_GITLAB_SCOPE}" scope (has: ${pat.scopes.join(", ") || "none"}); create a token with scope api`,
        ...(pat.scopes.some((s) => s !== REQUIRED_GITLAB_SCOPE)
          ? {
              warning: `broader than needed: ${pat.scopes.filter((s) => s !== REQUIRED_GITLAB_SCOPE).join(", ")}`,
            }
          : {}),
      });
    } else {
      out.push({
        name: "gitlab-scopes",
        ok: true,
        detail: `GitLab does not report the token's scopes (GET /personal_access_tokens/self answered ${res.status}); make sure it has scope api`,
      });
    }
  } catch (err) {
    out.push({
      name: "gitlab-scopes",
      ok: true,
      detail: `scopes not checked: ${oneLine((err as Error).message)}`,
    });
  }
  return out;
}

async function checkIssuer(deps: PreflightDeps, policy: Policy | undefined): Promise<CheckResult> {
  let issuer: string;
  try {
    issuer = policy ? resolveIssuer(policy, deps.config) : (deps.config.gitlab.oidcIssuer ?? "");
    if (!issuer) throw new Error("no issuer configured (GITLAB_OIDC_ISSUER or GITLAB_URL)");
  } catch (err) {
    return { name: "issuer-discovery", ok: false, detail: (err as Error).message };
  }
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  if (!url.startsWith("https://")) {
    return {
      name: "issuer-discovery",
      ok: false,
      detail: `${url} is not HTTPS: Entra only trusts HTTPS issuers`,
    };
  }
  try {
    const res = await timedFetch(deps, url);
    if (!res.ok) return { name: "issuer-discovery", ok: false, detail: `${url} answered ${res.status}` };
    const doc = z
      .object({ issuer: z.string(), jwks_uri: z.string() })
      .loose()
      .parse(await res.json());
    if (doc.issuer !== issuer) {
      return {
        name: "issuer-discovery",
        ok: false,
        detail: `discovery says issuer "${doc.issuer}" but the bot writes FICs for "${issuer}": they must match byte for byte`,
      };
    }
    return { name: "issuer-discovery", ok: true, detail: `${url} is reachable; jwks_uri ${doc.jwks_uri}` };
  } catch (err) {
    return {
      name: "issuer-discovery",
      ok: false,
      detail: `${url} is not reachable: ${oneLine((err as Error).message)}`,
    };
  }
}

async function checkRedis(config: Config, timeoutMs: number): Promise<CheckResult> {
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
  });
  redis.on("error", () => {});
  const where = new URL(config.redisUrl).host;
  try {
    await redis.connect();
    await redis.ping();
    return { name: "redis", ok: true, detail: `${where} answers PING` };
  } catch (err) {
    return {
      name: "redis",
      ok: false,
      detail: `${where} is not reachable: ${oneLine((err as Error).message)}`,
    };
  } finally {
    redis.disconnect();
  }
}

/**
 * A warning for a valid policy that still leaves a window open: `project_path`-headed subjects name a path, and
 * a path can be renamed, transferred or freed and re-created without the bot hearing of it until its next
 * drift repair. The default `project_id` layout names an id GitLab never reuses.
 */
export function policyWarning(policy: Policy): string | undefined {
  const components = policy.gitlab.subClaimComponents;
  if (components[0] !== "project_path") return undefined;
  return `gitlab.subClaimComponents starts with project_path: credentials name the project's path, so a rename, transfer or deletion GitLab does not announce (GitLab.com group hooks, subgroup transfers) leaves them naming a path someone else can take until drift repair (DRIFT_INTERVAL_SECONDS) catches it. Remove gitlab.subClaimComponents to use the default [project_id, ref_type, ref] where GitLab supports it`;
}

export async function runPreflight(deps: PreflightDeps): Promise<CheckResult[]> {
  const policy = "error" in deps.policy ? undefined : (deps.policy as Policy);
  const subjectWarning = policy ? policyWarning(policy) : undefined;
  const warnings = policy ? [...policyWarnings(policy), ...(subjectWarning ? [subjectWarning] : [])] : [];
  const policyCheck: CheckResult = policy
    ? {
        name: "policy",
        ok: true,
        detail: `${deps.config.policyFile} is valid: ${policy.rules.length} rule(s) and the default with ${Object.keys(policy.environments).length} environment(s)`,
        ...(warnings.length ? { warning: warnings.join(`\n${"".padEnd(31)}`) } : {}),
      }
    : { name: "policy", ok: false, detail: (deps.policy as { error: string }).error };
  const [graph, gitlab, issuer, redis] = await Promise.all([
    checkGraph(deps, policy),
    checkGitLab(deps),
    checkIssuer(deps, policy),
    checkRedis(deps.config, Math.min(deps.timeoutMs ?? 3_000, 3_000)),
  ]);
  return [policyCheck, ...graph, ...gitlab, issuer, redis];
}

export function renderChecks(results: CheckResult[]): string {
  const lines = results.map((r) => {
    const mark = r.ok ? "ok  " : "FAIL";
    return `${mark} ${r.name.padEnd(16)} ${r.detail}${r.warning ? `\n     ${"".padEnd(16)} warning: ${r.warning}` : ""}`;
  });
  const failed = results.filter((r) => !r.ok);
  lines.push(
    failed.length
      ? `\n${failed.length} check${failed.length > 1 ? "s" : ""} failed: ${failed.map((r) => r.name).join(", ")}`
      : "\nall checks passed",
  );
  return `${lines.join("\n")}\n`;
}
