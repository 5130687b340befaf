/**
 * Typed errors for everything that talks to Entra. The worker decides retry vs. fail-fast from `permanent`
 * and honours `retryAfterMs`; operators read `message`, which says what to do next. Messages never carry
 * secrets or tokens, only Graph's own error text, object ids and the request id support asks for.
 */
export type EntraErrorCode =
  | "GRAPH_THROTTLED"
  | "GRAPH_UNAVAILABLE"
  | "GRAPH_UNAUTHORIZED"
  | "GRAPH_FORBIDDEN"
  | "GRAPH_INVALID"
  | "GRAPH_NOT_FOUND"
  | "GRAPH_CONFLICT"
  | "GRAPH_BAD_RESPONSE"
  /** Entra's replicas do not know an object the bot created moments ago (reference/entra.md §9). */
  | "GRAPH_NOT_REPLICATED"
  /** The in-step wait for replication ran out; the job's next attempt carries on waiting. */
  | "ENTRA_REPLICATING"
  /** The bot's own service principal cannot be resolved from AZURE_CLIENT_ID. */
  | "BOT_IDENTITY_UNKNOWN"
  /** An object the bot would manage is not (or no longer) owned by the bot alone: it is left untouched. */
  | "OWNERSHIP_REFUSED"
  | "AUTH_FAILED"
  | "PLAN_TOO_MANY_FICS"
  | "PLAN_INVALID"
  /** A group template resolved to a display name no group has, or that several groups share. */
  | "PLAN_GROUP_NOT_FOUND"
  | "PLAN_GROUP_AMBIGUOUS"
  | "LOCK_TIMEOUT"
  | "LOCK_LOST";

/** Codes a later attempt can cure by itself (BullMQ retries these; all others fail at once). */
const RETRYABLE: ReadonlySet<EntraErrorCode> = new Set<EntraErrorCode>([
  "GRAPH_THROTTLED",
  "GRAPH_UNAVAILABLE",
  "GRAPH_NOT_FOUND",
  "GRAPH_CONFLICT",
  "GRAPH_NOT_REPLICATED",
  "ENTRA_REPLICATING",
  "LOCK_TIMEOUT",
  "LOCK_LOST",
]);

export interface EntraErrorInit {
  code: EntraErrorCode;
  message: string;
  status?: number;
  graphCode?: string;
  /** Graph's own error message and detail codes, kept apart from the operator message to classify by. */
  graphMessage?: string;
  graphDetails?: string[];
  requestId?: string;
  retryAfterMs?: number;
  /** Overrides the code's default (e.g. a 404 on an object we did not just create is permanent). */
  permanent?: boolean;
  cause?: unknown;
}

export class EntraError extends Error {
  readonly code: EntraErrorCode;
  readonly status: number | undefined;
  readonly graphCode: string | undefined;
  readonly graphMessage: string | undefined;
  readonly graphDetails: string[] | undefined;
  readonly requestId: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly permanent: boolean;

  constructor(init: EntraErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "EntraError";
    this.code = init.code;
    this.status = init.status;
    this.graphCode = init.graphCode;
    this.graphMessage = init.graphMessage;
    this.graphDetails = init.graphDetails;
    this.requestId = init.requestId;
    this.retryAfterMs = init.retryAfterMs;
    this.permanent = init.permanent ?? !RETRYABLE.has(init.code);
  }

  /** A JSON-safe view for job failure reasons, audit records and logs. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      status: this.status,
      graphCode: this.graphCode,
      requestId: this.requestId,
      retryAfterMs: this.retryAfterMs,
      permanent: this.permanent,
    };
  }
}

export function isEntraError(err: unknown): err is EntraError {
  return err instanceof EntraError;
}

/** What a Graph call was doing, so an error can name the operation and the permission it needs. */
export interface GraphOperation {
  /** e.g. "create the app registration for acme/api (production)". */
  action: string;
  /** Least-privileged application permission for this call, e.g. "Application.ReadWrite.OwnedBy". */
  permission: string;
}

/** `Retry-After` as Graph sends it: seconds, possibly fractional ("2.128"), or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.ceil(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export interface GraphFailure {
  status: number;
  graphCode?: string | undefined;
  graphMessage?: string | undefined;
  /** Codes of error.details[] (e.g. NoBackingApplicationObject). */
  graphDetails?: string[] | undefined;
  requestId?: string | undefined;
  retryAfter?: string | null | undefined;
}

/**
 * Graph's two answers to a service principal create whose app a replica does not know yet: 400
 * NoBackingApplicationObject and 403 "…backing application … must in the local tenant" (sic). The Azure CLI
 * and HashiCorp's msgraph client retry exactly these; neither means a missing permission.
 */
export function isAppNotReplicatedAnswer(f: GraphFailure): boolean {
  const msg = f.graphMessage ?? "";
  if (f.status === 400) {
    return (
      (f.graphDetails ?? []).includes("NoBackingApplicationObject") ||
      /of the service principal does not reference a valid application object/i.test(msg)
    );
  }
  return f.status === 403 && /backing application of the service principal being created must/i.test(msg);
}

/** Whether Graph's 404 message names this object id ("Resource '<id>' does not exist or …"). */
export function notFoundNames(err: EntraError, id: string): boolean {
  return err.code === "GRAPH_NOT_FOUND" && (err.graphMessage ?? "").toLowerCase().includes(id.toLowerCase());
}

/** Maps a failed Graph response to a typed error with an operator-facing message. */
export function errorFromGraph(op: GraphOperation, f: GraphFailure): EntraError {
  const rid = f.requestId ? ` (Graph request-id ${f.requestId})` : "";
  const said = f.graphMessage
    ? `: ${f.graphCode ?? "error"}: ${f.graphMessage}`
    : f.graphCode
      ? `: ${f.graphCode}`
      : "";
  const base = {
    status: f.status,
    graphCode: f.graphCode,
    requestId: f.requestId,
    ...(f.graphMessage !== undefined ? { graphMessage: f.graphMessage } : {}),
    ...(f.graphDetails?.length ? { graphDetails: f.graphDetails } : {}),
  };
  const retryAfterMs = parseRetryAfter(f.retryAfter);
  switch (true) {
    case isAppNotReplicatedAnswer(f):
      // Checked before the plain 400/403 cases: telling an operator to grant a permission the bot already has,
      // or to fix a value, would send them the wrong way.
      return new EntraError({
        ...base,
        code: "GRAPH_NOT_REPLICATED",
        message: `Entra does not know the app yet while trying to ${op.action}${said}${rid}. Right after an app is created this is Entra's replication, not a permission problem; the bot retries`,
      });
    case f.status === 429:
      return new EntraError({
        ...base,
        code: "GRAPH_THROTTLED",
        retryAfterMs,
        message: `Graph throttled the request to ${op.action}${rid}; retry after ${retryAfterMs ?? "a backoff"} ms`,
      });
    case f.status === 503 || f.status === 504 || f.status === 502 || f.status === 500:
      return new EntraError({
        ...base,
        code: "GRAPH_UNAVAILABLE",
        retryAfterMs,
        message: `Graph was unavailable (HTTP ${f.status}) while trying to ${op.action}${said}${rid} (transient: retried with backoff; if attempts ran out, retry the job once Graph is healthy)`,
      });
    case f.status === 401:
      return new EntraError({
        ...base,
        code: "GRAPH_UNAUTHORIZED",
        message: `Graph rejected the bot's access token while trying to ${op.action}${said}${rid}. Check AZURE_TENANT_ID, AZURE_CLIENT_ID and the bot's credential, and that GRAPH_BASE_URL and AZURE_AUTHORITY_HOST are the same cloud`,
      });
    case f.status === 403:
      return new EntraError({
        ...base,
        code: "GRAPH_FORBIDDEN",
        message: `The bot may not ${op.action}${said}${rid}. Grant the bot's app the Microsoft Graph application permission ${op.permission} (with admin consent); for existing apps the bot must also be an owner`,
      });
    case f.status === 400:
      return new EntraError({
        ...base,
        code: "GRAPH_INVALID",
        message: `Graph refused to ${op.action}${said}${rid}. Fix the value named above (policy or project data) and retry`,
      });
    case f.status === 404:
      return new EntraError({
        ...base,
        code: "GRAPH_NOT_FOUND",
        message: `Graph found no such object while trying to ${op.action}${said}${rid}`,
      });
    case f.status === 409 || f.status === 412:
      return new EntraError({
        ...base,
        code: "GRAPH_CONFLICT",
        message: `Graph reported a conflict while trying to ${op.action}${said}${rid} (transient: retried with backoff; if attempts ran out, retry the job once Graph is healthy)`,
      });
    case f.status >= 500:
      return new EntraError({
        ...base,
        code: "GRAPH_UNAVAILABLE",
        retryAfterMs,
        message: `Graph failed (HTTP ${f.status}) while trying to ${op.action}${said}${rid} (transient: retried with backoff; if attempts ran out, retry the job once Graph is healthy)`,
      });
    default:
      return new EntraError({
        ...base,
        code: "GRAPH_INVALID",
        message: `Graph answered HTTP ${f.status} while trying to ${op.action}${said}${rid}`,
      });
  }
}
