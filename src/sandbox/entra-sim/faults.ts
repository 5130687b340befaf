/** Fault injection for the Entra/Graph simulator: failures, outages, throttling and directory replication lag. */

export interface FailRule {
  remaining: number;
  status: number;
  retryAfterSeconds?: number;
  code?: string;
  pathIncludes?: string;
}

export interface ThrottleSettings {
  writesPerSecond: number;
}

export class SimFaults {
  /** Added to every Graph call. */
  latencyMs = 0;
  /** Every Graph call answers 503 with Retry-After while true. */
  down = false;
  /** A new SP/app is invisible to GETs and group $ref adds for this long (404 Request_ResourceNotFound). */
  replicationDelayMs = 0;
  /**
   * A new or changed FIC is not used by the token endpoint for this long (Entra: "a token request made several
   * minutes after configuring the federated identity credential may fail with AADSTS70021").
   */
  ficPropagationDelayMs = 0;
  /** Retry-After (seconds) sent while `down`. */
  downRetryAfterSeconds = 1;
  rules: FailRule[] = [];

  #throttle: ThrottleSettings | null = null;
  #tokens = 0;
  #refilledAt = 0;

  get throttle(): ThrottleSettings | null {
    return this.#throttle;
  }
  /** Token bucket over writes: burst of one second's worth, refilled continuously; beyond -> 429. */
  set throttle(value: ThrottleSettings | null) {
    this.#throttle = value && value.writesPerSecond > 0 ? { writesPerSecond: value.writesPerSecond } : null;
    this.#tokens = this.#throttle ? Math.max(1, this.#throttle.writesPerSecond) : 0;
    this.#refilledAt = Date.now();
  }

  /** The next `count` Graph calls (optionally only those whose path contains `pathIncludes`) fail with `status`. */
  failNext(
    count: number,
    status: number,
    opts: { retryAfterSeconds?: number; code?: string; pathIncludes?: string } = {},
  ): void {
    if (count > 0) this.rules.push({ remaining: count, status, ...opts });
  }

  /** Consumes and returns the first injected failure that applies to this path, if any. */
  takeFailure(path: string, onlyTargeted = false): FailRule | undefined {
    const rule = this.rules.find(
      (r) =>
        r.remaining > 0 && (r.pathIncludes === undefined ? !onlyTargeted : path.includes(r.pathIncludes)),
    );
    if (!rule) return undefined;
    rule.remaining--;
    this.rules = this.rules.filter((r) => r.remaining > 0);
    return rule;
  }

  /** Takes one write token; when none is left, says how long until one is (fractional seconds). */
  takeWriteToken(nowMs = Date.now()): { ok: true } | { ok: false; retryAfterSeconds: number } {
    const t = this.#throttle;
    if (!t) return { ok: true };
    const capacity = Math.max(1, t.writesPerSecond);
    this.#tokens = Math.min(capacity, this.#tokens + ((nowMs - this.#refilledAt) / 1000) * t.writesPerSecond);
    this.#refilledAt = nowMs;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: (1 - this.#tokens) / t.writesPerSecond };
  }

  reset(): void {
    this.latencyMs = 0;
    this.down = false;
    this.replicationDelayMs = 0;
    this.ficPropagationDelayMs = 0;
    this.downRetryAfterSeconds = 1;
    this.rules = [];
    this.throttle = null;
  }
}

/** Graph's error code for an injected status when the test did not name one. */
export function defaultCodeFor(status: number): string {
  switch (status) {
    case 400:
      return "Request_BadRequest";
    case 401:
      return "InvalidAuthenticationToken";
    case 403:
      return "Authorization_RequestDenied";
    case 404:
      return "Request_ResourceNotFound";
    case 409:
      return "Request_MultipleObjectsWithSameKeyValue";
    case 429:
      return "TooManyRequests";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "GatewayTimeout";
    default:
      return status >= 500 ? "InternalServerError" : "Request_BadRequest";
  }
}
