/** Fault injection for the Entra/Graph simulator: failures, outages, throttling and directory replication lag. */

export interface FailRule {
  remaining: number;
  status: number;
  retryAfterSeconds?: number;
  code?: string;
  pathIncludes?: string;
  /** Graph did the work, then the answer was lost: the request takes effect and the client sees `status`. */
  committed?: boolean;
}

/**
 * How long one replication lag lasts for one object: its first `times` occurrences, and/or while it is
 * younger than `forMs`. Counting occurrences makes tests deterministic without waiting for time.
 */
export interface LagRule {
  times?: number;
  forMs?: number;
}

/** The two answers real Graph gives to a service principal create right after its app was created. */
export type SpCreateAnswer = "no-backing-application" | "not-local-tenant";

/**
 * Entra's replication as Graph really answers right after a create (reference/entra.md §9). Unlike
 * `replicationDelayMs`, reads by id keep working: only the answers below lag.
 */
export interface ReplicationFaults {
  /** POST /servicePrincipals or the upsert, for an app: 400 NoBackingApplicationObject or 403 "…must in the local tenant". */
  spCreate: (LagRule & { answer: SpCreateAnswer }) | null;
  /** POST /groups/{id}/members/$ref for a service principal: 404 Request_ResourceNotFound naming it. */
  memberAdd: LagRule | null;
  /** Collection reads ($filter lists, ownedObjects) leave the new object out; `times` counts reads it was missed by. */
  staleLists: LagRule | null;
}

type LagKind = keyof ReplicationFaults;

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
  replication: ReplicationFaults = { spCreate: null, memberAdd: null, staleLists: null };

  /** Occurrences of each lag so far, per simulated object (apps, service principals). */
  #lagSeen = new WeakMap<object, Map<LagKind, number>>();
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
    opts: { retryAfterSeconds?: number; code?: string; pathIncludes?: string; committed?: boolean } = {},
  ): void {
    if (count > 0) this.rules.push({ remaining: count, status, ...opts });
  }

  /** Consumes and returns the first injected failure that applies to this path, if any. */
  takeFailure(path: string, onlyTargeted = false, committedToo = true): FailRule | undefined {
    const rule = this.rules.find(
      (r) =>
        r.remaining > 0 &&
        (committedToo || !r.committed) &&
        (r.pathIncludes === undefined ? !onlyTargeted : path.includes(r.pathIncludes)),
    );
    if (!rule) return undefined;
    rule.remaining--;
    this.rules = this.rules.filter((r) => r.remaining > 0);
    return rule;
  }

  /**
   * Whether `obj` still lags for `kind` now; an answer that lags counts as one occurrence. Objects the rule
   * does not cover (no rule, count used up and old enough) never lag.
   */
  lagging(kind: LagKind, obj: { createdAtMs: number }, nowMs = Date.now()): boolean {
    const rule = this.replication[kind];
    if (!rule) return false;
    const seen = this.#lagSeen.get(obj) ?? new Map<LagKind, number>();
    const count = seen.get(kind) ?? 0;
    const byCount = rule.times !== undefined && count < rule.times;
    const byTime = rule.forMs !== undefined && nowMs - obj.createdAtMs < rule.forMs;
    if (!byCount && !byTime) return false;
    seen.set(kind, count + 1);
    this.#lagSeen.set(obj, seen);
    return true;
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
    this.replication = { spCreate: null, memberAdd: null, staleLists: null };
    this.#lagSeen = new WeakMap();
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
