import type { Redis } from "ioredis";

/**
 * Client-side pacing of Graph writes: one token bucket in Redis shared by every worker process, so N workers
 * together stay under the tenant's write budget instead of each discovering it through 429s. Reads are not
 * paced (Entra throttles them far more generously).
 */
export interface GraphPacer {
  /** Resolves when this caller may send one write. */
  acquire(): Promise<void>;
  /**
   * Low priority (drift's bulk sweep): takes `cost` tokens (default 1; a $batch of reads costs its items over
   * GRAPH_READS_PER_WRITE) only while the bucket keeps at least half its burst
   * afterwards, and otherwise waits for the refill without queueing ahead of anyone. Onboarding writes, which
   * take tokens in arrival order, therefore always find the other half: a sweep never starves onboarding, and
   * together they never exceed the one shared rate. Writes arriving at the full rate keep the bucket below
   * half for as long as they last (anyone who can trigger onboarding can do that on purpose): after waiting
   * the time a full burst takes to refill, the caller queues like a write (acquire), so drift, the safety net
   * for freed paths, still gets a fair slot instead of none.
   */
  acquireSpare(cost?: number): Promise<void>;
}

export interface RedisPacerOptions {
  /** Redis key of the bucket, e.g. `${queuePrefix}:graph-writes`. */
  key: string;
  /** Sustained writes per second across all workers. */
  ratePerSecond: number;
  /** Writes allowed back to back after a quiet spell. Default: one second's worth (at least 1). */
  burst?: number;
  /**
   * Clock in ms for the bucket instead of Redis's TIME, and the wait; for tests that step time rather than
   * race it. Production leaves both unset: every process then shares Redis's clock.
   */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Refill by elapsed time, take one token, return how long the caller must wait (ms) for it. Tokens may go
 * negative: a caller reserves a future slot and sleeps until it, so waiting callers are served in arrival
 * order and nobody polls. The clock is Redis's own (TIME), the same for every process.
 * KEYS[1] bucket; ARGV[1] tokens per second; ARGV[2] burst; ARGV[3] clock in µs ("" = Redis TIME; tests);
 * ARGV[4] optional reserve: take only if at least this many tokens remain after the take, else take nothing
 * and return how long until that holds (the low-priority caller sleeps and asks again).
 * Returns wait in ms (0 = go now, token taken).
 */
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local cost = tonumber(ARGV[5]) or 1
if now == nil then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local s = redis.call("HMGET", KEYS[1], "tokens", "at")
local tokens = tonumber(s[1])
local at = tonumber(s[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
if reserve ~= nil and tokens - cost < reserve then
  redis.call("HSET", KEYS[1], "tokens", string.format("%.6f", tokens), "at", string.format("%.0f", at))
  redis.call("PEXPIRE", KEYS[1], math.ceil(math.max(0, burst - tokens) * 1000 / rate) + 1000)
  return math.max(1, math.ceil((reserve + cost - tokens) * 1000 / rate))
end
tokens = tokens - cost
redis.call("HSET", KEYS[1], "tokens", string.format("%.6f", tokens), "at", string.format("%.0f", at))
-- Once full again the bucket equals a missing key, so let it expire then.
redis.call("PEXPIRE", KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000 / rate)
`;

const COMMAND = "gebGraphPacerTake";

type WithTake = Redis & {
  [COMMAND](
    key: string,
    rate: string,
    burst: string,
    nowMicros: string,
    reserve?: string,
    cost?: string,
  ): Promise<number>;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A pacer over Redis (one round trip per write); `ratePerSecond` <= 0 means no pacing. */
export function createRedisPacer(redis: Redis, opts: RedisPacerOptions): GraphPacer {
  if (!(opts.ratePerSecond > 0)) return { acquire: async () => {}, acquireSpare: async () => {} };
  // A take never exceeds the burst, or it could never be granted.
  const clampCost = (cost: number) =>
    String(Math.min(Math.max(cost, 0.001), Math.max(1, opts.burst ?? opts.ratePerSecond)));
  const rate = String(opts.ratePerSecond);
  const burst = String(Math.max(1, opts.burst ?? opts.ratePerSecond));
  // defineCommand caches the script by SHA (EVALSHA, falling back to EVAL once per connection).
  if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: TAKE });
  const r = redis as WithTake;
  const wait = opts.sleep ?? sleep;
  const clock = opts.now;
  const now = () => (clock ? String(Math.round(clock() * 1000)) : "");
  const reserve = String(Number(burst) / 2);
  // The longest a low-priority caller defers to writes before it queues like one: a full burst's refill.
  const maxSpareWaitMs = (Number(burst) * 1000) / opts.ratePerSecond;
  const take = async (cost = "1") => {
    const waitMs = Number(await r[COMMAND](opts.key, rate, burst, now(), "", cost));
    if (waitMs > 0) await wait(waitMs);
  };
  return {
    acquire: () => take(),
    async acquireSpare(cost = 1) {
      const c = clampCost(cost);
      let waited = 0;
      while (waited < maxSpareWaitMs) {
        const waitMs = Number(await r[COMMAND](opts.key, rate, burst, now(), reserve, c));
        if (waitMs === 0) return;
        await wait(waitMs);
        waited += waitMs;
      }
      await take(c);
    },
  };
}
