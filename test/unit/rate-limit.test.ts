import { describe, expect, it } from "vitest";
import { rateLimitDelayMs } from "../../src/gitlab/errors.ts";
import { throttleDelayMs } from "../../workers/failure.ts";

const headers = (h: Record<string, string>) => new Headers(h);
const NOW = Date.parse("2026-11-26T12:00:00Z");

describe("how long GitLab asks us to wait after a 429", () => {
  it("Retry-After first, in seconds or as a date", () => {
    expect(rateLimitDelayMs(headers({ "retry-after": "7", "ratelimit-reset": "99" }), NOW)).toBe(7000);
    expect(rateLimitDelayMs(headers({ "retry-after": "Thu, 26 Nov 2026 12:00:30 GMT" }), NOW)).toBe(30_000);
  });

  it("else RateLimit-ResetTime, else RateLimit-Reset as a Unix time or (old GitLab) as seconds", () => {
    expect(rateLimitDelayMs(headers({ "ratelimit-resettime": "Thu, 26 Nov 2026 12:01:00 GMT" }), NOW)).toBe(
      60_000,
    );
    expect(rateLimitDelayMs(headers({ "ratelimit-reset": String(NOW / 1000 + 42) }), NOW)).toBe(42_000);
    expect(rateLimitDelayMs(headers({ "ratelimit-reset": "1800" }), NOW)).toBe(1_800_000);
    expect(rateLimitDelayMs(headers({ "ratelimit-reset": String(NOW / 1000 - 5) }), NOW)).toBe(0);
  });

  it("nothing when GitLab says nothing (application rate limits)", () => {
    expect(rateLimitDelayMs(headers({}), NOW)).toBeUndefined();
    expect(rateLimitDelayMs(headers({ "ratelimit-reset": "soon" }), NOW)).toBeUndefined();
  });
});

describe("the pause after a 429", () => {
  const job = (started: number, made = 0) => ({ attemptsStarted: started, attemptsMade: made });

  it("honours the server's delay, bounded to 100 ms .. 5 min", () => {
    expect(throttleDelayMs(2500, job(1))).toBe(2500);
    expect(throttleDelayMs(0, job(1))).toBe(100);
    expect(throttleDelayMs(3_600_000, job(1))).toBe(300_000);
  });

  it("without one, doubles with each consecutive throttle of the job, jittered between half and full", () => {
    const low = (n: number) => throttleDelayMs(undefined, job(n), 1000, () => 0);
    const high = (n: number) => throttleDelayMs(undefined, job(n), 1000, () => 0.999999);
    expect([1, 2, 3, 4, 5].map(low)).toEqual([500, 1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4, 5].map(high)).toEqual([1000, 2000, 4000, 8000, 16000]);
    // Failed attempts (attemptsMade) are not throttles: they have BullMQ's own backoff.
    expect(low(4)).toBeGreaterThan(throttleDelayMs(undefined, job(4, 3), 1000, () => 0));
    expect(throttleDelayMs(undefined, job(60), 1000, () => 0.999999)).toBe(300_000);
  });
});
