import { Writable } from "node:stream";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app.ts";
import { createLogger } from "../../src/logging.ts";
import { createProducerConnection } from "../../src/queue/connection.ts";
import { QUEUES } from "../../src/queue/names.ts";
import { baseConfig } from "../helpers/config.ts";
import { fixtureText } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const lines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const l of String(chunk).split("\n").filter(Boolean))
      lines.push(JSON.parse(l) as Record<string, unknown>);
    done();
  },
});
const logger = createLogger("info", sink);
const prefix = uniquePrefix("logging");
const redis = createProducerConnection(TEST_REDIS_URL);
const queue = new Queue(QUEUES.events, { connection: redis, prefix });
const config = baseConfig();
let app: ReturnType<typeof createApp>;

beforeAll(() => {
  app = createApp({ config, policy: testPolicy(), queue, redis, logger });
});
afterAll(async () => {
  await queue.close();
  await redis.quit();
  await deletePrefix(prefix);
});

async function post(headers: Record<string, string>) {
  return app.request("/webhooks/gitlab", {
    method: "POST",
    headers: { "X-Gitlab-Event": "System Hook", ...headers },
    body: fixtureText("gitlab/system-hook-project_create.json"),
  });
}

describe("structured logs", () => {
  it("every line of a request carries its request id (also returned as X-Request-Id) and the GitLab event id", async () => {
    const secret = config.gitlab.webhookSecrets[0] as string;
    lines.length = 0;
    const ok = await post({ "X-Gitlab-Token": secret, "Idempotency-Key": "evt-ok-1" });
    const bad = await post({ "X-Gitlab-Token": "wrong-token-value", "Idempotency-Key": "evt-bad-1" });
    expect(ok.status).toBe(202);
    expect(bad.status).toBe(401);
    const okId = ok.headers.get("x-request-id");
    const badId = bad.headers.get("x-request-id");
    expect(okId).toBeTruthy();
    expect(okId).not.toBe(badId);
    const okLines = lines.filter((l) => l.reqId === okId);
    const badLines = lines.filter((l) => l.reqId === badId);
    expect(okLines.map((l) => l.msg)).toContain("webhook accepted");
    expect(badLines.map((l) => l.msg)).toContain("webhook rejected");
    for (const l of okLines) expect(l.gitlabEventId).toBe("evt-ok-1");
    for (const l of badLines) expect(l.gitlabEventId).toBe("evt-bad-1");
    expect(JSON.stringify(lines)).not.toContain(secret);
    expect(JSON.stringify(lines)).not.toContain("wrong-token-value");
  });

  it("redacts secrets handed to the logger by mistake", () => {
    lines.length = 0;
    logger.info(
      {
        headers: { "x-gitlab-token": "tok-1", authorization: "Bearer tok-2", "private-token": "tok-3" },
        config: {
          gitlab: { token: "tok-4", webhookSecrets: ["tok-5"] },
          azure: { credential: { clientSecret: "tok-6" } },
        },
        token: "tok-7",
      },
      "oops",
    );
    const text = JSON.stringify(lines);
    for (let i = 1; i <= 7; i++) expect(text).not.toContain(`tok-${i}`);
    expect(text).toContain("[REDACTED]");
  });
});
