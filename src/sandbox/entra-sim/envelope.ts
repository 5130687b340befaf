/** Shapes shared by the Graph dispatcher, $batch and the HTTP layer. */

export interface GraphResponse {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

/** Thrown inside handlers; turned into Graph's error envelope at the edge. */
export interface GraphErrorDetail {
  code: string;
  message: string;
  target?: string;
}

export class GraphFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  readonly details: GraphErrorDetail[] | undefined;
  constructor(
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
    details?: GraphErrorDetail[],
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
    this.details = details;
  }
}

/** Graph's innerError date: seconds precision, no zone designator (fixtures/graph/error-*.json). */
export function innerErrorDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

export const GRAPH_JSON =
  "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

export function graphErrorResponse(
  failure: {
    status: number;
    code: string;
    message: string;
    headers?: Record<string, string>;
    details?: GraphErrorDetail[] | undefined;
  },
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
        ...(failure.details ? { details: failure.details } : {}),
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

/**
 * `POST /servicePrincipals` for an app this replica does not know yet (fixtures/graph/error-sp-no-backing-application.json):
 * the Azure CLI and HashiCorp's msgraph client retry this message ("ErrorServicePrincipalInvalidAppId").
 */
export const NO_BACKING_APPLICATION = (appId: string): GraphFailure => {
  const message = `The appId '${appId}' of the service principal does not reference a valid application object.`;
  return new GraphFailure(400, "Request_BadRequest", message, {}, [
    { code: "NoBackingApplicationObject", message, target: "appId" },
  ]);
};

/**
 * The other answer to the same race for an app-only caller with Application.ReadWrite.OwnedBy
 * (fixtures/graph/error-sp-backing-application-not-local.json; "must in", sic, is Microsoft's wording).
 */
export const BACKING_APPLICATION_NOT_LOCAL = (): GraphFailure =>
  new GraphFailure(
    403,
    "Authorization_RequestDenied",
    "When using this permission, the backing application of the service principal being created must in the local tenant",
  );
