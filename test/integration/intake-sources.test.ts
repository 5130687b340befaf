import { Queue } from "bullmq";
import type { Hono } from "hono";
import type { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app.ts";
import { metrics } from "../../src/http/metrics.ts";
import { createRefusalRecorder } from "../../src/http/refusals.ts";
import { signWebhook } from "../../src/http/verify.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { createProducerConnection } from "../../src/queue/connection.ts";
import { eventJobSchema } from "../../src/queue/jobs.ts";
import { QUEUES } from "../../src/queue/names.ts";
import { fixtureJson } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * Secrets bound to a source: a group hook secret speaks only for projects under its namespace and never as a
 * System Hook; a signing source refuses unsigned deliveries; a signed delivery is deduplicated on webhook-id.
 * Every forged delivery below: the right status, zero jobs, the metric and an audit record.
 */
const INSTANCE_SECRET = "instance-secret-0123456789";
const ACME_SECRET = "acme-group-secret-0123456789";
const SIGNED_TEAM_SECRET = "signed-team-secret-0123456789";
const SIGNED_TEAM_TOKEN = `whsec_${Buffer.from("signed-team key, 32 bytes long!!").toString("base64")}`;

let prefix: string;
let redis: Redis;
let queue: Queue;
let audit: AuditLog;
let app: Hono;
let n = 0;

beforeAll(async () => {
  prefix = uniquePrefix("sources");
  redis = createProducerConnection(TEST_REDIS_URL);
  queue = new Queue(QUEUES.events, { connection: redis, prefix });
  audit = new AuditLog(redis, { key: `${prefix}:audit` });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  app = createApp({
    config: {
      bodyLimitBytes: 16 * 1024 * 1024,
      gitlab: {
        url: "https://gitlab.example.com",
        token: undefined,
        webhookSecrets: [INSTANCE_SECRET],
        signingTokens: [],
        groupWebhookSecrets: [
          { namespace: "acme", secret: ACME_SECRET },
          { namespace: "signed-team", secret: SIGNED_TEAM_SECRET },
        ],
        groupSigningTokens: [{ namespace: "signed-team", secret: SIGNED_TEAM_TOKEN }],
        instances: [],
        oidcIssuer: "https://gitlab.example.com",
      },
    },
    policy: testPolicy(),
    queue,
    redis,
    logger,
    recordRefusal: createRefusalRecorder({ logger, audit, redis, keyPrefix: prefix }),
  });
});

afterAll(async () => {
  await queue.close();
  await redis.quit();
  await deletePrefix(prefix);
});

type Payload = { event: string; body: Record<string, unknown> };

/** A delivery of every event kind the bot acts on, about the project at `path`. */
function payloads(path: string, id = 4242): Record<string, Payload> {
  const note = fixtureJson<Record<string, Record<string, unknown>>>("gitlab/note-hook-issue.json");
  (note.object_attributes as Record<string, unknown>).note = "/entra onboard staging";
  note.project = { ...(note.project as object), id, path_with_namespace: path };
  const deployment = fixtureJson<Record<string, unknown>>("gitlab/deployment-hook.json");
  deployment.project = { ...(deployment.project as object), id, path_with_namespace: path };
  const pipeline = fixtureJson<Record<string, unknown>>("gitlab/pipeline-hook.json");
  pipeline.project = { ...(pipeline.project as object), id, path_with_namespace: path };
  const job = fixtureJson<Record<string, unknown>>("gitlab/job-hook.json");
  job.project = { ...(job.project as object), id, path_with_namespace: path };
  job.environment = { name: "staging", action: "start", deployment_tier: "staging" };
  const created = {
    ...fixtureJson("gitlab/group-hook-project_create.json"),
    project_id: id,
    path_with_namespace: path,
  };
  return {
    "Project Hook/project_create": { event: "Project Hook", body: created },
    "Project Hook/project_destroy": {
      event: "Project Hook",
      body: { ...created, event_name: "project_destroy" },
    },
    "Note Hook": { event: "Note Hook", body: note },
    "Confidential Note Hook": { event: "Confidential Note Hook", body: note },
    "Deployment Hook": { event: "Deployment Hook", body: deployment },
    "Pipeline Hook": { event: "Pipeline Hook", body: pipeline },
    "Job Hook": { event: "Job Hook", body: job },
  };
}

/** Every System Hook event the bot acts on, naming a project (or namespace) under acme. */
function systemHooks(): Record<string, Record<string, unknown>> {
  const under = (f: string) => ({ ...fixtureJson(f), project_id: 4242, path_with_namespace: "acme/app" });
  return {
    project_create: under("gitlab/system-hook-project_create.json"),
    project_destroy: under("gitlab/system-hook-project_destroy.json"),
    project_rename: {
      ...under("gitlab/system-hook-project_rename.json"),
      old_path_with_namespace: "victim/app",
    },
    project_transfer: {
      ...under("gitlab/system-hook-project_transfer.json"),
      old_path_with_namespace: "victim/app",
    },
    group_rename: {
      ...fixtureJson("gitlab/system-hook-group_rename.json"),
      full_path: "acme",
      old_full_path: "victim",
    },
    user_rename: { event_name: "user_rename", user_id: 5, username: "acme", old_username: "victim" },
  };
}

async function deliver(event: string, body: unknown, headers: Record<string, string>) {
  n += 1;
  const res = await app.request("/webhooks/gitlab", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Gitlab-Event": event,
      "Idempotency-Key": `${prefix}-${n}`,
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const jobs = () =>
  queue.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed", "prioritized");
async function refusedCount(reason: string): Promise<number> {
  const m = await metrics.deliveriesRefusedTotal.get();
  return m.values.find((v) => v.labels.stage === "intake" && v.labels.reason === reason)?.value ?? 0;
}
async function refusedRecords() {
  const out = [];
  for await (const r of audit.exportAll({ outcome: "refused" })) out.push(r);
  return out;
}

/** Sends a forged delivery and checks status, zero jobs, metric +1 and a new audit record. */
async function expectRefused(
  label: string,
  event: string,
  body: unknown,
  headers: Record<string, string>,
  status: 401 | 403,
  reason: string,
) {
  const before = {
    jobs: await jobs(),
    metric: await refusedCount(reason),
    audit: (await refusedRecords()).length,
  };
  const r = await deliver(event, body, headers);
  expect(r.status, label).toBe(status);
  expect(await jobs(), `${label}: no job`).toBe(before.jobs);
  expect(await refusedCount(reason), `${label}: metric`).toBe(before.metric + 1);
  const records = await refusedRecords();
  expect(records.length, `${label}: audit record`).toBe(before.audit + 1);
  const last = records[records.length - 1];
  expect(last?.change).toMatchObject({ op: "refuse", kind: "delivery", detail: reason });
  expect(last?.outcome).toBe("refused");
  return { response: r, record: last };
}

describe("a group hook secret speaks only for its namespace", () => {
  const acme = { "X-Gitlab-Token": ACME_SECRET };

  it("every System Hook event is refused with 403, however it names acme", async () => {
    for (const [name, body] of Object.entries(systemHooks())) {
      const { response, record } = await expectRefused(
        `System Hook ${name}`,
        "System Hook",
        body,
        acme,
        403,
        "system_hook",
      );
      expect(String(response.json.reason)).toMatch(/cannot send System Hook/);
      expect(record?.change.target).toMatch(/group hook secret of acme/);
    }
    // The instance secret still may.
    const ok = await deliver("System Hook", systemHooks().project_rename, {
      "X-Gitlab-Token": INSTANCE_SECRET,
    });
    expect(ok.status).toBe(202);
  });

  for (const [label, path] of [
    ["a foreign namespace", "victim/payments"],
    ["a look-alike namespace", "acme-evil/payments"],
    ["a prefix without a slash", "acmecorp/payments"],
    ["a look-alike, upper case", "ACME-EVIL/payments"],
    ["the namespace's own path", "acme"],
  ] as const) {
    it(`every project event naming ${label} (${path}) is refused with 403`, async () => {
      for (const [name, p] of Object.entries(payloads(path))) {
        const { response, record } = await expectRefused(
          `${name} ${path}`,
          p.event,
          p.body,
          acme,
          403,
          "outside_namespace",
        );
        expect(String(response.json.reason)).toContain("outside namespace acme");
        expect(record?.project).toEqual({ id: 4242, path });
      }
    });
  }

  it("projects under acme, in any case and any depth, are accepted with the namespace as source", async () => {
    for (const path of ["acme/app", "ACME/sub/y", "Acme/deep/er/app"]) {
      for (const [name, p] of Object.entries(payloads(path))) {
        const r = await deliver(p.event, p.body, acme);
        expect(r.status, `${name} ${path}`).toBe(202);
        const job = await queue.getJob(String(r.json.jobId));
        const data = eventJobSchema.parse(job?.data);
        expect(data.trigger.source).toEqual({ kind: "namespace", namespace: "acme" });
        expect(data.trigger.signed).toBe(false);
      }
    }
  });

  it("the instance secret speaks for any project", async () => {
    for (const [name, p] of Object.entries(payloads("victim/payments"))) {
      const r = await deliver(p.event, p.body, { "X-Gitlab-Token": INSTANCE_SECRET });
      expect(r.status, name).toBe(202);
      const data = eventJobSchema.parse((await queue.getJob(String(r.json.jobId)))?.data);
      expect(data.trigger.source).toEqual({ kind: "instance" });
    }
  });

  it("a refusal repeated within a minute is counted each time but audited once", async () => {
    const p = payloads("victim/repeat", 777)["Deployment Hook"] as Payload;
    await expectRefused("first", p.event, p.body, acme, 403, "outside_namespace");
    const audited = (await refusedRecords()).length;
    const metric = await refusedCount("outside_namespace");
    for (let i = 0; i < 5; i++) expect((await deliver(p.event, p.body, acme)).status).toBe(403);
    expect(await refusedCount("outside_namespace")).toBe(metric + 5);
    expect((await refusedRecords()).length).toBe(audited);
  });

  it("a stranger's wrong secret is a plain 401: not audited (anyone could fill the trail)", async () => {
    const before = (await refusedRecords()).length;
    const r = await deliver("Note Hook", payloads("acme/app")["Note Hook"]?.body, {
      "X-Gitlab-Token": "guess",
    });
    expect(r.status).toBe(401);
    expect((await refusedRecords()).length).toBe(before);
  });
});

describe("signed sources", () => {
  function signed(body: string, opts: { id?: string; key?: string; ts?: number } = {}) {
    n += 1;
    const id = opts.id ?? `msg_${prefix}_${n}`;
    const ts = opts.ts ?? Math.floor(Date.now() / 1000);
    return {
      "webhook-id": id,
      "webhook-timestamp": String(ts),
      "webhook-signature": signWebhook(opts.key ?? SIGNED_TEAM_TOKEN, id, ts, body),
    };
  }

  it("an unsigned delivery with the right secret is refused with 401, for every event kind", async () => {
    for (const [name, p] of Object.entries(payloads("signed-team/app"))) {
      const { record } = await expectRefused(
        name,
        p.event,
        p.body,
        { "X-Gitlab-Token": SIGNED_TEAM_SECRET },
        401,
        "unsigned",
      );
      expect(record?.change.target).toMatch(/signed-team/);
    }
  });

  it("a signature by another key or a stale one, with the right secret, is refused and audited", async () => {
    const p = payloads("signed-team/app", 99)["Note Hook"] as Payload;
    const raw = JSON.stringify(p.body);
    const otherKey = `whsec_${Buffer.from("not the signed-team key, 32 byte").toString("base64")}`;
    await expectRefused(
      "other key",
      p.event,
      raw,
      { ...signed(raw, { key: otherKey }), "X-Gitlab-Token": SIGNED_TEAM_SECRET },
      401,
      "bad_signature",
    );
    const stale = signed(raw, { ts: Math.floor(Date.now() / 1000) - 600 });
    const p2 = payloads("signed-team/app", 98)["Note Hook"] as Payload;
    const raw2 = JSON.stringify(p2.body);
    const stale2 = {
      ...signed(raw2, { ts: Math.floor(Date.now() / 1000) - 600 }),
      "X-Gitlab-Token": SIGNED_TEAM_SECRET,
    };
    expect(stale["webhook-id"]).toBeTruthy();
    await expectRefused("stale", p2.event, raw2, stale2, 401, "bad_signature");
  });

  it("signed deliveries are accepted, bound to the namespace, and still refused outside it", async () => {
    for (const [name, p] of Object.entries(payloads("signed-team/app"))) {
      const raw = JSON.stringify(p.body);
      const r = await deliver(p.event, raw, signed(raw));
      expect(r.status, name).toBe(202);
      const data = eventJobSchema.parse((await queue.getJob(String(r.json.jobId)))?.data);
      expect(data.trigger.source).toEqual({ kind: "namespace", namespace: "signed-team" });
      expect(data.trigger.signed).toBe(true);
    }
    for (const [name, p] of Object.entries(payloads("victim/app"))) {
      const raw = JSON.stringify(p.body);
      await expectRefused(`signed ${name}`, p.event, raw, signed(raw), 403, "outside_namespace");
    }
    const sys = JSON.stringify(systemHooks().project_destroy);
    await expectRefused("signed System Hook", "System Hook", sys, signed(sys), 403, "system_hook");
  });

  it("a replay of a signed delivery with a new Idempotency-Key is deduplicated on webhook-id", async () => {
    const p = payloads("signed-team/replayed", 555)["Deployment Hook"] as Payload;
    const raw = JSON.stringify(p.body);
    const headers = signed(raw);
    const first = await deliver(p.event, raw, headers);
    expect(first.status).toBe(202);
    const before = await jobs();
    for (let i = 0; i < 5; i++) {
      const again = await deliver(p.event, raw, {
        ...headers,
        "Idempotency-Key": `attacker-${i}`,
        "X-Gitlab-Event-UUID": `u-${i}`,
      });
      expect(again.status).toBe(200);
      expect(again.json).toMatchObject({ duplicate: true, jobId: first.json.jobId });
    }
    expect(await jobs()).toBe(before);
  });
});
