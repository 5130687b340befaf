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
  it("two workers on separate connections together get the configured rate, and both get a share", async () => {
    const rate = 100;
    const burst = 5;
    const key = `${prefix}:bucket-shared`;
    // Two "worker processes": separate connections, separately built pacers, one key.
    const workers = [connect(), connect()].map((redis) =>
      createRedisPacer(redis, { key, ratePerSecond: rate, burst }),
    );
    const grants: number[] = [0, 0];
    const started = Date.now();
    let stop = false;
    // Each worker runs four slots in parallel, as WORKER_CONCURRENCY would.
    const loops = workers.flatMap((pacer, w) =>
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          await pacer.acquire();
          if (stop) return;
          grants[w] = (grants[w] ?? 0) + 1;
          if ((grants[0] ?? 0) + (grants[1] ?? 0) >= 60) stop = true;
        }
      }),
    );
    await Promise.all(loops);
    const elapsedS = (Date.now() - started) / 1000;
    const total = (grants[0] ?? 0) + (grants[1] ?? 0);
    expect(total).toBe(60);
    // A grant is never earlier than its reserved slot, so over any run: granted <= burst + rate x elapsed.
    // Without a shared bucket the eight slots would take 60 tokens at once, far above this bound.
    expect(total).toBeLessThanOrEqual(burst + rate * elapsedS + 1);
    // Neither worker is starved: reservations are served in arrival order across processes.
    expect(Math.min(grants[0] ?? 0, grants[1] ?? 0)).toBeGreaterThanOrEqual(15);
  });

  it("after a quiet spell a burst is granted without waiting, then callers queue for their slots", async () => {
    const redis = connect();
    const key = `${prefix}:bucket-burst`;
    const pacer = createRedisPacer(redis, { key, ratePerSecond: 10, burst: 3 });
    const take = redis as Redis & { gebGraphPacerTake(k: string, r: string, b: string): Promise<number> };
    // The Lua script's answer is the wait: three immediate tokens, then 100 ms, 200 ms... reserved in order.
    const waits = [];
    for (let i = 0; i < 5; i++) waits.push(Number(await take.gebGraphPacerTake(key, "10", "3")));
    expect(waits.slice(0, 3)).toEqual([0, 0, 0]);
    expect(waits[3]).toBeGreaterThan(50);
    expect(waits[3]).toBeLessThanOrEqual(100);
    expect(waits[4]).toBeGreaterThan(waits[3] ?? 0);
    // The key expires once the bucket would be full again: no unbounded state in Redis.
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2000);
    await pacer.acquire();
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

  it("a project_create through the real workers: every write paced through the prefix's graph-writes bucket, no 429", async () => {
    await fetch(`${stack.entra.url}/_sim/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ throttle: { writesPerSecond: 5 } }),
    });
    stack.entra.stats.reset();
    const { delivery } = await stack.driver.createProject("paced/one", { members: { 2: 40 } });
    expect(delivery.status).toBe(202);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    // Nine writes for two environments against a burst of 4 and a 5/s tenant: unpaced, the fifth would be a 429.
    expect(stack.entra.stats.writes()).toBe(9);
    expect(stack.entra.stats.throttled()).toBe(0);
    const redis = connect();
    expect(await redis.exists(`${stack.config.queuePrefix}:graph-writes`)).toBe(1);
  });
});
