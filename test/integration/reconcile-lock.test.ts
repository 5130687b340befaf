import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntraError } from "../../src/entra/errors.ts";
import { identityLockKey, withLock } from "../../src/onboarding/lock.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const prefix = uniquePrefix("lock");
let redis: Redis;

beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await deletePrefix(prefix);
  await redis.quit();
});

describe("withLock", () => {
  it("serialises holders of one key: never two inside at once", async () => {
    const key = identityLockKey(prefix, 1, "production");
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        withLock(
          redis,
          key,
          async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            // Yield to the event loop while inside: the others get every chance to (wrongly) enter.
            await new Promise((r) => setImmediate(r));
            order.push(i);
            inside--;
          },
          { leaseMs: 2000, waitMs: 10_000, pollMs: 5 },
        ),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(await redis.exists(key)).toBe(0);
  });

  it("does not block other keys", async () => {
    const a = identityLockKey(prefix, 2, "production");
    const b = identityLockKey(prefix, 2, "staging");
    const got = await withLock(redis, a, () => withLock(redis, b, async () => "both", { waitMs: 100 }), {
      waitMs: 100,
    });
    expect(got).toBe("both");
  });

  it("times out with a retryable typed error while another holder has the key", async () => {
    const key = identityLockKey(prefix, 3, "production");
    let release!: () => void;
    const inside = Promise.withResolvers<void>();
    // A long lease: the waiter's 150 ms run out long before it could expire, however slow the machine.
    const held = withLock(
      redis,
      key,
      () => {
        inside.resolve();
        return new Promise<void>((r) => (release = r));
      },
      { leaseMs: 30_000 },
    );
    await inside.promise;
    const err = await withLock(redis, key, async () => "never", { waitMs: 150, pollMs: 10 }).catch((e) => e);
    expect(err).toBeInstanceOf(EntraError);
    expect((err as EntraError).code).toBe("LOCK_TIMEOUT");
    expect((err as EntraError).permanent).toBe(false);
    release();
    await held;
    expect(await redis.exists(key)).toBe(0);
  });

  it("a holder renews its lease while it works", async () => {
    const key = identityLockKey(prefix, 6, "production");
    const leaseMs = 6_000;
    await withLock(
      redis,
      key,
      async () => {
        // Time passes (the TTL falls), then a renewal (every leaseMs/3) pushes it back up: two events.
        let low = Number.POSITIVE_INFINITY;
        await expect
          .poll(
            async () => {
              low = Math.min(low, await redis.pttl(key));
              return low;
            },
            { timeout: 20_000, interval: 50 },
          )
          .toBeLessThan(leaseMs - 500);
        await expect
          .poll(() => redis.pttl(key), { timeout: 20_000, interval: 50 })
          .toBeGreaterThan(low + 400);
      },
      { leaseMs },
    );
  });

  it("releases only its own token and reports a lost lease", async () => {
    const key = identityLockKey(prefix, 4, "production");
    const err = await withLock(
      redis,
      key,
      async (signal) => {
        await redis.set(key, "someone-else"); // simulate expiry + takeover
        await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
      },
      { leaseMs: 30 },
    ).catch((e) => e);
    expect((err as EntraError).code).toBe("LOCK_LOST");
    expect(await redis.get(key)).toBe("someone-else");
  });

  it("frees the key when fn throws", async () => {
    const key = identityLockKey(prefix, 5, "production");
    await expect(withLock(redis, key, async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await redis.exists(key)).toBe(0);
  });
});
