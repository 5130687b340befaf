import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/env.ts";
import { createLogger } from "../../src/logging.ts";
import { waitForIdle } from "../../src/sandbox/wait.ts";
import { type Service, startService } from "../../src/service.ts";
import { fixtureText } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { freePort, type TestRedis, testRedisServer } from "../helpers/redis-server.ts";

let primary: TestRedis;
let sentinel: ChildProcess | undefined;
let sentinelDir = "";
let service: Service | undefined;
let sentinelPort = 0;

beforeAll(async () => {
  primary = await testRedisServer();
  await primary.start();
  sentinelPort = await freePort();
  sentinelDir = mkdtempSync(join(tmpdir(), "geb-sentinel-"));
  const conf = join(sentinelDir, "sentinel.conf");
  // Sentinel rewrites its config file, so it must be a writable file of its own.
  writeFileSync(
    conf,
    [
      `port ${sentinelPort}`,
      "bind 127.0.0.1",
      `dir ${sentinelDir}`,
      `sentinel monitor geb-primary 127.0.0.1 ${primary.port} 1`,
      "",
    ].join("\n"),
  );
  sentinel = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
});

afterAll(async () => {
  await service?.close();
  sentinel?.kill("SIGKILL");
  await primary?.stop();
  if (sentinelDir) rmSync(sentinelDir, { recursive: true, force: true });
});

describe("Redis Sentinel", () => {
  it("REDIS_SENTINELS finds the primary through the sentinel: webhooks are queued and processed", async () => {
    const config = loadConfig(
      {
        // The host in REDIS_URL is not used with Sentinel; a wrong one proves the sentinel is asked.
        REDIS_URL: "redis://does-not-resolve.invalid:6379",
        REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
        REDIS_SENTINEL_NAME: "geb-primary",
        GITLAB_WEBHOOK_SECRETS: "sentinel-secret-0123456789",
        PORT: "0",
        HOST: "127.0.0.1",
        QUEUE_PREFIX: "sentinel-test",
      },
      "api",
    );
    expect(config.redisSentinel).toEqual({
      name: "geb-primary",
      sentinels: [{ host: "127.0.0.1", port: sentinelPort }],
    });
    const handled: string[] = [];
    service = await startService({
      // Worker too (with an injected handler: no GitLab or Entra needed to prove the Redis path).
      config: { ...config, role: "all" },
      policy: testPolicy(),
      logger: createLogger("silent"),
      handler: async (data) => {
        handled.push(data.intent.type);
        return {};
      },
    });
    // The sentinel needs a moment after start to answer for the primary: resend until the bot takes it.
    let status = 0;
    const deliver = async () => {
      const res = await fetch(`${service?.url}/webhooks/gitlab`, {
        method: "POST",
        headers: {
          "X-Gitlab-Event": "System Hook",
          "X-Gitlab-Token": "sentinel-secret-0123456789",
          "Idempotency-Key": "s-1",
        },
        body: fixtureText("gitlab/system-hook-project_create.json"),
      });
      status = res.status;
      return status;
    };
    await expect.poll(deliver, { timeout: 25_000, interval: 100 }).not.toBe(503);
    expect(status).toBe(202);
    await waitForIdle([service.queues.events]);
    expect(handled).toEqual(["project.created"]);
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
  });

  it("rejects a malformed sentinel list with a clear message", () => {
    expect(() => loadConfig({ REDIS_SENTINELS: "just-a-host", GITLAB_WEBHOOK_SECRETS: "x" }, "api")).toThrow(
      /REDIS_SENTINELS: each sentinel must be host:port/,
    );
  });
});
