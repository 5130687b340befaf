import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenCredential } from "../../src/entra/credential.ts";
import { createGraphApi } from "../../src/entra/graph-client.ts";
import { createRedisPacer, type GraphPacer } from "../../src/entra/pacer.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

const prefix = uniquePrefix("pacer");
const connections: Redis[] = [];
const connect = () => {
  const r = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  connections.push(r);
  return r;
};

afterAll(async () => {
  await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
  await deletePrefix(prefix);
});

describe("the shared Redis token bucket", () => {
  // The bucket's clock is injected (ms) and waits are recorded instead of slept: the numbers below are exact,
  // however loaded the machine, and nothing here sleeps.
  const frozenAt = (ms: number) => () => ms;

  it("two workers on separate connections share one bucket: every grant gets its own slot, both get a share", async () => {
    const rate = 100;
    const burst = 5;
    const key = `${prefix}:bucket-shared`;
    const waits: number[] = [];
    const record = async (ms: number) => {
      waits.push(ms);
    };
    const T0 = 1_700_000_000_000;
    // Two "worker processes": separate connections, separately built pacers, one key, one (frozen) clock.
    const workers = [connect(), connect()].map((redis) =>
      createRedisPacer(redis, { key, ratePerSecond: rate, burst, now: frozenAt(T0), sleep: record }),
    );
    const grants: number[] = [0, 0];
    let acquired = 0;
    let stop = false;
    // Each worker runs four slots in parallel, as WORKER_CONCURRENCY would.
    const loops = workers.flatMap((pacer, w) =>
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          await pacer.acquire();
          acquired++;
          if (stop) return;
          grants[w] = (grants[w] ?? 0) + 1;
          if ((grants[0] ?? 0) + (grants[1] ?? 0) >= 60) stop = true;
        }
      }),
    );
    await Promise.all(loops);
    expect((grants[0] ?? 0) + (grants[1] ?? 0)).toBe(60);
    // The burst goes at once; every later caller reserved the next free slot, 1/rate (10 ms) after the previous
    // one: no two callers on either connection share a slot, none is skipped.
    const immediate = acquired - waits.length;
    expect(immediate).toBe(burst);
    expect([...waits].sort((a, b) => a - b)).toEqual(
      Array.from({ length: waits.length }, (_, i) => (i + 1) * 10),
    );
    // Neither worker is starved: reservations are served in arrival order across processes.
    expect(Math.min(grants[0] ?? 0, grants[1] ?? 0)).toBeGreaterThanOrEqual(15);
  });

  it("after a quiet spell a burst is granted without waiting, then callers queue for their slots", async () => {
    const redis = connect();
    const key = `${prefix}:bucket-burst`;
    let now = 1_700_000_000_000;
    let waits: number[] = [];
    const pacer = createRedisPacer(redis, {
      key,
      ratePerSecond: 10,
      burst: 3,
      now: () => now,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    const take = async () => {
      const before = waits.length;
      await pacer.acquire();
      return waits.length > before ? (waits[waits.length - 1] as number) : 0;
    };
    const five = async () => {
      const out = [];
      for (let i = 0; i < 5; i++) out.push(await take());
      return out;
    };
    // Three immediate tokens, then 100 ms, 200 ms... reserved in order.
    expect(await five()).toEqual([0, 0, 0, 100, 200]);
    // The key expires once the bucket would be full again: no unbounded state in Redis.
    const ttl = await redis.pttl(key);
    expect(ttl).not.toBe(-1);
    expect(ttl).toBeLessThanOrEqual(1500);
    // A quiet second later (the two reserved slots paid back, the bucket full again): the same pattern.
    now += 200 + 300 + 1000;
    waits = [];
    expect(await five()).toEqual([0, 0, 0, 100, 200]);
  });

  it("a low-priority take (drift's sweep) leaves half the burst to writes and never queues ahead of them", async () => {
    const redis = connect();
    const key = `${prefix}:bucket-spare`;
    let now = 1_700_000_000_000;
    const sleeps: number[] = [];
    // The sleep is where time passes: the clock moves by exactly the wait the bucket asked for.
    const pacer = createRedisPacer(redis, {
      key,
      ratePerSecond: 10,
      burst: 10,
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
    });
    // A full bucket (10): the sweep takes 5 at once, then must wait for refills above the reserve of 5.
    for (let i = 0; i < 5; i++) await pacer.acquireSpare();
    expect(sleeps).toEqual([]);
    await pacer.acquireSpare();
    expect(sleeps).toEqual([100]);
    // Writes still find the reserve at once: five immediate grants while the sweep holds its half.
    sleeps.length = 0;
    for (let i = 0; i < 5; i++) await pacer.acquire();
    expect(sleeps).toEqual([]);
    // Bucket empty now: the next sweep read waits until the bucket is back above the reserve (6 tokens at
    // 10/s = 600 ms), while a write would only wait for one token.
    await pacer.acquireSpare();
    expect(sleeps.reduce((a, b) => a + b, 0)).toBe(600);
  });

  it("a low-priority take can cost a fraction of a token (a $batch of reads over GRAPH_READS_PER_WRITE)", async () => {
    const redis = connect();
    let now = 1_700_000_000_000;
    const sleeps: number[] = [];
    const pacer = createRedisPacer(redis, {
      key: `${prefix}:bucket-spare-cost`,
      ratePerSecond: 10,
      burst: 10,
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
    });
    // Half the burst (5 tokens) is the sweep's: ten takes of half a token each, none waits.
    for (let i = 0; i < 10; i++) await pacer.acquireSpare(0.5);
    expect(sleeps).toEqual([]);
    // The eleventh waits for half a token's refill (50 ms at 10/s).
    await pacer.acquireSpare(0.5);
    expect(sleeps).toEqual([50]);
  });

  it("rate 0 is no pacing and touches no Redis key", async () => {
    const redis = connect();
    const key = `${prefix}:bucket-off`;
    const pacer = createRedisPacer(redis, { key, ratePerSecond: 0 });
    for (let i = 0; i < 100; i++) await pacer.acquire();
    expect(await redis.exists(key)).toBe(0);
  });
});

describe("pacing in the Graph client and the workers", () => {
  let stack: SandboxStack;
  beforeAll(async () => {
    // Pacing just under the simulated tenant's write budget: the workers never hear a 429.
    stack = await testStack("pacer-stack", { env: { GRAPH_WRITES_PER_SECOND: "4" } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("only writes wait for a token: reads go straight to Graph", async () => {
    const redis = connect();
    const inner = createRedisPacer(redis, { key: `${prefix}:bucket-client`, ratePerSecond: 1000 });
    let acquired = 0;
    const counting: GraphPacer = {
      acquire: () => {
        acquired++;
        return inner.acquire();
      },
      acquireSpare: () => inner.acquireSpare(),
    };
    const graph = createGraphApi({
      graphBaseUrl: stack.entra.url,
      credential: createTokenCredential(stack.config.azure),
      pacer: counting,
    });
    const app = await graph.createApplication({ displayName: "paced", tags: ["bench:pacer"] });
    await graph.listApplicationsByTag("bench:pacer");
    await graph.listFederatedCredentials(app.id);
    expect(await graph.getServicePrincipalByAppId(app.appId)).toBeNull();
    await graph.upsertServicePrincipal(app.appId, ["bench:pacer"]);
    await graph.deleteApplication(app.id);
    // POST, PATCH, DELETE: three tokens; the three reads took none.
    expect(acquired).toBe(3);
  });

  it("a project_create through the real workers: every write waits for its slot in the prefix's graph-writes bucket", async () => {
    stack.entra.stats.reset();
    const sent = Date.now();
    const { delivery } = await stack.driver.createProject("paced/one", { members: { 2: 40 } });
    expect(delivery.status).toBe(202);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    const writes = stack.entra.stats.requests
      .filter((r) => r.kind !== "login" && r.method !== "GET")
      .map((r) => r.at)
      .sort((a, b) => a - b);
    // Nine writes for two environments, paced at 4/s with a burst of 4: the k-th write cannot be answered
    // before its slot, (k - 4) x 250 ms after the delivery. Load only delays writes, so this lower bound
    // holds on any machine; unpaced, all nine would arrive within a few milliseconds.
    expect(writes).toHaveLength(9);
    writes.forEach((at, i) => {
      const k = i + 1;
      expect(at - sent, `write ${k}`).toBeGreaterThanOrEqual(Math.max(0, (k - 4) * 250) - 2);
    });
  });
});
