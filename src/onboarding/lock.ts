import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { EntraError } from "../entra/errors.ts";

export interface LockOptions {
  /** Lease length; renewed every leaseMs/3 while fn runs, so a crashed holder frees the key after this. */
  leaseMs?: number;
  /** How long to wait for a busy lock before giving up with a retryable LOCK_TIMEOUT. */
  waitMs?: number;
  /** Poll interval while waiting. */
  pollMs?: number;
}

// Compare-and-delete / compare-and-extend: only the token holder may release or renew.
const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

/** Lock key for one identity: two jobs for the same (project, env) must never both create an app. */
export function identityLockKey(keyPrefix: string, projectId: number, environment: string): string {
  return `${keyPrefix}:lock:identity:${projectId}:${encodeURIComponent(environment)}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs fn while holding a Redis lease (SET NX PX + random token). The signal passed to fn aborts if the lease
 * is lost (renewal found another token), so long work can stop writing; withLock then throws LOCK_LOST.
 */
export async function withLock<T>(
  redis: Redis,
  key: string,
  fn: (signal: AbortSignal) => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const leaseMs = opts.leaseMs ?? 30_000;
  const waitMs = opts.waitMs ?? 60_000;
  const pollMs = opts.pollMs ?? 50;
  const token = randomUUID();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const ok = await redis.set(key, token, "PX", leaseMs, "NX");
    if (ok === "OK") break;
    if (Date.now() >= deadline) {
      throw new EntraError({
        code: "LOCK_TIMEOUT",
        message: `another job is still working on ${key} after ${waitMs} ms (transient: retried with backoff)`,
      });
    }
    // Jitter keeps many waiters from polling in lockstep.
    await sleep(pollMs + Math.floor(Math.random() * pollMs));
  }

  const controller = new AbortController();
  const timer = setInterval(
    () => {
      redis.eval(RENEW, 1, key, token, String(leaseMs)).then(
        (r) => {
          if (r !== 1) controller.abort(new Error("lock lost"));
        },
        () => {
          /* a failed renewal is retried on the next tick; the lease still covers us until then */
        },
      );
    },
    Math.max(10, Math.floor(leaseMs / 3)),
  );
  timer.unref?.();
  try {
    const result = await fn(controller.signal);
    if (controller.signal.aborted) {
      throw new EntraError({
        code: "LOCK_LOST",
        message: `the lease on ${key} expired while working; the job will run again`,
      });
    }
    return result;
  } finally {
    clearInterval(timer);
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  }
}
