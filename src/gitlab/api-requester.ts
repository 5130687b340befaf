import type { Gitlab } from "@gitbeaker/rest";
import {
  codeForStatus,
  describeGitLabMessage,
  GitLabError,
  hintFor,
  rateLimitDelayMs,
  redact,
} from "./errors.ts";

/*
 * Why a custom requester: @gitbeaker/rest 43.8.0's default request handler retries 429 and 502 up to 10
 * times itself (hard-coded `retryCodes = [429, 502]`, no option to turn it off) and runs a client-side
 * rate limiter per endpoint. The design has ONE retry layer, BullMQ's, which honours Retry-After through the
 * worker rate limiter. So this requester sends each request exactly once, never rate-limits locally, and
 * turns every failure into a typed GitLabError (instead of GitbeakerRequestError, whose `cause` carries the
 * Request object and with it the PRIVATE-TOKEN header).
 */

type GitlabOptions = ConstructorParameters<typeof Gitlab>[0];
type RequesterFn = NonNullable<GitlabOptions["requesterFn"]>;
type ResourceOptions = Parameters<RequesterFn>[0];
type RequesterType = ReturnType<RequesterFn>;

interface CallOptions {
  body?: FormData | Record<string, unknown>;
  searchParams?: Record<string, unknown>;
  sudo?: string | number;
  asStream?: boolean;
  signal?: AbortSignal;
}

interface Formatted {
  body: unknown;
  headers: Record<string, string>;
  status: number;
}

/** gitbeaker's options are camelCase; GitLab wants snake_case (same rule as xcase's decamelize). */
export function decamelize(key: string): string {
  return key
    .replace(/([a-z\d])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z\d]+)/g, "$1_$2")
    .toLowerCase();
}

function decamelizeDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decamelizeDeep);
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      out[decamelize(k)] = decamelizeDeep(v);
    return out;
  }
  return value;
}

/** Query string in Rails/qs "brackets" style: `filter[environment_scope]=x`, `iids[]=1`. */
export function toQuery(params: Record<string, unknown> | undefined): string {
  const out = new URLSearchParams();
  const add = (key: string, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) {
      for (const v of value) add(`${key}[]`, v);
    } else if (typeof value === "object" && !(value instanceof Date)) {
      for (const [k, v] of Object.entries(value as Record<string, unknown>))
        add(`${key}[${decamelize(k)}]`, v);
    } else {
      out.append(key, value instanceof Date ? value.toISOString() : String(value));
    }
  };
  for (const [k, v] of Object.entries(params ?? {})) add(decamelize(k), v);
  return out.toString();
}

async function readBody(response: Response): Promise<unknown> {
  if (response.status === 204) return null;
  const text = await response.text();
  if (text === "") return null;
  const type = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  if (type === "application/json" || type.endsWith("+json")) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

export interface RequesterSettings {
  /** Strings that must never appear in an error message (the token). */
  secrets: readonly string[];
}

/** Builds the requesterFn handed to `new Gitlab({ requesterFn })`. */
export function createSingleShotRequesterFn(settings: RequesterSettings): RequesterFn {
  return (resource: ResourceOptions): RequesterType => {
    const base = resource.url.endsWith("/") ? resource.url : `${resource.url}/`;
    const call = async (method: string, endpoint: string, options: CallOptions = {}): Promise<Formatted> => {
      const headers: Record<string, string> = { ...resource.headers };
      if (options.sudo !== undefined) headers.sudo = String(options.sudo);
      for (const [name, fn] of Object.entries(resource.authHeaders)) headers[name] = await fn();
      let body: string | FormData | undefined;
      if (options.body instanceof FormData) body = options.body;
      else if (options.body && Object.keys(options.body).length > 0) {
        body = JSON.stringify(decamelizeDeep(options.body));
        headers["content-type"] = "application/json";
      }
      const url = new URL(endpoint, base);
      url.search = toQuery(options.searchParams);
      // The operation names the endpoint without query string: enough to act on, nothing sensitive.
      const operation = `${method} ${endpoint}`;
      let response: Response;
      try {
        response = await fetch(url, { method, headers, body, signal: options.signal });
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        const timeout = e.name === "TimeoutError" || e.name === "AbortError";
        const detail = e.cause?.code ?? e.cause?.message ?? e.message;
        const code = timeout ? "timeout" : "network";
        throw new GitLabError({
          code,
          operation,
          message: redact(
            `GitLab ${operation} ${timeout ? "timed out" : `failed before a response (${detail})`}: ${hintFor(code)}`,
            settings.secrets,
          ),
        });
      }
      if (!response.ok) {
        const payload = await readBody(response).catch(() => null);
        const raw =
          payload && typeof payload === "object"
            ? ((payload as Record<string, unknown>).message ?? (payload as Record<string, unknown>).error)
            : payload;
        const code = codeForStatus(response.status);
        const described = describeGitLabMessage(raw).slice(0, 500);
        const hint = hintFor(code);
        throw new GitLabError({
          code,
          status: response.status,
          operation,
          retryAfterMs: rateLimitDelayMs(response.headers),
          gitlabMessage: raw,
          message: redact(
            `GitLab ${operation} answered ${response.status}${described ? `: ${described}` : ""}${hint ? ` (${hint})` : ""}`,
            settings.secrets,
          ),
        });
      }
      return {
        body: options.asStream ? response.body : await readBody(response),
        headers: Object.fromEntries(response.headers.entries()),
        status: response.status,
      };
    };
    const requester = {
      get: (endpoint: string, options?: CallOptions) => call("GET", endpoint, options),
      post: (endpoint: string, options?: CallOptions) => call("POST", endpoint, options),
      put: (endpoint: string, options?: CallOptions) => call("PUT", endpoint, options),
      patch: (endpoint: string, options?: CallOptions) => call("PATCH", endpoint, options),
      delete: (endpoint: string, options?: CallOptions) => call("DELETE", endpoint, options),
    };
    // gitbeaker types each method as generic over the response body; ours returns `unknown` bodies that the
    // API layer parses with zod, so the generic signature is satisfied by a cast, not by trust.
    return requester as unknown as RequesterType;
  };
}
