import { createHash, randomUUID } from "node:crypto";
import { Hono } from "hono";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { listenHttps } from "./entra-sim/listen.ts";
import { GITLAB_DEFAULT_SUB_COMPONENTS, gitlabSubject } from "./gitlab-oidc/subject.ts";

/**
 * A GitLab-shaped OIDC issuer for CI ID tokens: the same discovery paths and claim set as a real GitLab
 * instance, so Entra's (simulated) token exchange validates it exactly as it would validate GitLab.
 */
export interface OidcIssuer {
  readonly kid: string;
  /** Public keys only. */
  jwks(): { keys: JWK[] };
  /** Adds GET /.well-known/openid-configuration and GET /oauth/discovery/keys (GitLab's paths) to a Hono app. */
  mount(app: Hono, issuerUrl: () => string): void;
  /** Mints a GitLab-shaped CI ID token (RS256, claim set as in fixtures/gitlab/id-token-claims.json). */
  mint(opts: MintOptions): Promise<string>;
}

export interface SimProjectRef {
  id: number;
  /** path_with_namespace */
  path: string;
  /** Defaults to a stable number derived from the namespace path. */
  namespaceId?: number;
  visibility?: "public" | "internal" | "private";
}

export interface MintOptions {
  issuer: string;
  audience: string | string[];
  /** The project whose pipeline runs the job. */
  project: SimProjectRef;
  ref: string;
  refType: "branch" | "tag";
  /**
   * The project's `ci_id_token_sub_claim_components` (GitLab's default: project_path, ref_type, ref). Any
   * claim name is accepted, as GitLab's API decides what may be configured, not the token minting.
   */
  subClaimComponents?: readonly string[];
  /** The job's `environment:`; `tier` is GitLab's deployment_tier (default "other"). */
  environment?: { name: string; tier?: string; protected?: boolean; action?: string };
  /** ref_protected claim; default false. A fork's branch is never protected in the parent project. */
  refProtected?: boolean;
  /**
   * A merge-request pipeline from this fork, run in `project` (GitLab 18.2.2+): project_* and namespace_*
   * claims (and so `sub`) name the fork, job_project_* / job_namespace_* the project running the job;
   * `ref` is the fork's source branch, pipeline_source "merge_request_event", ref_protected "false".
   */
  mergeRequestFromFork?: SimProjectRef;
  /** pipeline_source claim; default "push" ("merge_request_event" for mergeRequestFromFork). */
  pipelineSource?: string;
  user?: { id: number; login: string; email?: string };
  expiresInSeconds?: number;
  notBeforeOffsetSeconds?: number;
  /** Seconds since the epoch; default now. */
  issuedAt?: number;
  /** Applied last, to forge bad tokens in tests (a key set to undefined is removed). */
  overrides?: Record<string, unknown>;
}

export const DEFAULT_SUB_CLAIM_COMPONENTS: readonly string[] = GITLAB_DEFAULT_SUB_COMPONENTS;

/** Number-like stable id for a namespace path, so tokens for one namespace always carry the same id. */
function stableId(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32BE(0) % 1_000_000;
}

/** The discovery document GitLab serves; Entra reads `jwks_uri` from it. */
export function gitlabDiscoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/oauth/authorize`,
    token_endpoint: `${issuer}/oauth/token`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    userinfo_endpoint: `${issuer}/oauth/userinfo`,
    jwks_uri: `${issuer}/oauth/discovery/keys`,
    scopes_supported: ["api", "read_api", "read_user", "openid", "profile", "email"],
    response_types_supported: ["code"],
    response_modes_supported: ["query", "fragment", "form_post"],
    grant_types_supported: [
      "authorization_code",
      "password",
      "client_credentials",
      "device_code",
      "refresh_token",
    ],
    token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["RS256"],
    claim_types_supported: ["normal"],
    claims_supported: [
      "iss",
      "sub",
      "aud",
      "exp",
      "iat",
      "sub_legacy",
      "name",
      "nickname",
      "email",
      "groups",
    ],
  };
}

export async function createOidcIssuer(): Promise<OidcIssuer> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const exported = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(exported);
  const publicJwk: JWK = { ...exported, kid, use: "sig", alg: "RS256" };

  return {
    kid,
    jwks: () => ({ keys: [{ ...publicJwk }] }),
    mount(app, issuerUrl) {
      app.get("/.well-known/openid-configuration", (c) => c.json(gitlabDiscoveryDocument(issuerUrl())));
      app.get("/oauth/discovery/keys", (c) => c.json({ keys: [publicJwk] }));
      // GitLab also serves the same key set here.
      app.get("/-/jwks", (c) => c.json({ keys: [publicJwk] }));
    },
    async mint(opts) {
      const now = opts.issuedAt ?? Math.floor(Date.now() / 1000);
      const fork = opts.mergeRequestFromFork;
      const named = fork ?? opts.project;
      const namespaceOf = (p: SimProjectRef) => {
        const slash = p.path.lastIndexOf("/");
        const path = slash >= 0 ? p.path.slice(0, slash) : p.path;
        return { id: String(p.namespaceId ?? stableId(path)), path };
      };
      const namespace = namespaceOf(named);
      const jobNamespace = namespaceOf(opts.project);
      const env = opts.environment;
      const user = opts.user ?? { id: 1, login: "sample-user", email: "sample-user@example.com" };
      const refPath = `refs/${opts.refType === "branch" ? "heads" : "tags"}/${opts.ref}`;
      const host = opts.issuer.replace(/^https?:\/\//, "").replace(/\/$/, "");
      // Custom claims are strings in GitLab's tokens (runner_id excepted), in the fixture's order.
      const custom: Record<string, unknown> = {
        namespace_id: namespace.id,
        namespace_path: namespace.path,
        project_id: String(named.id),
        project_path: named.path,
        job_project_id: String(opts.project.id),
        job_project_path: opts.project.path,
        job_namespace_id: jobNamespace.id,
        job_namespace_path: jobNamespace.path,
        user_id: String(user.id),
        user_login: user.login,
        user_email: user.email ?? `${user.login}@example.com`,
        user_access_level: "maintainer",
        pipeline_id: String(1000 + (now % 100_000)),
        pipeline_source: opts.pipelineSource ?? (fork ? "merge_request_event" : "push"),
        job_id: String(2000 + (now % 100_000)),
        ref: opts.ref,
        ref_type: opts.refType,
        ref_path: refPath,
        ref_protected: String(fork ? false : (opts.refProtected ?? false)),
        ...(env
          ? {
              environment: env.name,
              environment_protected: String(env.protected ?? false),
              deployment_tier: env.tier ?? "other",
              environment_action: env.action ?? "start",
            }
          : {}),
        runner_id: 1,
        runner_environment: "self-hosted",
        sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
        project_visibility: named.visibility ?? "private",
        ci_config_ref_uri: `${host}/${opts.project.path}//.gitlab-ci.yml@${refPath}`,
        ci_config_sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
      };
      const sub = gitlabSubject(
        opts.subClaimComponents ?? GITLAB_DEFAULT_SUB_COMPONENTS,
        custom,
        env !== undefined,
      );
      const claims: Record<string, unknown> = {
        ...custom,
        jti: randomUUID(),
        iss: opts.issuer,
        iat: now,
        nbf: now + (opts.notBeforeOffsetSeconds ?? -5),
        exp: now + (opts.expiresInSeconds ?? 300),
        sub,
        aud: opts.audience,
      };
      for (const [key, value] of Object.entries(opts.overrides ?? {})) {
        if (value === undefined) delete claims[key];
        else claims[key] = value;
      }
      return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid, typ: "JWT" }).sign(privateKey);
    },
  };
}

export interface OidcIssuerServer {
  /** Issuer URL (`https://localhost:PORT`), also the value to put in `iss`. */
  url: string;
  issuer: OidcIssuer;
  close(): Promise<void>;
}

/** A stand-alone HTTPS issuer for tests that need GitLab's OIDC endpoints without the GitLab simulator. */
export async function startOidcIssuerServer(
  opts: { issuer?: OidcIssuer; port?: number } = {},
): Promise<OidcIssuerServer> {
  const issuer = opts.issuer ?? (await createOidcIssuer());
  const app = new Hono();
  let url = "";
  issuer.mount(app, () => url);
  const listener = await listenHttps(app, opts.port);
  url = listener.url;
  return { url, issuer, close: listener.close };
}
