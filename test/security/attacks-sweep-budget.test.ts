import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { createRedisPacer } from "../../src/entra/pacer.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * Drift's bulk sweep reads on the spare half of the shared Graph budget (pacer.ts acquireSpare). Anyone who can
 * make the bot onboard (new projects, new review environments) can keep writes coming at the full rate; drift
 * is the safety net that takes credentials off freed paths, so it must not be starved into never reading.
 * The bucket's clock is injected and waits step it: nothing here sleeps.
 */
let redis: Redis;
afterAll(() => redis?.disconnect());

describe("the sweep's share of the Graph budget", () => {
  const key = uniquePrefix("attack-pacer");
  redis = new Redis(TEST_REDIS_URL);
  afterAll(async () => {
    await deletePrefix(key);
  });

  it("is not starved by writes that keep the bucket empty (an attacker onboarding environments at full rate)", async () => {
    const rate = 10;
    const burst = 10;
    let now = 1_700_000_000_000;
    let sleeps = 0;
    // The writers reserve future slots (they queue; their own waits are not slept here).
    const writers = createRedisPacer(redis, {
      key,
      ratePerSecond: rate,
      burst,
      now: () => now,
      sleep: async () => {},
    });
    // Whenever the sweep sleeps, writes arriving at the full rate take every token that came back meanwhile.
    const sweep = createRedisPacer(redis, {
      key,
      ratePerSecond: rate,
      burst,
      now: () => now,
      sleep: async (ms) => {
        sleeps += 1;
        if (sleeps > 500) throw new Error("the sweep's read never got a token");
        now += ms;
        for (let i = 0; i < Math.ceil((ms * rate) / 1000) + 1; i++) await writers.acquire();
      },
    });
    for (let i = 0; i < 10; i++) await writers.acquire();
    await sweep.acquireSpare();
    expect(sleeps).toBeLessThanOrEqual(20);
  });
});
