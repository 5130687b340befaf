import { type Job, type Queue, UnrecoverableError, Worker } from "bullmq";
import { EntraError } from "../src/entra/errors.ts";
import { GitLabError } from "../src/gitlab/errors.ts";

/** Longest pause one Retry-After may impose on a whole queue; protects against absurd header values. */
const MAX_RATE_LIMIT_MS = 5 * 60_000;
/** First pause after a 429 that says nothing about when to retry (doubling from here, jittered). */
export const DEFAULT_THROTTLE_BASE_MS = 2_000;

/**
 * How long to hold the queue after a 429. The server's own word wins (Retry-After, RateLimit-Reset: see
 * rateLimitDelayMs); without it (GitLab's application rate limits send no header) the pause doubles with
 * each consecutive throttle of this job, with jitter, so a job does not knock once a second for a whole
 * rate-limit window. The throttles are counted from the job itself: a throttled run goes back to the wait
 * list without spending an attempt, but BullMQ still counts it in `attemptsStarted`.
 */
export function throttleDelayMs(
  retryAfterMs: number | undefined,
  job: Pick<Job, "attemptsStarted" | "attemptsMade"> | undefined,
  baseMs = DEFAULT_THROTTLE_BASE_MS,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(Math.max(retryAfterMs, 100), MAX_RATE_LIMIT_MS);
  const earlierThrottles = Math.max(0, (job?.attemptsStarted ?? 1) - 1 - (job?.attemptsMade ?? 0));
  const ceiling = Math.min(baseMs * 2 ** Math.min(earlierThrottles, 30), MAX_RATE_LIMIT_MS);
  return Math.max(100, Math.round(ceiling * (0.5 + random() * 0.5)));
}

/**
 * The one retry layer. Throttling (429) pauses the whole queue through BullMQ's rate limiter and puts the job
 * back without spending an attempt: one throttled tenant slows the queue instead of burning retries.
 * Permanent failures stop at once with the operator-facing message; everything else is rethrown for
 * BullMQ's exponential backoff.
 */
export async function settleFailure(
  err: unknown,
  queue: Queue,
  job?: Pick<Job, "attemptsStarted" | "attemptsMade">,
  throttleBaseMs?: number,
): Promise<never> {
  const throttled =
    (err instanceof EntraError && err.code === "GRAPH_THROTTLED") ||
    (err instanceof GitLabError && err.status === 429);
  if (throttled) {
    await queue.rateLimit(throttleDelayMs(err.retryAfterMs, job, throttleBaseMs));
    throw Worker.RateLimitError();
  }
  if (err instanceof EntraError && err.permanent) {
    throw new UnrecoverableError(
      `${err.code}: ${err.message}${err.requestId ? ` (Graph request-id ${err.requestId})` : ""}`,
    );
  }
  if (err instanceof GitLabError && !err.retryable) {
    throw new UnrecoverableError(`GITLAB_${err.code.toUpperCase()}: ${err.message}`);
  }
  throw err;
}
