import { type Queue, UnrecoverableError, Worker } from "bullmq";
import { EntraError } from "../src/entra/errors.ts";
import { GitLabError } from "../src/gitlab/errors.ts";

/** Longest pause one Retry-After may impose on a whole queue; protects against absurd header values. */
const MAX_RATE_LIMIT_MS = 5 * 60_000;

/**
 * The one retry layer. Throttling (429 with Retry-After) pauses the whole queue through BullMQ's rate
 * limiter and puts the job back without spending an attempt: one throttled tenant slows the queue instead of
 * burning retries. Permanent failures stop at once with the operator-facing message; everything else is
 * rethrown for BullMQ's exponential backoff.
 */
export async function settleFailure(err: unknown, queue: Queue): Promise<never> {
  const throttled =
    (err instanceof EntraError && err.code === "GRAPH_THROTTLED") ||
    (err instanceof GitLabError && err.status === 429);
  if (throttled) {
    const ms = Math.min(Math.max(err.retryAfterMs ?? 1_000, 100), MAX_RATE_LIMIT_MS);
    await queue.rateLimit(ms);
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
