import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { createAuthority, JWT_BEARER } from "./entra-sim/authority.ts";
import { type BatchItem, parseBatch, runBatch } from "./entra-sim/batch.ts";
import {
  GraphFailure,
  type GraphResponse,
  graphErrorResponse,
  throttledResponse,
} from "./entra-sim/envelope.ts";
import { defaultCodeFor, type FailRule, SimFaults } from "./entra-sim/faults.ts";
import { type Caller, type GraphEnv, type GraphRequest, handleGraph } from "./entra-sim/graph.ts";
import { listenHttps } from "./entra-sim/listen.ts";
import { type DirectorySeed, seedDirectory } from "./entra-sim/seed.ts";
import {
  clearState,
  newState,
  type SimApp,
  type SimFic,
  type SimGroup,
  type SimSp,
  type SimState,
  snapshot,
} from "./entra-sim/state.ts";
import { trustSandboxCa } from "./tls.ts";

export { MAX_FICS_PER_APP } from "./entra-sim/graph.ts";
export type { DirectorySeed } from "./entra-sim/seed.ts";
export type { SimApp, SimFic, SimGroup, SimSp, SimState };

export const DEFAULT_BOT_ROLES = [
  "Application.ReadWrite.OwnedBy",
  "GroupMember.ReadWrite.All",
  "Application.ReadWrite.All",
];

export interface EntraSimOptions {
  tenantId: string;
  /** roles default: Application.ReadWrite.OwnedBy, GroupMember.ReadWrite.All, Application.ReadWrite.All */
  bot: {
    clientId: string;
    clientSecret: string;
    roles?: string[];
    /** Federated credentials on the bot's own app: it may then log in with a client assertion (workload identity). */
    federatedCredentials?: Array<{ name: string; issuer: string; subject: string; audiences: string[] }>;
  };
  /** Pre-seeded security groups. */
  groups?: Array<{ id: string; displayName: string }>;
  port?: number;
  latencyMs?: number;
  /** Seconds of clock skew tolerated on client assertions (default 0, so expiry tests are exact). */
  clockSkewSeconds?: number;
  /**
   * Answer 400 "Invalid language specified." to /applications and /servicePrincipals calls carrying
   * `Accept-Language: *` (undici's default), as reported in msgraph-sdk-javascript#999. Default true: clients
   * must send an explicit language, e.g. `Accept-Language: en-US`.
   */
  rejectWildcardAcceptLanguage?: boolean;
  /**
   * The simulator's clock in ms (default Date.now): replication and FIC propagation delays, write throttling
   * and token lifetimes read it, so a test can step time instead of sleeping through a delay.
   */
  now?: () => number;
  /** Code for an audience mismatch at the token endpoint: 70021 (default, verbatim-documented) or 7002121. */
  audienceMismatchCode?: 70021 | 7002121;
}

export interface SimRequestRecord {
  method: string;
  /** Path without query, e.g. `/v1.0/applications`; $batch items are recorded with their own path. */
  path: string;
  status: number;
  /** graph: a plain Graph call; batch: the $batch envelope; batch-item: one request inside it; login: token/discovery. */
  kind: "graph" | "batch" | "batch-item" | "login";
  /** Query parameters of a plain Graph call, decoded (e.g. `$filter`), to pin request shapes in tests. */
  query?: Record<string, string>;
  /** Query string as sent (without "?"), e.g. `$filter=...&$select=id` ("" when none). */
  queryString: string;
  /** Parsed JSON body (graph, batch, batch-item); undefined when none. Login form bodies are not kept. */
  body?: unknown;
  /** Request headers the contract cares about (lower-cased): prefer, content-type. */
  headers: Record<string, string>;
  /** The simulator's clock when the answer was ready (ms). */
  at: number;
  /** Objects a successful list answer returned (its `value` array), to count items read; absent otherwise. */
  items?: number;
}

export interface HeldRequests {
  /** Resolves when the first matching Graph request has arrived (and is being held). */
  reached: Promise<void>;
  /** Lets the held requests (and later ones) through. */
  release(): void;
}

export interface EntraSimulator {
  /** https://localhost:PORT ; use as AZURE_AUTHORITY_HOST and GRAPH_BASE_URL */
  url: string;
  tenantId: string;
  /** Object id of the bot's own service principal (owner of every app it creates). */
  botServicePrincipalId: string;
  state: SimState;
  faults: SimFaults;
  stats: {
    requests: SimRequestRecord[];
    reads(): number;
    writes(): number;
    throttled(): number;
    reset(): void;
  };
  /**
   * Holds matching Graph requests (before they touch the directory) until released: tests stop a worker in the
   * middle of a job by waiting for `reached` instead of racing a timer.
   */
  hold(match: { method?: string; pathIncludes?: string }): HeldRequests;
  /** Every access token the login authority issued, oldest first: the bot's Graph tokens and pipelines' tokens. */
  issuedTokens: Array<{ token: string; appId: string; federated: boolean }>;
  /** Federated token exchange, in-process convenience that calls the real HTTP endpoint. */
  exchange(opts: {
    clientId: string;
    assertion: string;
    scope?: string;
  }): Promise<{ status: number; body: unknown }>;
  /**
   * Adds apps, service principals, credentials and group members given as plain data (entra-sim/seed.ts), as
   * if the bot had created them long ago: benchmarks start from thousands of identities this way.
   */
  seed(data: DirectorySeed): void;
  reset(): void;
  close(): Promise<void>;
}

const WRITE_METHODS = ["POST", "PATCH", "PUT", "DELETE"];

const lagRule = z
  .object({ times: z.number().int().min(0).optional(), forMs: z.number().min(0).optional() })
  .strict();

const faultsBodySchema = z
  .object({
    down: z.boolean().optional(),
    latencyMs: z.number().min(0).optional(),
    throttle: z.object({ writesPerSecond: z.number().positive() }).nullable().optional(),
    replicationDelayMs: z.number().min(0).optional(),
    ficPropagationDelayMs: z.number().min(0).optional(),
    replication: z
      .object({
        spCreate: lagRule
          .extend({ answer: z.enum(["no-backing-application", "not-local-tenant"]) })
          .nullish(),
        memberAdd: lagRule.nullish(),
        staleLists: lagRule.nullish(),
      })
      .strict()
      .optional(),
    failNext: z
      .object({
        count: z.number().int().positive(),
        status: z.number().int().min(400).max(599),
        retryAfterSeconds: z.number().positive().optional(),
        code: z.string().optional(),
        pathIncludes: z.string().optional(),
        committed: z.boolean().optional(),
      })
      .optional(),
  })
  .strict();

export async function startEntraSimulator(opts: EntraSimOptions): Promise<EntraSimulator> {
  // The token endpoint fetches issuers' keys from other sandbox HTTPS servers.
  trustSandboxCa();
  const seedGroups = opts.groups ?? [];
  const state = newState(seedGroups);
  const faults = new SimFaults();
  faults.latencyMs = opts.latencyMs ?? 0;
  const requests: SimRequestRecord[] = [];
  const botSpId = randomUUID();
  // The bot's own service principal is a directory object like any other: GET
  // /servicePrincipals(appId='{client id}') finds it, and it is the owner of what the bot creates. Its app
  // registration lives with whoever set the bot up (not modelled), and admins own it.
  const seedBot = () => {
    state.servicePrincipals.set(botSpId, {
      id: botSpId,
      appId: opts.bot.clientId,
      displayName: "gitlab-entra-bot",
      appDisplayName: "gitlab-entra-bot",
      tags: [],
      accountEnabled: true,
      owners: [],
      passwordCredentials: 0,
      keyCredentials: 0,
      createdAtMs: 0,
    });
  };
  seedBot();
  const rejectWildcardLanguage = opts.rejectWildcardAcceptLanguage ?? true;
  const clock = opts.now ?? (() => Date.now());
  const issuedTokens: EntraSimulator["issuedTokens"] = [];
  const holds: Array<{ method?: string; pathIncludes?: string; gate: Promise<void>; arrived: () => void }> =
    [];
  function hold(match: { method?: string; pathIncludes?: string }): HeldRequests {
    const reached = Promise.withResolvers<void>();
    const gate = Promise.withResolvers<void>();
    const entry = { ...match, gate: gate.promise, arrived: () => reached.resolve() };
    holds.push(entry);
    return {
      reached: reached.promise,
      release() {
        const i = holds.indexOf(entry);
        if (i >= 0) holds.splice(i, 1);
        gate.resolve();
      },
    };
  }
  let url = "";

  const authority = await createAuthority({
    tenantId: opts.tenantId,
    bot: { ...opts.bot, roles: opts.bot.roles ?? DEFAULT_BOT_ROLES },
    botSpId,
    state,
    faults,
    url: () => url,
    clockSkewSeconds: opts.clockSkewSeconds ?? 0,
    now: clock,
    audienceMismatchCode: opts.audienceMismatchCode,
    onIssued: (t) => issuedTokens.push(t),
  });
  const env: GraphEnv = { state, faults, tenantId: opts.tenantId, baseUrl: () => url, now: clock };

  const app = new Hono();
  const record = (r: SimRequestRecord) => requests.push(r);

  app.get("/_sim/state", (c) =>
    c.json({
      tenantId: opts.tenantId,
      url,
      botServicePrincipalId: botSpId,
      ...snapshot(state),
      faults: {
        latencyMs: faults.latencyMs,
        down: faults.down,
        throttle: faults.throttle,
        replicationDelayMs: faults.replicationDelayMs,
        ficPropagationDelayMs: faults.ficPropagationDelayMs,
        replication: faults.replication,
        pendingFailures: faults.rules,
      },
      stats: {
        reads: stats.reads(),
        writes: stats.writes(),
        throttled: stats.throttled(),
        requests: requests.length,
      },
    }),
  );
  app.post("/_sim/faults", async (c) => {
    const parsed = faultsBodySchema.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: "invalid faults body", issues: parsed.error.issues }, 400);
    const f = parsed.data;
    if (f.down !== undefined) faults.down = f.down;
    if (f.latencyMs !== undefined) faults.latencyMs = f.latencyMs;
    if (f.throttle !== undefined) faults.throttle = f.throttle;
    if (f.replicationDelayMs !== undefined) faults.replicationDelayMs = f.replicationDelayMs;
    if (f.ficPropagationDelayMs !== undefined) faults.ficPropagationDelayMs = f.ficPropagationDelayMs;
    if (f.replication) {
      const r = f.replication;
      if (r.spCreate !== undefined) faults.replication.spCreate = r.spCreate ?? null;
      if (r.memberAdd !== undefined) faults.replication.memberAdd = r.memberAdd ?? null;
      if (r.staleLists !== undefined) faults.replication.staleLists = r.staleLists ?? null;
    }
    if (f.failNext) {
      const { count, status, ...rest } = f.failNext;
      faults.failNext(count, status, rest);
    }
    return c.json({ ok: true });
  });
  app.post("/_sim/reset", (c) => {
    reset();
    return c.json({ ok: true });
  });

  // Login authority. Recorded (kind "login") but not counted as Graph reads or writes.
  app.use("/:tenant/*", async (c, next) => {
    if (
      c.req.path.startsWith("/v1.0/") ||
      c.req.path.startsWith("/beta/") ||
      c.req.path.startsWith("/_sim/")
    ) {
      return next();
    }
    await next();
    record({
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      kind: "login",
      queryString: new URL(c.req.url).search.replace(/^\?/, ""),
      headers: {},
      at: clock(),
    });
  });
  authority.mount(app);

  app.all("/v1.0/*", (c) => graphHttp(c, "v1.0"));
  app.all("/beta/*", (c) => graphHttp(c, "beta"));

  function failureFor(rule: FailRule): {
    status: number;
    code: string;
    message: string;
    headers: Record<string, string>;
  } {
    const headers: Record<string, string> = {};
    const retryAfter = rule.retryAfterSeconds ?? (rule.status === 429 || rule.status === 503 ? 1 : undefined);
    if (retryAfter !== undefined) headers["Retry-After"] = String(retryAfter);
    return {
      status: rule.status,
      code: rule.code ?? defaultCodeFor(rule.status),
      message: rule.status === 429 ? "Please retry again later." : "Injected failure (simulator).",
      headers,
    };
  }

  /** One Graph operation behind the per-operation faults (targeted failures, write throttling). */
  async function execute(
    req: GraphRequest,
    ids: { requestId: string; clientRequestId: string },
    onlyTargetedFailures: boolean,
  ): Promise<GraphResponse> {
    const now = clock();
    const rule = faults.takeFailure(`/${req.version}${req.path}`, onlyTargetedFailures);
    if (rule?.committed) {
      // The work is done, the answer is lost (a gateway timeout after the directory committed the write).
      try {
        handleGraph(env, req);
      } catch (e) {
        if (!(e instanceof GraphFailure)) throw e;
      }
    }
    if (rule) {
      if (rule.status === 429 && !rule.code) return throttledResponse(rule.retryAfterSeconds ?? 1, ids, now);
      return graphErrorResponse(failureFor(rule), ids, now);
    }
    if (WRITE_METHODS.includes(req.method)) {
      const token = faults.takeWriteToken(now);
      if (!token.ok) return throttledResponse(token.retryAfterSeconds, ids, now);
    }
    try {
      return handleGraph(env, req);
    } catch (e) {
      if (e instanceof GraphFailure) return graphErrorResponse(e, ids, now);
      throw e;
    }
  }

  async function graphHttp(c: Context, version: "v1.0" | "beta"): Promise<Response> {
    const requestId = randomUUID();
    const clientRequestId = c.req.header("client-request-id") ?? requestId;
    const ids = { requestId, clientRequestId };
    const rawPath = c.req.path.slice(version.length + 1) || "/";
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      path = rawPath;
    }
    const isBatch = path === "/$batch";
    const sent = await c.req.raw.clone().text();
    const res = await respondGraph(c, version, path, ids, isBatch);
    const query = Object.fromEntries(new URL(c.req.url).searchParams);
    record({
      method: c.req.method,
      path: `/${version}${path}`,
      status: res.status,
      kind: isBatch ? "batch" : "graph",
      ...(Object.keys(query).length ? { query } : {}),
      queryString: new URL(c.req.url).search.replace(/^\?/, ""),
      body: jsonOrText(sent),
      headers: pickHeaders(c.req.raw.headers),
      at: clock(),
      ...listed(res),
    });
    const headers = new Headers(res.headers);
    headers.set("request-id", requestId);
    headers.set("client-request-id", clientRequestId);
    headers.set("x-ms-ags-diagnostic", JSON.stringify({ ServerInfo: { DataCenter: "Sandbox", Slice: "E" } }));
    if (res.body === undefined) return new Response(null, { status: res.status, headers });
    return new Response(JSON.stringify(res.body), { status: res.status, headers });
  }

  async function respondGraph(
    c: Context,
    version: "v1.0" | "beta",
    path: string,
    ids: { requestId: string; clientRequestId: string },
    isBatch: boolean,
  ): Promise<GraphResponse> {
    const now = Date.now();
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    for (const h of holds) {
      if ((!h.method || h.method === c.req.method) && (!h.pathIncludes || path.includes(h.pathIncludes))) {
        h.arrived();
        await h.gate;
      }
    }
    if (faults.down) {
      return graphErrorResponse(
        {
          status: 503,
          code: "ServiceUnavailable",
          message: "The service is temporarily unavailable. Please retry later.",
          headers: { "Retry-After": String(faults.downRetryAfterSeconds) },
        },
        ids,
        now,
      );
    }
    // An untargeted injected failure hits the next HTTP call as a whole (a $batch envelope included).
    // Committed failures need the operation itself, so they wait for execute().
    const rule = faults.takeFailure(`/${version}${path}`, false, false);
    if (rule) {
      if (rule.status === 429 && !rule.code) return throttledResponse(rule.retryAfterSeconds ?? 1, ids, now);
      return graphErrorResponse(failureFor(rule), ids, now);
    }
    const auth = c.req.header("authorization") ?? "";
    const bearer = /^Bearer (.+)$/i.exec(auth)?.[1] ?? "";
    const verified = await authority.verifyGraphToken(bearer);
    if (!verified.ok) {
      return graphErrorResponse(
        { status: 401, code: "InvalidAuthenticationToken", message: verified.message },
        ids,
        now,
      );
    }
    if (
      rejectWildcardLanguage &&
      c.req.header("accept-language")?.trim() === "*" &&
      /^\/(applications|servicePrincipals)\b/.test(path)
    ) {
      return graphErrorResponse(
        { status: 400, code: "Request_BadRequest", message: "Invalid language specified." },
        ids,
        now,
      );
    }
    let body: unknown;
    const text = await c.req.text();
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        return graphErrorResponse(
          {
            status: 400,
            code: "BadRequest",
            message:
              "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
          },
          ids,
          now,
        );
      }
    }
    const headers: Record<string, string> = {};
    c.req.raw.headers.forEach((value, key) => {
      headers[key.toLowerCase()] = value;
    });
    const query = new URL(c.req.url).searchParams;
    if (isBatch) {
      if (c.req.method !== "POST") {
        return graphErrorResponse(
          {
            status: 405,
            code: "Request_BadRequest",
            message: "Specified HTTP method is not allowed for the request target.",
          },
          ids,
          now,
        );
      }
      return batch(version, body, verified.caller, ids);
    }
    return execute(
      { method: c.req.method, version, path, query, headers, body, caller: verified.caller },
      ids,
      false,
    );
  }

  async function batch(
    version: "v1.0" | "beta",
    body: unknown,
    caller: Caller,
    ids: { requestId: string; clientRequestId: string },
  ): Promise<GraphResponse> {
    let items: BatchItem[];
    try {
      items = parseBatch(body);
    } catch (e) {
      if (e instanceof GraphFailure) return graphErrorResponse(e, ids, Date.now());
      throw e;
    }
    try {
      const responses = await runBatch(items, async (item) => {
        const res = await executeItem(version, item, caller, ids);
        const [itemPath, itemQuery] = relativeUrl(item.url);
        record({
          method: item.method.toUpperCase(),
          path: `/${version}${itemPath}`,
          status: res.status,
          kind: "batch-item",
          ...(itemQuery.size ? { query: Object.fromEntries(itemQuery) } : {}),
          queryString: itemQuery.toString(),
          body: item.body,
          headers: pickHeaders(new Headers(item.headers ?? {})),
          at: clock(),
          ...listed(res),
        });
        return res;
      });
      return { status: 200, headers: { "Content-Type": "application/json" }, body: { responses } };
    } catch (e) {
      if (e instanceof GraphFailure) return graphErrorResponse(e, ids, Date.now());
      throw e;
    }
  }

  function relativeUrl(raw: string): [string, URLSearchParams] {
    const withSlash = raw.startsWith("/") ? raw : `/${raw}`;
    const q = withSlash.indexOf("?");
    const pathPart = q >= 0 ? withSlash.slice(0, q) : withSlash;
    let path: string;
    try {
      path = decodeURIComponent(pathPart);
    } catch {
      path = pathPart;
    }
    return [path, new URLSearchParams(q >= 0 ? withSlash.slice(q + 1) : "")];
  }

  async function executeItem(
    version: "v1.0" | "beta",
    item: BatchItem,
    caller: Caller,
    ids: { requestId: string; clientRequestId: string },
  ): Promise<GraphResponse> {
    if (/^https?:/i.test(item.url) || /^\/?(v1\.0|beta)\//.test(item.url) || /^\/?\$batch/.test(item.url)) {
      return graphErrorResponse(
        {
          status: 400,
          code: "BadRequest",
          message: `Invalid request URL '${item.url}': use a URL relative to /${version}.`,
        },
        ids,
        Date.now(),
      );
    }
    const [path, query] = relativeUrl(item.url);
    const headers = Object.fromEntries(
      Object.entries(item.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
    );
    return execute(
      { method: item.method.toUpperCase(), version, path, query, headers, body: item.body, caller },
      ids,
      true,
    );
  }

  const isGraphOp = (r: SimRequestRecord) => r.kind === "graph" || r.kind === "batch-item";
  const stats: EntraSimulator["stats"] = {
    requests,
    reads: () => requests.filter((r) => isGraphOp(r) && r.method === "GET").length,
    writes: () => requests.filter((r) => isGraphOp(r) && WRITE_METHODS.includes(r.method)).length,
    throttled: () => requests.filter((r) => isGraphOp(r) && r.status === 429).length,
    reset: () => {
      requests.length = 0;
    },
  };

  function reset(): void {
    clearState(state, seedGroups);
    seedBot();
    faults.reset();
    stats.reset();
    authority.clearCaches();
  }

  const listener = await listenHttps(app, opts.port);
  url = listener.url;

  return {
    url,
    tenantId: opts.tenantId,
    botServicePrincipalId: botSpId,
    state,
    faults,
    stats,
    issuedTokens,
    hold,
    async exchange({ clientId, assertion, scope }) {
      const res = await fetch(`${url}/${opts.tenantId}/oauth2/v2.0/token`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: clientId,
          client_assertion_type: JWT_BEARER,
          client_assertion: assertion,
          // What `az login --federated-token` asks for first: an ARM token.
          scope: scope ?? "https://management.azure.com/.default",
        }),
      });
      return { status: res.status, body: await res.json() };
    },
    seed: (data) => seedDirectory(state, botSpId, data, clock()),
    reset,
    close: listener.close,
  };
}

/** How many objects a list answer returned (`{ value: [...] }` with a 2xx status). */
function listed(res: GraphResponse): { items?: number } {
  const value = (res.body as { value?: unknown } | undefined)?.value;
  return res.status < 300 && Array.isArray(value) ? { items: value.length } : {};
}

/** A request body as the contract sees it: JSON when it parses, else the text; undefined when empty. */
function jsonOrText(text: string): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function pickHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["prefer", "content-type"]) {
    const value = headers.get(name);
    if (value !== null) out[name] = value;
  }
  return out;
}
