/** Shapes shared by the Graph dispatcher, $batch and the HTTP layer. */

export interface GraphResponse {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

/** Thrown inside handlers; turned into Graph's error envelope at the edge. */
export class GraphFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** Graph's innerError date: seconds precision, no zone designator (fixtures/graph/error-*.json). */
export function innerErrorDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

export const GRAPH_JSON =
  "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

export function graphErrorResponse(
  failure: { status: number; code: string; message: string; headers?: Record<string, string> },
  ids: { requestId: string; clientRequestId: string },
  nowMs: number,
): GraphResponse {
  return {
    status: failure.status,
    headers: { "Content-Type": "application/json", ...(failure.headers ?? {}) },
    body: {
      error: {
        code: failure.code,
        message: failure.message,
        innerError: {
          date: innerErrorDate(nowMs),
          "request-id": ids.requestId,
          "client-request-id": ids.clientRequestId,
        },
      },
    },
  };
}

/** 429 body exactly as fixtures/graph/error-throttled-429.json (note the different innerError shape). */
export function throttledResponse(
  retryAfterSeconds: number,
  ids: { requestId: string; clientRequestId: string },
  nowMs: number,
): GraphResponse {
  return {
    status: 429,
    headers: { "Content-Type": "application/json", "Retry-After": formatRetryAfter(retryAfterSeconds) },
    body: {
      error: {
        code: "TooManyRequests",
        innerError: {
          code: "429",
          date: innerErrorDate(nowMs),
          message: "Please retry after",
          "request-id": ids.requestId,
          status: "429",
        },
        message: "Please retry again later.",
      },
    },
  };
}

/** Graph sends fractional seconds ("2.128"); keep at most 3 decimals and never 0. */
export function formatRetryAfter(seconds: number): string {
  const rounded = Math.max(0.001, Math.ceil(seconds * 1000) / 1000);
  return String(Number(rounded.toFixed(3)));
}

export const NOT_FOUND = (id: string): GraphFailure =>
  new GraphFailure(
    404,
    "Request_ResourceNotFound",
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  );

export const INSUFFICIENT_PRIVILEGES = (): GraphFailure =>
  new GraphFailure(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");

export const INVALID_VALUE = (property: string, resource: string): GraphFailure =>
  new GraphFailure(
    400,
    "Request_BadRequest",
    `Invalid value specified for property '${property}' of resource '${resource}'.`,
  );
