import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import { type Service, startService } from "../../src/service.ts";
import { baseConfig } from "../helpers/config.ts";
import { fixtureText } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { type TestRedis, testRedisServer } from "../helpers/redis-server.ts";

let redis: TestRedis;
let service: Service;

beforeAll(async () => {
  redis = await testRedisServer();
  await redis.start();
  service = await startService({
    config: baseConfig({ role: "api", redisUrl: redis.url, port: 0 }),
    policy: testPolicy(),
    logger: createLogger("silent"),
  });
});

afterAll(async () => {
  await service?.close();
  await redis?.stop();
});

/** Waits for the event (a readiness answer), bounded only by a generous guard below the test timeout. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  await expect.poll(check, { timeout: 25_000, interval: 50, message: `waiting for ${what}` }).toBe(true);
}

const readyStatus = async () => (await fetch(`${service.url}/readyz`)).status;

describe("readiness follows Redis", () => {
  it("is ready with Redis, 503 with the reason while Redis is down, ready again after", async () => {
    await until(async () => (await readyStatus()) === 200, "ready");
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);

    await redis.kill();
    await until(async () => (await readyStatus()) === 503, "not ready");
    const body = (await (await fetch(`${service.url}/readyz`)).json()) as { redis: string };
    expect(body.redis).toMatch(/unreachable/);
    // The process itself is still up.
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);

    // A webhook during the outage is refused with 503 (GitLab records a failure), never acknowledged.
    const res = await fetch(`${service.url}/webhooks/gitlab`, {
      method: "POST",
      headers: {
        "X-Gitlab-Event": "System Hook",
        "X-Gitlab-Token": "test-secret-0123456789",
        "Idempotency-Key": "outage-1",
      },
      body: fixtureText("gitlab/system-hook-project_create.json"),
    });
    expect(res.status).toBe(503);

    await redis.start();
    await until(async () => (await readyStatus()) === 200, "ready again");
    const after = await fetch(`${service.url}/webhooks/gitlab`, {
      method: "POST",
      headers: {
        "X-Gitlab-Event": "System Hook",
        "X-Gitlab-Token": "test-secret-0123456789",
        "Idempotency-Key": "outage-1",
      },
      body: fixtureText("gitlab/system-hook-project_create.json"),
    });
    expect(after.status).toBe(202);
  });
});

describe("admin without tokens", () => {
  it("answers 503 with the reason instead of exposing or hiding the UI", async () => {
    const res = await fetch(`${service.url}/admin/queues`);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/set ADMIN_TOKEN/);
  });
});
