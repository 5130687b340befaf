import { Redis, type RedisOptions } from "ioredis";

/**
 * Connection for producers and readiness checks: a command issued while Redis is down fails after one
 * reconnection attempt (about a second), so the webhook answers 503 well inside GitLab's 10 s timeout and
 * GitLab records a failed delivery instead of a silent loss.
 */
export function createProducerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    ...extra,
  });
}

/** Connection for workers: BullMQ requires maxRetriesPerRequest null for blocking commands. */
export function createWorkerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 500, 5_000),
    ...extra,
  });
}

/** Resolves once the connection is ready, or rejects after timeoutMs with the last error. */
export async function waitForReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => {
      lastError = err;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new Error(`Redis not reachable after ${timeoutMs} ms${lastError ? `: ${lastError.message}` : ""}`),
      );
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("error", onError);
    };
    redis.on("ready", onReady);
    redis.on("error", onError);
  });
}
