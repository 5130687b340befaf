import { Redis, type RedisOptions } from "ioredis";

/** Redis Sentinel: the sentinels to ask and the name of the primary they monitor. */
export interface SentinelTarget {
  sentinels: Array<{ host: string; port: number }>;
  name: string;
}

/**
 * With Sentinel, REDIS_URL still carries the credentials, the database and TLS (rediss://); the sentinels
 * tell ioredis where the current primary is, and it reconnects to the new one after a failover.
 */
function connect(url: string, options: RedisOptions, sentinel?: SentinelTarget): Redis {
  if (!sentinel) return new Redis(url, options);
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, "") || 0);
  return new Redis({
    sentinels: sentinel.sentinels,
    name: sentinel.name,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password
      ? { password: decodeURIComponent(u.password), sentinelPassword: decodeURIComponent(u.password) }
      : {}),
    ...(Number.isInteger(db) ? { db } : {}),
    ...(u.protocol === "rediss:" ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    ...options,
  });
}

/**
 * Connection for producers and readiness checks: a command issued while Redis is down fails after one
 * reconnection attempt (about a second), so the webhook answers 503 well inside GitLab's 10 s timeout and
 * GitLab records a failed delivery instead of a silent loss.
 */
export function createProducerConnection(
  url: string,
  extra: RedisOptions = {},
  sentinel?: SentinelTarget,
): Redis {
  return connect(
    url,
    {
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      ...extra,
    },
    sentinel,
  );
}

/** Connection for workers: BullMQ requires maxRetriesPerRequest null for blocking commands. */
export function createWorkerConnection(
  url: string,
  extra: RedisOptions = {},
  sentinel?: SentinelTarget,
): Redis {
  return connect(
    url,
    {
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(times * 500, 5_000),
      ...extra,
    },
    sentinel,
  );
}
