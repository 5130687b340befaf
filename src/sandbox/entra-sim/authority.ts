import { randomUUID } from "node:crypto";
import type { Context, Hono } from "hono";
import {
  createLocalJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
} from "jose";
import { z } from "zod";
import type { SimFaults } from "./faults.ts";
import { type FederatedCredentialView, judgeAssertion } from "./federation.ts";
import type { Caller } from "./graph.ts";
import { findAppByAppId, findSpByAppId, type SimState } from "./state.ts";

/** Entra's login authority for one tenant: discovery, token endpoint (client secret + federated), signing keys. */

export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const GRAPH_RESOURCE_IDS = ["00000003-0000-0000-c000-000000000000"];
const GRAPH_ROOTS = [
  "https://graph.microsoft.com",
  "https://graph.microsoft.us",
  "https://dod-graph.microsoft.us",
  "https://microsoftgraph.chinacloudapi.cn",
  "https://canary.graph.microsoft.com",
];

export interface AuthorityOptions {
  tenantId: string;
  bot: {
    clientId: string;
    clientSecret: string;
    roles: string[];
    /**
     * Federated credentials on the bot's own app registration: workload identity federation, e.g. a Kubernetes
     * service account token (issuer = the cluster's OIDC issuer) in place of the client secret.
     */
    federatedCredentials?: Array<FederatedCredentialView & { name?: string }>;
  };
  /** Object id of the bot's own service principal (it owns the apps it creates). */
  botSpId: string;
  state: SimState;
  faults: SimFaults;
  url: () => string;
  /** Seconds of clock skew tolerated on client assertions. */
  clockSkewSeconds: number;
  /** The simulator's clock (ms); tests drive FIC propagation with it instead of waiting. */
  now: () => number;
  /** The code for "issuer and subject match, audience does not": 70021 (verbatim-documented) or 7002121. */
  audienceMismatchCode?: 70021 | 7002121;
  /** Told of every access token issued (tests look for them where they must never appear). */
  onIssued?: (issued: { token: string; appId: string; federated: boolean }) => void;
}

interface TokenError {
  status: number;
  error: string;
  code: number;
  description: string;
}

const tokenFormSchema = z.object({
  grant_type: z.string().optional(),
  client_id: z.string().optional(),
  client_secret: z.string().optional(),
  client_assertion_type: z.string().optional(),
  client_assertion: z.string().optional(),
  scope: z.string().optional(),
});
type TokenForm = z.infer<typeof tokenFormSchema>;

const discoverySchema = z.object({ issuer: z.string().optional(), jwks_uri: z.url() });
const jwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

export interface Authority {
  mount(app: Hono): void;
  /** Verifies an access token this authority issued for Graph; returns the caller or a Graph 401 message. */
  verifyGraphToken(token: string): Promise<{ ok: true; caller: Caller } | { ok: false; message: string }>;
  /** Forget cached issuer keys (reset). */
  clearCaches(): void;
}

export async function createAuthority(opts: AuthorityOptions): Promise<Authority> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, use: "sig", alg: "RS256" };
  const localKeys = createLocalJWKSet({ keys: [publicJwk] });
  const issuerKeys = new Map<string, JSONWebKeySet>();
  const { tenantId } = opts;

  const knownTenant = (t: string) => t === tenantId || t === "organizations" || t === "common";
  const stsIssuer = () => `https://sts.windows.net/${tenantId}/`;

  function openIdConfiguration(): Record<string, unknown> {
    const base = `${opts.url()}/${tenantId}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: `${base}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: "https://graph.microsoft.com/oidc/userinfo",
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "roles"],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: "EU",
      cloud_instance_name: new URL(opts.url()).host,
      cloud_graph_host_name: new URL(opts.url()).host,
      msgraph_host: new URL(opts.url()).host,
      rbac_url: "https://pas.windows.net",
    };
  }

  function errorBody(err: TokenError, correlationId: string): Record<string, unknown> {
    const traceId = randomUUID();
    const timestamp = `${new Date().toISOString().slice(0, 19).replace("T", " ")}Z`;
    return {
      error: err.error,
      error_description: `${err.description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [err.code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${opts.url()}/error?code=${err.code}`,
    };
  }

  const fail400 = (error: string, code: number, text: string) => ({
    ok: false as const,
    err: fail(400, error, code, text),
  });
  const fail = (status: number, error: string, code: number, text: string): TokenError => ({
    status,
    error,
    code,
    description: `AADSTS${code}: ${text}`,
  });

  /** `https://graph.microsoft.com/.default` -> `https://graph.microsoft.com`; client credentials need `/.default`. */
  function resourceOf(scope: string | undefined): string | TokenError {
    const scopes = (scope ?? "")
      .split(" ")
      .filter((s) => s && !["openid", "profile", "offline_access"].includes(s));
    const only = scopes[0];
    if (!only || scopes.length !== 1 || !only.endsWith("/.default")) {
      return fail(
        400,
        "invalid_scope",
        1002012,
        `The provided value for scope ${scope ?? ""} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    return only.slice(0, -"/.default".length);
  }

  async function accessToken(claims: {
    aud: string;
    appid: string;
    oid: string;
    roles: string[];
    appidacr: string;
  }): Promise<{ token: string; expiresIn: number }> {
    const expiresIn = 3599;
    const now = Math.floor(opts.now() / 1000);
    const token = await new SignJWT({
      aud: claims.aud,
      iss: stsIssuer(),
      iat: now,
      nbf: now - 5,
      exp: now + expiresIn,
      appid: claims.appid,
      appidacr: claims.appidacr,
      idp: stsIssuer(),
      idtyp: "app",
      oid: claims.oid,
      sub: claims.oid,
      tid: tenantId,
      uti: randomUUID().replace(/-/g, "").slice(0, 22),
      ver: "1.0",
      ...(claims.roles.length > 0 ? { roles: claims.roles } : {}),
    })
      .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
      .sign(privateKey);
    opts.onIssued?.({ token, appId: claims.appid, federated: claims.appidacr === "2" });
    return { token, expiresIn };
  }

  async function fetchIssuerKeys(issuer: string, refresh: boolean): Promise<JSONWebKeySet> {
    const cached = issuerKeys.get(issuer);
    if (cached && !refresh) return cached;
    if (!issuer.startsWith("https://")) throw new Error("issuer is not https");
    const discoveryUrl = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    const discoveryResponse = await fetch(discoveryUrl, { signal: AbortSignal.timeout(5000) });
    if (!discoveryResponse.ok) throw new Error(`discovery answered ${discoveryResponse.status}`);
    const discovery = discoverySchema.parse(await discoveryResponse.json());
    const jwksResponse = await fetch(discovery.jwks_uri, { signal: AbortSignal.timeout(5000) });
    if (!jwksResponse.ok) throw new Error(`jwks answered ${jwksResponse.status}`);
    const jwks = jwksSchema.parse(await jwksResponse.json()) as JSONWebKeySet;
    issuerKeys.set(issuer, jwks);
    return jwks;
  }

  async function verifyAssertion(
    assertion: string,
    issuer: string,
  ): Promise<{ ok: true; payload: JWTPayload } | { ok: false; err: TokenError }> {
    let keys: JSONWebKeySet;
    try {
      keys = await fetchIssuerKeys(issuer, false);
    } catch {
      return {
        ok: false,
        err: fail(400, "invalid_request", 50166, "Request to External OIDC endpoint failed."),
      };
    }
    const verify = (set: JSONWebKeySet) =>
      jwtVerify(assertion, createLocalJWKSet(set), {
        algorithms: ["RS256"],
        clockTolerance: opts.clockSkewSeconds,
        currentDate: new Date(opts.now()),
        requiredClaims: ["exp", "iss", "sub", "aud"],
      });
    try {
      try {
        return { ok: true, payload: (await verify(keys)).payload };
      } catch (e) {
        // A rotated key: look the issuer's keys up again once before giving up.
        if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw e;
        return { ok: true, payload: (await verify(await fetchIssuerKeys(issuer, true))).payload };
      }
    } catch (e) {
      if (
        e instanceof joseErrors.JWTExpired ||
        (e instanceof joseErrors.JWTClaimValidationFailed && e.claim === "nbf")
      ) {
        const claims = decodeJwt(assertion);
        const iso = (s: unknown) => (typeof s === "number" ? new Date(s * 1000).toISOString() : "unknown");
        return fail400(
          "invalid_client",
          700024,
          `Client assertion is not within its valid time range. Current time: ${new Date(opts.now()).toISOString()}, assertion valid from ${iso(claims.nbf ?? claims.iat)}, expiry time of assertion ${iso(claims.exp)}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .`,
        );
      }
      if (e instanceof joseErrors.JWTClaimValidationFailed) {
        return { ok: false, err: fail(400, "invalid_request", 50027, "JWT token is invalid or malformed.") };
      }
      return {
        ok: false,
        err: fail(401, "invalid_client", 700027, "Client assertion failed signature validation."),
      };
    }
  }

  async function federated(form: TokenForm, clientId: string, resource: string) {
    if (form.client_assertion_type !== JWT_BEARER) {
      return fail(
        400,
        "invalid_request",
        50027,
        `Invalid client_assertion_type '${form.client_assertion_type ?? ""}'; expected '${JWT_BEARER}'.`,
      );
    }
    const assertion = form.client_assertion ?? "";
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(assertion);
    } catch {
      return fail(400, "invalid_request", 50027, "JWT token is invalid or malformed.");
    }
    // The bot's own app (workload identity for the bot itself) or an app the bot created (a pipeline's login).
    const own = clientId === opts.bot.clientId;
    let ready: FederatedCredentialView[];
    let oid: string;
    if (own) {
      ready = opts.bot.federatedCredentials ?? [];
      oid = opts.botSpId;
    } else {
      const app = findAppByAppId(opts.state, clientId);
      if (!app) return unknownClient(clientId);
      const sp = findSpByAppId(opts.state, clientId);
      if (!sp) {
        return fail(
          400,
          "invalid_client",
          7000229,
          `The client application ${clientId} is missing service principal in the tenant ${tenantId}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119`,
        );
      }
      // A disabled service principal gets no token whatever it presents: Graph's servicePrincipal resource says
      // of accountEnabled=false "no users are able to sign in to this app"; the answer Entra gives is
      // {"error":"unauthorized_client","error_description":"AADSTS7000112: Application '<appId>'(<name>) is
      // disabled."} (quoted verbatim in Worklytics/psoxy PR #74 and MicrosoftDocs/azure-docs issue #28469).
      if (!sp.accountEnabled) {
        return fail(
          400,
          "unauthorized_client",
          7000112,
          `Application '${clientId}'(${app.displayName}) is disabled.`,
        );
      }
      // A FIC that was just written is not yet usable (propagation), as in Entra.
      const now = opts.now();
      ready = app.fics.filter((f) => now - f.createdAtMs >= opts.faults.ficPropagationDelayMs);
      oid = sp.id;
    }
    const iss = typeof unverified.iss === "string" ? unverified.iss : "";
    const judge = (claims: JWTPayload) =>
      judgeAssertion(
        { ...claims, iss: String(claims.iss ?? ""), sub: String(claims.sub ?? ""), aud: audOf(claims) },
        ready,
        {
          audienceMismatchCode: opts.audienceMismatchCode,
        },
      );
    // Entra only trusts (and only fetches keys from) issuers that one of the app's credentials names.
    if (!ready.some((f) => f.issuer === iss)) {
      const verdict = judge(unverified);
      if (!verdict.accepted) return federationFailure(verdict);
    }
    const verified = await verifyAssertion(assertion, iss);
    if (!verified.ok) return verified.err;
    const verdict = judge(verified.payload);
    if (!verdict.accepted) return federationFailure(verdict);
    // Federated tokens say appidacr 2 (client assertion); the bot's own carry its application permissions.
    return accessToken({
      aud: resource,
      appid: clientId,
      oid,
      roles: own ? opts.bot.roles : [],
      appidacr: "2",
    });
  }

  /** HTTP 400 with Entra's error (70021 as invalid_request, the narrower codes as invalid_client). */
  function federationFailure(v: { code: number; error: string; text: string }): TokenError {
    return { status: 400, error: v.error, code: v.code, description: v.text };
  }

  const unknownClient = (clientId: string) =>
    fail(
      400,
      "unauthorized_client",
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    );

  async function token(form: TokenForm): Promise<TokenError | { token: string; expiresIn: number }> {
    if (form.grant_type !== "client_credentials") {
      return fail(
        400,
        "unsupported_grant_type",
        70003,
        `The app requested an unsupported grant type '${form.grant_type ?? ""}'.`,
      );
    }
    const clientId = form.client_id ?? "";
    if (!clientId) {
      return fail(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_id'.",
      );
    }
    const resource = resourceOf(form.scope);
    if (typeof resource !== "string") return resource;
    if (form.client_assertion !== undefined) return federated(form, clientId, resource);
    if (form.client_secret === undefined) {
      return fail(
        400,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    if (clientId !== opts.bot.clientId) return unknownClient(clientId);
    if (form.client_secret !== opts.bot.clientSecret) {
      return fail(
        401,
        "invalid_client",
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      );
    }
    return accessToken({
      aud: resource,
      appid: clientId,
      oid: opts.botSpId,
      roles: opts.bot.roles,
      appidacr: "1",
    });
  }

  async function tokenRoute(c: Context): Promise<Response> {
    const correlationId = c.req.header("client-request-id") ?? randomUUID();
    if (!knownTenant(c.req.param("tenant") ?? "")) {
      const err = fail(400, "invalid_request", 90002, `Tenant '${c.req.param("tenant")}' not found.`);
      return c.json(errorBody(err, correlationId), 400);
    }
    const raw = await c.req.parseBody();
    const form = tokenFormSchema.parse(
      Object.fromEntries(Object.entries(raw).filter(([, v]) => typeof v === "string")),
    );
    const result = await token(form);
    if ("error" in result) {
      return c.json(errorBody(result, correlationId), result.status as 400 | 401);
    }
    return c.json(
      {
        token_type: "Bearer",
        expires_in: result.expiresIn,
        ext_expires_in: result.expiresIn,
        access_token: result.token,
      },
      200,
      { "client-request-id": correlationId },
    );
  }

  return {
    mount(app) {
      app.get("/:tenant/v2.0/.well-known/openid-configuration", (c) => c.json(openIdConfiguration()));
      app.get("/:tenant/.well-known/openid-configuration", (c) => c.json(openIdConfiguration()));
      app.get("/:tenant/discovery/v2.0/keys", (c) => c.json({ keys: [publicJwk] }));
      app.get("/:tenant/discovery/keys", (c) => c.json({ keys: [publicJwk] }));
      app.get("/common/discovery/instance", (c) => {
        const host = new URL(opts.url()).host;
        return c.json({
          tenant_discovery_endpoint: `${opts.url()}/${tenantId}/v2.0/.well-known/openid-configuration`,
          "api-version": "1.1",
          metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
        });
      });
      app.post("/:tenant/oauth2/v2.0/token", tokenRoute);
      app.post("/:tenant/oauth2/token", tokenRoute);
    },
    async verifyGraphToken(tokenText) {
      if (!tokenText) return { ok: false, message: "Access token is empty." };
      let payload: JWTPayload;
      try {
        payload = (
          await jwtVerify(tokenText, localKeys, {
            algorithms: ["RS256"],
            issuer: stsIssuer(),
            currentDate: new Date(opts.now()),
          })
        ).payload;
      } catch (e) {
        if (e instanceof joseErrors.JWTExpired)
          return { ok: false, message: "Lifetime validation failed, the token is expired." };
        return { ok: false, message: "Access token validation failure." };
      }
      const aud = String(payload.aud ?? "").replace(/\/$/, "");
      const graphAudiences = [...GRAPH_ROOTS, ...GRAPH_RESOURCE_IDS, opts.url()];
      if (!graphAudiences.includes(aud)) {
        return { ok: false, message: "Access token validation failure. Invalid audience." };
      }
      const roles = Array.isArray(payload.roles)
        ? payload.roles.filter((r): r is string => typeof r === "string")
        : [];
      return {
        ok: true,
        caller: { appId: String(payload.appid ?? ""), spId: String(payload.oid ?? ""), roles },
      };
    },
    clearCaches() {
      issuerKeys.clear();
    },
  };
}

function audOf(payload: JWTPayload): string | string[] {
  return Array.isArray(payload.aud) ? payload.aud : String(payload.aud ?? "");
}
