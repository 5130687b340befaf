import { Queue } from "bullmq";
import type { Hono } from "hono";
import type { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app.ts";
import { signWebhook } from "../../src/http/verify.ts";
import { createProducerConnection } from "../../src/queue/connection.ts";
import { eventJobSchema } from "../../src/queue/jobs.ts";
import { QUEUES } from "../../src/queue/names.ts";
import { fixtureJson, fixtureText } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const SECRETS = ["current-secret-0123456789", "previous-secret-9876543210"];
const SIGNING = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
const LIMIT = 64 * 1024;

let prefix: string;
let redis: Redis;
let queue: Queue;
let app: Hono;
/** The instance source signs: its unsigned deliveries are refused. */
let signedApp: Hono;
let counter = 0;

function key(): string {
  counter += 1;
  return `key-${prefix}-${counter}`;
}

function post(
  event: string,
  body: string,
  headers: Record<string, string> = {},
  target: Hono = app,
): Promise<Response> {
  return Promise.resolve(
    target.request("/webhooks/gitlab", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": SECRETS[0] as string,
        "Idempotency-Key": key(),
        ...headers,
      },
      body,
    }),
  );
}

async function jobData(jobId: string) {
  const job = await queue.getJob(jobId);
  expect(job, `job ${jobId} is in Redis`).toBeTruthy();
  return eventJobSchema.parse(job?.data);
}

beforeAll(async () => {
  prefix = uniquePrefix("intake");
  redis = createProducerConnection(TEST_REDIS_URL);
  queue = new Queue(QUEUES.events, { connection: redis, prefix });
  const make = (signingTokens: string[]) =>
    createApp({
      config: {
        bodyLimitBytes: LIMIT,
        gitlab: {
          url: "https://gitlab.example.com",
          token: undefined,
          webhookSecrets: SECRETS,
          signingTokens,
          instances: [],
          oidcIssuer: "https://gitlab.example.com",
        },
      },
      policy: testPolicy(),
      queue,
      redis,
      logger: pino({ level: "silent" }),
    });
  app = make([]);
  signedApp = make([SIGNING]);
});

afterAll(async () => {
  await queue.close();
  await redis.quit();
  await deletePrefix(prefix);
});

describe("every shipped GitLab fixture yields the right intent", () => {
  const cases: Array<[string, string, (d: ReturnType<typeof eventJobSchema.parse>) => void]> = [
    [
      "System Hook",
      "gitlab/system-hook-project_create.json",
      (d) => {
        expect(d.intent).toEqual({
          type: "project.created",
          project: { id: 74, path: "jsmith/storecloud" },
          source: "system-hook",
        });
        expect(d.trigger.event).toBe("System Hook/project_create");
      },
    ],
    [
      "System Hook",
      "gitlab/system-hook-project_destroy.json",
      (d) => expect(d.intent).toMatchObject({ type: "project.destroyed", project: { id: 73 } }),
    ],
    [
      "System Hook",
      "gitlab/system-hook-project_rename.json",
      (d) =>
        expect(d.intent).toEqual({
          type: "project.moved",
          project: { id: 73, path: "jsmith/underscore" },
          oldPath: "jsmith/overscore",
          how: "rename",
        }),
    ],
    [
      "System Hook",
      "gitlab/system-hook-project_transfer.json",
      (d) => expect(d.intent).toMatchObject({ type: "project.moved", how: "transfer" }),
    ],
    [
      "System Hook",
      "gitlab/system-hook-group_rename.json",
      (d) =>
        expect(d.intent).toEqual({
          type: "namespace.renamed",
          kind: "group",
          namespaceId: 64,
          oldPath: "parent-group/old-name",
          newPath: "parent-group/better-name",
        }),
    ],
    [
      "Project Hook",
      "gitlab/group-hook-project_create.json",
      (d) =>
        expect(d.intent).toEqual({
          type: "project.created",
          project: { id: 22, path: "group1/project1" },
          source: "group-hook",
        }),
    ],
    [
      "Deployment Hook",
      "gitlab/deployment-hook.json",
      (d) =>
        expect(d.intent).toMatchObject({
          type: "environment.seen",
          project: { id: 30, path: "root/test-deployment-webhooks" },
          environments: [{ name: "staging", tier: "staging" }],
          source: "deployment",
        }),
    ],
    [
      "Pipeline Hook",
      "gitlab/pipeline-hook.json",
      (d) => {
        expect(d.intent.type).toBe("environment.seen");
        if (d.intent.type === "environment.seen") {
          expect(d.intent.environments.map((e) => e.name)).toContain("production");
          expect(d.intent.source).toBe("pipeline");
        }
      },
    ],
  ];
  for (const [event, file, check] of cases) {
    it(`${event} ${file}`, async () => {
      const res = await post(event, fixtureText(file));
      expect(res.status).toBe(202);
      const { jobId } = (await res.json()) as { jobId: string };
      check(await jobData(jobId));
    });
  }

  it("user_rename (documented fields) becomes a namespace rename", async () => {
    const body = {
      event_name: "user_rename",
      user_id: 5,
      username: "new-name",
      old_username: "old-name",
      name: "N",
    };
    const res = await post("System Hook", JSON.stringify(body));
    expect(res.status).toBe(202);
    const d = await jobData(((await res.json()) as { jobId: string }).jobId);
    expect(d.intent).toEqual({
      type: "namespace.renamed",
      kind: "user",
      namespaceId: 5,
      oldPath: "old-name",
      newPath: "new-name",
    });
  });

  it("an issue comment with /entra becomes a command; the confidential hook marks it confidential", async () => {
    const note = fixtureJson<{ object_attributes: { note: string } }>("gitlab/note-hook-issue.json");
    note.object_attributes.note = "Thanks!\n  /ENTRA onboard staging\n/entra plan";
    for (const [event, confidential] of [
      ["Note Hook", false],
      ["Confidential Note Hook", true],
    ] as const) {
      const res = await post(event, JSON.stringify(note));
      expect(res.status).toBe(202);
      const d = await jobData(((await res.json()) as { jobId: string }).jobId);
      expect(d.intent).toEqual({
        type: "command",
        project: { id: 5, path: "gitlab-org/gitlab-test" },
        issueIid: 17,
        noteId: 1241,
        author: { id: 1, username: "root" },
        line: "/ENTRA onboard staging",
        confidential,
      });
      expect(d.trigger.actor).toEqual({ id: 1, username: "root" });
    }
  });

  it("a Job Hook naming an environment becomes environment.seen", async () => {
    const job = {
      object_kind: "build",
      ref: "main",
      tag: false,
      project_id: 380,
      project: { id: 380, name: "test", path_with_namespace: "gitlab-org/gitlab-test" },
      user: { id: 3, name: "User", username: "user" },
      environment: { name: "review/feature-x", action: "start", deployment_tier: "development" },
    };
    const res = await post("Job Hook", JSON.stringify(job));
    expect(res.status).toBe(202);
    const d = await jobData(((await res.json()) as { jobId: string }).jobId);
    expect(d.intent).toMatchObject({
      type: "environment.seen",
      environments: [{ name: "review/feature-x", tier: "development" }],
      ref: "main",
      source: "job",
    });
  });
});

describe("events the bot does not act on answer 2xx with a reason", () => {
  const cases: Array<[string, string | (() => string), RegExp]> = [
    ["System Hook", () => fixtureText("gitlab/system-hook-project_update.json"), /project_update/],
    ["Issue Hook", () => fixtureText("gitlab/issue-hook.json"), /not one the bot acts on/],
    ["Subgroup Hook", () => fixtureText("gitlab/group-hook-subgroup_create.json"), /not one the bot acts on/],
    ["Push Hook", "{}", /not one the bot acts on/],
    ["Note Hook", () => fixtureText("gitlab/note-hook-issue.json"), /no \/entra command/],
  ];
  for (const [event, body, reason] of cases) {
    it(`${event} is ignored`, async () => {
      const res = await post(event, typeof body === "string" ? body : body());
      expect(res.status).toBe(200);
      const json = (await res.json()) as { ignored: boolean; reason: string };
      expect(json.ignored).toBe(true);
      expect(json.reason).toMatch(reason);
    });
  }

  function note(mutate: (n: Record<string, Record<string, unknown>>) => void): string {
    const n = fixtureJson<Record<string, Record<string, unknown>>>("gitlab/note-hook-issue.json");
    (n.object_attributes as Record<string, unknown>).note = "/entra onboard";
    mutate(n);
    return JSON.stringify(n);
  }

  it("edited notes, system notes, bot-written notes and MR comments are not commands", async () => {
    const variants: Array<[string, RegExp]> = [
      [note((n) => Object.assign(n.object_attributes as object, { action: "update" })), /not a new comment/],
      [note((n) => Object.assign(n.object_attributes as object, { system: true })), /system notes/],
      [
        note((n) =>
          Object.assign(n.object_attributes as object, {
            note: "<!-- gitlab-entra-bot:status -->\n/entra onboard",
          }),
        ),
        /written by the bot/,
      ],
      [
        note((n) => Object.assign(n.object_attributes as object, { noteable_type: "MergeRequest" })),
        /MergeRequest/,
      ],
    ];
    for (const [body, reason] of variants) {
      const res = await post("Note Hook", body);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { reason: string }).reason).toMatch(reason);
    }
  });

  it("a project outside the policy scope is ignored", async () => {
    const body = fixtureJson("gitlab/system-hook-project_create.json");
    body.path_with_namespace = "excluded/thing";
    const before = await queue.count();
    const res = await post("System Hook", JSON.stringify(body));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/outside the policy scope/);
    expect(await queue.count()).toBe(before);
  });

  it("a Pipeline Hook whose jobs name no environment is ignored", async () => {
    const res = await post(
      "Pipeline Hook",
      JSON.stringify({ ...fixtureJson("gitlab/pipeline-hook.json"), builds: [] }),
    );
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/names no environment/);
  });
});

describe("authentication", () => {
  const body = () => fixtureText("gitlab/system-hook-project_create.json");

  it("accepts the current and the previous (rotated) secret", async () => {
    expect((await post("System Hook", body(), { "X-Gitlab-Token": SECRETS[0] as string })).status).toBe(202);
    expect((await post("System Hook", body(), { "X-Gitlab-Token": SECRETS[1] as string })).status).toBe(202);
  });

  it("rejects a wrong or missing token with 401 and a short reason that does not echo the secret", async () => {
    const wrong = await post("System Hook", body(), { "X-Gitlab-Token": "guess" });
    expect(wrong.status).toBe(401);
    const text = await wrong.text();
    expect(text).toMatch(/wrong X-Gitlab-Token/);
    expect(text).not.toContain(SECRETS[0]);
    const missing = await app.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "X-Gitlab-Event": "System Hook" },
      body: body(),
    });
    expect(missing.status).toBe(401);
    expect(await missing.text()).toMatch(/missing X-Gitlab-Token/);
  });

  function signedHeaders(raw: string, opts: { ts?: number; token?: string; id?: string } = {}) {
    const id = opts.id ?? key();
    const ts = opts.ts ?? Math.floor(Date.now() / 1000);
    return {
      "webhook-id": id,
      "webhook-timestamp": String(ts),
      "webhook-signature": signWebhook(opts.token ?? SIGNING, id, ts, raw),
      "Idempotency-Key": id,
      "X-Gitlab-Token": "",
    };
  }

  it("accepts a valid Standard Webhooks signature without X-Gitlab-Token", async () => {
    const raw = body();
    expect((await post("System Hook", raw, signedHeaders(raw), signedApp)).status).toBe(202);
  });

  it("rejects a signature by another key, over another body, or outside the 5 minute tolerance", async () => {
    const raw = body();
    const otherKey = `whsec_${Buffer.from("another key entirely, 32 bytes!!").toString("base64")}`;
    const byOther = await post("System Hook", raw, signedHeaders(raw, { token: otherKey }), signedApp);
    expect(byOther.status).toBe(401);
    const tampered = await post(
      "System Hook",
      raw.replace("storecloud", "st0recloud"),
      signedHeaders(raw),
      signedApp,
    );
    expect(tampered.status).toBe(401);
    const old = await post(
      "System Hook",
      raw,
      signedHeaders(raw, { ts: Math.floor(Date.now() / 1000) - 301 }),
      signedApp,
    );
    expect(old.status).toBe(401);
    expect(await old.text()).toMatch(/5 minutes/);
    const future = await post(
      "System Hook",
      raw,
      signedHeaders(raw, { ts: Math.floor(Date.now() / 1000) + 400 }),
      signedApp,
    );
    expect(future.status).toBe(401);
  });

  it("a present but invalid signature is not rescued by a valid token", async () => {
    const raw = body();
    const h = { ...signedHeaders(raw, { token: `whsec_${Buffer.from("x".repeat(32)).toString("base64")}` }) };
    h["X-Gitlab-Token"] = SECRETS[0] as string;
    expect((await post("System Hook", raw, h, signedApp)).status).toBe(401);
  });

  it("a source with signing tokens refuses its unsigned deliveries, even with the right secret", async () => {
    const res = await post("System Hook", body(), {}, signedApp);
    expect(res.status).toBe(401);
    expect(await res.text()).toMatch(/signs its deliveries/);
  });

  it("a source without signing tokens ignores a signature by a key it was never given", async () => {
    const raw = body();
    const h = signedHeaders(raw, { token: `whsec_${Buffer.from("y".repeat(32)).toString("base64")}` });
    h["X-Gitlab-Token"] = SECRETS[0] as string;
    expect((await post("System Hook", raw, h)).status).toBe(202);
  });
});

describe("bad bodies", () => {
  it("413 above the body limit, before anything is parsed", async () => {
    const big = JSON.stringify({ event_name: "project_create", padding: "x".repeat(LIMIT) });
    const res = await post("System Hook", big);
    expect(res.status).toBe(413);
  });

  it("413 for a chunked body that grows past the limit", async () => {
    const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await app.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "X-Gitlab-Event": "System Hook", "X-Gitlab-Token": SECRETS[0] as string },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
  });

  it("400 for non-JSON and for invalid UTF-8", async () => {
    const res = await post("System Hook", "{not json");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/not valid JSON/);
    const bad = await app.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "X-Gitlab-Event": "System Hook", "X-Gitlab-Token": SECRETS[0] as string },
      body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { reason: string }).reason).toMatch(/UTF-8/);
  });

  it("a relevant event lacking a field the bot needs is acknowledged, ignored with the field named, never 400", async () => {
    const body = fixtureJson("gitlab/system-hook-project_create.json");
    body.project_id = "seventy-four";
    const before = await queue.count();
    const res = await post("System Hook", JSON.stringify(body));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/project_create lacks .*project_id/);

    const deployment = await post("Deployment Hook", fixtureText("gitlab/note-hook-issue.json"));
    expect(deployment.status).toBe(200);
    expect(((await deployment.json()) as { reason: string }).reason).toMatch(/names no environment/);
    expect(await queue.count()).toBe(before);
  });

  it("a missing X-Gitlab-Event header and a JSON body that is no object are ignored with a reason", async () => {
    const res = await app.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "X-Gitlab-Token": SECRETS[0] as string },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/no X-Gitlab-Event/);
    for (const json of ["[]", "null", "42", '"x"']) {
      const r = await post("System Hook", json);
      expect(r.status, json).toBe(200);
      expect(((await r.json()) as { reason: string }).reason).toMatch(/not a JSON object/);
    }
  });

  it("extra unknown fields are tolerated", async () => {
    const body = {
      ...fixtureJson("gitlab/system-hook-project_create.json"),
      brand_new_field: { nested: [1, 2] },
    };
    expect((await post("System Hook", JSON.stringify(body))).status).toBe(202);
  });
});

describe("deduplication", () => {
  const body = () => fixtureText("gitlab/group-hook-project_create.json");

  it("the same Idempotency-Key delivered three times in a row yields one job", async () => {
    const k = key();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await post("Project Hook", body(), { "Idempotency-Key": k }));
    expect(answers.map((r) => r.status)).toEqual([202, 200, 200]);
    const json = (await Promise.all(answers.map((r) => r.json()))) as Array<{
      jobId: string;
      duplicate?: boolean;
    }>;
    expect(json[1]?.duplicate).toBe(true);
    expect(new Set(json.map((j) => j.jobId)).size).toBe(1);
  });

  it("20 concurrent deliveries with one key make exactly one job in Redis", async () => {
    const k = key();
    const before = await queue.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed");
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => post("Project Hook", body(), { "Idempotency-Key": k })),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    const ids = new Set(
      ((await Promise.all(answers.map((r) => r.json()))) as Array<{ jobId: string }>).map((j) => j.jobId),
    );
    expect(ids.size).toBe(1);
    const after = await queue.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed");
    expect(after - before).toBe(1);
  });

  it("falls back to X-Gitlab-Event-UUID when there is no Idempotency-Key", async () => {
    const uuid = key();
    const send = () =>
      app.request("/webhooks/gitlab", {
        method: "POST",
        headers: {
          "X-Gitlab-Event": "Project Hook",
          "X-Gitlab-Token": SECRETS[0] as string,
          "X-Gitlab-Event-UUID": uuid,
        },
        body: body(),
      });
    expect((await send()).status).toBe(202);
    expect((await send()).status).toBe(200);
  });

  it("different keys make different jobs", async () => {
    const a = (await (await post("Project Hook", body())).json()) as { jobId: string };
    const b = (await (await post("Project Hook", body())).json()) as { jobId: string };
    expect(a.jobId).not.toBe(b.jobId);
  });
});

describe("one GitLab instance: X-Gitlab-Instance is never a trust signal", () => {
  const body = () => fixtureText("gitlab/system-hook-project_create.json");

  it("our instance (GITLAB_URL, any case, trailing slash) or no header: accepted; the header never reaches job data", async () => {
    for (const instance of [undefined, "https://gitlab.example.com", "https://GitLab.example.com/"]) {
      const res = await post("System Hook", body(), instance ? { "X-Gitlab-Instance": instance } : {});
      expect(res.status, String(instance)).toBe(202);
      const { jobId } = (await res.json()) as { jobId: string };
      const raw = JSON.stringify(await redis.hgetall(`${prefix}:${QUEUES.events}:${jobId}`));
      expect(raw).not.toMatch(/"instance"/);
      expect(raw).not.toContain("GitLab.example.com");
    }
  });

  it("another instance: acknowledged 2xx as ignored with a reason (not 401), nothing enqueued", async () => {
    const before = await queue.count();
    const res = await post("System Hook", body(), {
      "X-Gitlab-Instance": "https://other-gitlab.example.org",
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/another GitLab instance/);
    expect(await queue.count()).toBe(before);
  });

  it("the header grants nothing: our instance's name with a wrong secret is still 401", async () => {
    const res = await post("System Hook", body(), {
      "X-Gitlab-Instance": "https://gitlab.example.com",
      "X-Gitlab-Token": "guess",
    });
    expect(res.status).toBe(401);
  });
});

describe("job data carries no secret", () => {
  it("neither the webhook secret nor the signature reaches Redis", async () => {
    const res = await post("System Hook", fixtureText("gitlab/system-hook-project_create.json"));
    const { jobId } = (await res.json()) as { jobId: string };
    const raw = await redis.hgetall(`${prefix}:${QUEUES.events}:${jobId}`);
    const dump = JSON.stringify(raw);
    expect(dump).toContain("jsmith/storecloud");
    for (const s of [...SECRETS, SIGNING]) expect(dump).not.toContain(s);
  });
});
