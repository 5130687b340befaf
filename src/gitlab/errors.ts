/**
 * Typed failures of GitLab API calls. Workers decide retry-or-fail from `retryable` alone (BullMQ is the
 * only retry layer), so every failure the GitLab client sees is mapped here, once.
 */
export type GitLabErrorCode =
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "validation"
  | "rate_limited"
  | "unavailable"
  | "timeout"
  | "network"
  | "bad_response";

export interface GitLabErrorInit {
  code: GitLabErrorCode;
  message: string;
  status?: number;
  retryable?: boolean;
  retryAfterMs?: number;
  /** e.g. "PUT projects/42/variables/AZURE_CLIENT_ID" (never carries query strings or tokens). */
  operation?: string;
  /** GitLab's `message`/`error` field, as returned (string or validation-error object). */
  gitlabMessage?: unknown;
}

export class GitLabError extends Error {
  readonly code: GitLabErrorCode;
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly operation: string | undefined;
  readonly gitlabMessage: unknown;

  constructor(init: GitLabErrorInit) {
    super(init.message);
    this.name = "GitLabError";
    this.code = init.code;
    this.status = init.status;
    this.retryable = init.retryable ?? isRetryableCode(init.code);
    this.retryAfterMs = init.retryAfterMs;
    this.operation = init.operation;
    this.gitlabMessage = init.gitlabMessage;
  }

  /** Safe for logs and job failure reasons: no request objects, headers or tokens. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      status: this.status,
      retryable: this.retryable,
      retryAfterMs: this.retryAfterMs,
      operation: this.operation,
      message: this.message,
    };
  }
}

export function isGitLabError(err: unknown): err is GitLabError {
  return err instanceof GitLabError;
}

function isRetryableCode(code: GitLabErrorCode): boolean {
  return code === "rate_limited" || code === "unavailable" || code === "timeout" || code === "network";
}

export function codeForStatus(status: number): GitLabErrorCode {
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 429) return "rate_limited";
  if (status === 408) return "timeout";
  if (status >= 500) return "unavailable";
  return "validation";
}

/**
 * Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). Returns milliseconds, or
 * undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const trimmed = value.trim();
  if (trimmed === "") return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/**
 * How long GitLab asks the client to wait, from a response's headers:
 * 1. `Retry-After` (RFC 9110), which Rack::Attack throttles send;
 * 2. else `RateLimit-ResetTime` (an HTTP date) or `RateLimit-Reset`, which GitLab's docs call a Unix time but
 *    older GitLab and GitLab.com's HAProxy sent as seconds to wait (gitlab-org/gitlab!50833): a value above
 *    10^9 is read as a Unix time, a smaller one as seconds;
 * 3. else undefined: GitLab's application rate limits (ApplicationRateLimiter: note and issue creation, …)
 *    answer 429 through `render_api_error!` without any of these, and the caller backs off exponentially.
 */
export function rateLimitDelayMs(
  headers: { get(name: string): string | null },
  now = Date.now(),
): number | undefined {
  const retryAfter = parseRetryAfter(headers.get("retry-after"), now);
  if (retryAfter !== undefined) return retryAfter;
  const resetTime = headers.get("ratelimit-resettime");
  if (resetTime) {
    const at = Date.parse(resetTime);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get("ratelimit-reset")?.trim();
  if (reset && /^\d+$/.test(reset)) {
    const n = Number(reset);
    return n > 1e9 ? Math.max(0, n * 1000 - now) : n * 1000;
  }
  return undefined;
}

/** GitLab puts either a string or a {field: [messages]} object under `message` (or `error`). */
export function describeGitLabMessage(message: unknown): string {
  if (message == null) return "";
  if (typeof message === "string") return message;
  if (typeof message === "object") {
    const parts: string[] = [];
    for (const [field, value] of Object.entries(message as Record<string, unknown>)) {
      const list = Array.isArray(value) ? value.map(String).join(", ") : String(value);
      parts.push(`${field}: ${list}`);
    }
    return parts.join("; ");
  }
  return String(message);
}

const HINTS: Partial<Record<GitLabErrorCode, string>> = {
  unauthorized: "check that GITLAB_TOKEN is valid, not expired or revoked, and has the api scope",
  forbidden: "the bot user lacks permission here; give it the Maintainer role on the project or its group",
  not_found:
    "the project or object does not exist, or the bot user is not a member (GitLab answers 404 to non-members)",
  rate_limited: "GitLab is rate limiting the bot; the job will be retried after the advertised delay",
  unavailable: "GitLab is unavailable or failing; the job will be retried",
  timeout: "GitLab did not answer in time; the job will be retried",
  network: "GitLab could not be reached; check GITLAB_URL, DNS and TLS trust; the job will be retried",
};

export function hintFor(code: GitLabErrorCode): string | undefined {
  return HINTS[code];
}

/** Last line of defence: whatever is put in a message, a secret never leaves it. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= 4) out = out.split(s).join("[REDACTED]");
  }
  return out;
}
