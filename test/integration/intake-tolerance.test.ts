import { readdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import fc from "fast-check";
import type { Hono } from "hono";
import type { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/env.ts";
import { createApp } from "../../src/http/app.ts";
import { createProducerConnection } from "../../src/queue/connection.ts";
import { eventJobSchema } from "../../src/queue/jobs.ts";
import { QUEUES } from "../../src/queue/names.ts";
import { createGitLabDriver } from "../../src/sandbox/gitlab-driver.ts";
import { startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";
import { trustSandboxCa } from "../../src/sandbox/tls.ts";
import { fixtureJson } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * Tolerant intake: everything GitLab may send answers 2xx (accepted, or ignored with a reason). GitLab counts
 * every 4xx as a failed delivery and disables the hook, which would silence slash commands and onboarding.
 */
const SECRET = "tolerance-secret-0123456789";
const config = loadConfig({ GITLAB_WEBHOOK_SECRETS: SECRET }, "api");
let prefix: string;
let redis: Redis;
let queue: Queue;
let app: Hono;
let n = 0;

beforeAll(async () => {
  prefix = uniquePrefix("tolerance");
  redis = createProducerConnection(TEST_REDIS_URL);
  queue = new Queue(QUEUES.events, { connection: redis, prefix });
  // The default body limit, as an operator gets it.
  app = createApp({
    config: { bodyLimitBytes: config.bodyLimitBytes, gitlab: config.gitlab },
    policy: testPolicy(),
    queue,
    redis,
    logger: pino({ level: "silent" }),
  });
});
afterAll(async () => {
  await queue.close();
  await redis.quit();
  await deletePrefix(prefix);
});

async function deliver(event: string, body: string) {
  n += 1;
  const res = await app.request("/webhooks/gitlab", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Gitlab-Event": event,
      "X-Gitlab-Token": SECRET,
      "Idempotency-Key": `${prefix}-${n}`,
    },
    body,
  });
  const json = (await res.json()) as { jobId?: string; ignored?: boolean; reason?: string };
  const intent = json.jobId ? eventJobSchema.parse((await queue.getJob(json.jobId))?.data).intent : undefined;
  return { status: res.status, json, intent };
}

/** Where X-Gitlab-Event comes from for each shipped webhook payload (the API responses are not payloads). */
const EVENT_OF_FIXTURE: Record<string, string> = {
  "system-hook-project_create.json": "System Hook",
  "system-hook-project_destroy.json": "System Hook",
  "system-hook-project_rename.json": "System Hook",
  "system-hook-project_transfer.json": "System Hook",
  "system-hook-project_update.json": "System Hook",
  "system-hook-group_rename.json": "System Hook",
  "group-hook-project_create.json": "Project Hook",
  "group-hook-subgroup_create.json": "Subgroup Hook",
  "note-hook-issue.json": "Note Hook",
  "issue-hook.json": "Issue Hook",
  "pipeline-hook.json": "Pipeline Hook",
  "deployment-hook.json": "Deployment Hook",
  "job-hook.json": "Job Hook",
};
const NOT_PAYLOADS = /^(api-|azure-|entra-|id-token-|webhook-request-headers)/;

/**
 * The fields the bot reads, per event (written from GitLab's documents, not from the code): everything else
 * may be missing or null. A read field's ancestors are kept too.
 */
const READS: Record<string, string[]> = {
  "System Hook": [
    "event_name",
    "object_kind",
    "project_id",
    "path_with_namespace",
    "old_path_with_namespace",
    "group_id",
    "full_path",
    "old_full_path",
    "user_id",
    "username",
    "old_username",
  ],
  "Project Hook": ["event_name", "project_id", "path_with_namespace"],
  "Note Hook": [
    "object_attributes.noteable_type",
    "object_attributes.system",
    "object_attributes.action",
    "object_attributes.note",
    "object_attributes.id",
    "project.id",
    "project.path_with_namespace",
    "issue.iid",
    "issue.confidential",
    "user.id",
    "user.username",
  ],
  "Confidential Note Hook": [
    "object_attributes.noteable_type",
    "object_attributes.system",
    "object_attributes.action",
    "object_attributes.note",
    "object_attributes.id",
    "project.id",
    "project.path_with_namespace",
    "issue.iid",
    "issue.confidential",
    "user.id",
    "user.username",
  ],
  "Deployment Hook": [
    "environment",
    "environment_tier",
    "ref",
    "project.id",
    "project.path_with_namespace",
    "user.id",
    "user.username",
  ],
  "Pipeline Hook": [
    "builds.*.environment.name",
    "builds.*.environment.deployment_tier",
    "object_attributes.ref",
    "project.id",
    "project.path_with_namespace",
    "user.id",
    "user.username",
  ],
  "Job Hook": [
    "environment.name",
    "environment.deployment_tier",
    "ref",
    "project.id",
    "project.path_with_namespace",
    "user.id",
    "user.username",
  ],
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path in the document (objects and arrays included), as segments; array indexes as numbers. */
function allPaths(doc: Json, at: Array<string | number> = []): Array<Array<string | number>> {
  if (doc === null || typeof doc !== "object") return [];
  const entries: Array<[string | number, Json]> = Array.isArray(doc)
    ? doc.map((v, i) => [i, v])
    : Object.entries(doc);
  return entries.flatMap(([k, v]) => [[...at, k], ...allPaths(v, [...at, k])]);
}

function isRead(path: Array<string | number>, reads: string[]): boolean {
  const dotted = path.map((p) => (typeof p === "number" ? "*" : p)).join(".");
  return reads.some((r) => r === dotted || r.startsWith(`${dotted}.`));
}

function strip(doc: Json, cuts: Array<{ path: Array<string | number>; op: "remove" | "null" }>): Json {
  const copy = structuredClone(doc);
  // Deepest first, so removing an array element never shifts a later cut's index.
  for (const { path, op } of [...cuts].sort(
    (a, b) => b.path.length - a.path.length || String(b.path).localeCompare(String(a.path)),
  )) {
    let parent: Json = copy;
    for (const seg of path.slice(0, -1)) {
      parent =
        parent && typeof parent === "object"
          ? ((parent as Record<string, Json>)[seg as string] ?? null)
          : null;
    }
    if (!parent || typeof parent !== "object") continue;
    const last = path[path.length - 1] as string | number;
    if (op === "null" || Array.isArray(parent)) (parent as Record<string, Json>)[last] = null;
    else delete (parent as Record<string, Json>)[last as string];
  }
  return copy;
}

/** What the sandbox's GitLab driver sends, captured by a stand-in for the bot. */
async function driverPayloads(): Promise<Array<[string, string, Json]>> {
  trustSandboxCa();
  const captured: Array<[string, string, Json]> = [];
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => {
      raw += d;
    });
    req.on("end", () => {
      const event = String(req.headers["x-gitlab-event"]);
      captured.push([`driver ${event}/${captured.length}`, event, JSON.parse(raw) as Json]);
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const users = [{ id: 2, username: "alice", name: "Alice" }];
  const gitlab = await startGitLabSimulator({ token: "t", botUser: { id: 99, username: "bot" }, users });
  try {
    const driver = createGitLabDriver({
      gitlab,
      botUrl: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      secret: "x",
    });
    const { project } = await driver.createProject("acme/app", { members: { 2: 40 } });
    const now = new Date().toISOString();
    gitlab.project(project.id)?.issues.push({
      id: 900_001,
      iid: 1,
      projectId: project.id,
      title: "t",
      description: "",
      state: "opened",
      labels: [],
      authorId: 2,
      confidential: false,
      createdAt: now,
      updatedAt: now,
      notes: [],
    });
    await driver.comment(project.id, 1, 2, "/entra onboard staging");
    await driver.deploy(project.id, "staging", { user: 2 });
    await driver.renameProject(project.id, "acme/app2");
    await driver.transferProject(project.id, "other/app2");
    await driver.renameGroup("other", "other2");
    await driver.deleteProject(project.id);
  } finally {
    await gitlab.close();
    await new Promise((r) => server.close(r));
  }
  return captured;
}

describe("property: removing or nulling fields the bot does not read never yields a 4xx or changes the outcome", () => {
  it("over every shipped GitLab payload fixture and every payload the sandbox driver sends", async () => {
    const dir = new URL("../fixtures/reference/gitlab/", import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith(".json") && !NOT_PAYLOADS.test(f));
    expect(
      files.filter((f) => !EVENT_OF_FIXTURE[f]),
      "a new payload fixture needs its event here",
    ).toEqual([]);
    const cases: Array<[string, string, Json]> = files.map((f) => [
      f,
      EVENT_OF_FIXTURE[f] as string,
      fixtureJson<Json>(`gitlab/${f}`),
    ]);
    // Variants that make the fixtures relevant: a comment holding a command, a job naming an environment.
    const note = fixtureJson<{ object_attributes: { note: string } }>("gitlab/note-hook-issue.json");
    note.object_attributes.note = "Please\n/entra onboard staging";
    cases.push(["note-hook-issue.json with a command", "Note Hook", note as unknown as Json]);
    cases.push(["note-hook-issue.json, confidential", "Confidential Note Hook", note as unknown as Json]);
    const job = fixtureJson<Record<string, Json>>("gitlab/job-hook.json");
    job.environment = { name: "review/x", action: "start", deployment_tier: "development" };
    cases.push(["job-hook.json with an environment", "Job Hook", job]);
    const driven = await driverPayloads();
    expect(driven.length).toBeGreaterThanOrEqual(7);
    cases.push(...driven);

    let runs = 0;
    const statuses = new Map<number, number>();
    for (const [label, event, doc] of cases) {
      const baseline = await deliver(event, JSON.stringify(doc));
      expect([200, 202], `${label}: baseline`).toContain(baseline.status);
      const reads = READS[event] ?? [];
      const candidates = allPaths(doc).filter((p) => !isRead(p, reads));
      if (candidates.length === 0) continue;
      await fc.assert(
        fc.asyncProperty(
          fc.subarray(candidates, { minLength: 1 }),
          fc.array(fc.boolean(), { minLength: candidates.length, maxLength: candidates.length }),
          async (paths, nulls) => {
            const mutated = strip(
              doc,
              paths.map((path, i) => ({ path, op: nulls[i] ? "null" : "remove" })),
            );
            const r = await deliver(event, JSON.stringify(mutated));
            runs++;
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
            expect(r.status, `${label}: ${JSON.stringify(paths)}`).toBe(baseline.status);
            expect(r.intent, label).toEqual(baseline.intent);
          },
        ),
        { numRuns: 25 },
      );
    }
    console.info(
      `[tolerance] ${cases.length} payloads, ${runs} stripped variants, statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
  });
});

describe("what real GitLab sends", () => {
  it("GitLab's documented Job Hook example answers 2xx; with an environment it becomes a first sight without actor", async () => {
    const doc = fixtureJson<Record<string, unknown>>("gitlab/job-hook.json");
    const plain = await deliver("Job Hook", JSON.stringify(doc));
    expect(plain.status).toBe(200);
    expect(plain.json.reason).toMatch(/names no environment/);
    const withEnv = await deliver(
      "Job Hook",
      JSON.stringify({ ...doc, environment: { name: "staging", action: "start" } }),
    );
    expect(withEnv.status).toBe(202);
    expect(withEnv.intent).toEqual({
      type: "environment.seen",
      project: { id: 380, path: "gitlab-org/gitlab-test" },
      environments: [{ name: "staging" }],
      ref: "gitlab-script-trigger",
      source: "job",
    });
    const data = eventJobSchema.parse((await queue.getJob(withEnv.json.jobId as string))?.data);
    expect(data.trigger.actor).toBeUndefined();
  });

  it("null and partial users, old Job Hooks without a project object, System Hook MR/push/tag events: all 2xx", async () => {
    const job = fixtureJson<Record<string, unknown>>("gitlab/job-hook.json");
    const env = { name: "staging", action: "start" };
    const cases: Array<[string, string, unknown, number, RegExp?]> = [
      ["job, user null", "Job Hook", { ...job, environment: env, user: null }, 202],
      ["job, user without id", "Job Hook", { ...job, environment: env, user: { name: "x" } }, 202],
      [
        "old job hook, no project object",
        "Job Hook",
        { ...job, environment: env, project: undefined },
        200,
        /lacks what the bot needs: project/,
      ],
      [
        "pipeline, user null",
        "Pipeline Hook",
        { ...fixtureJson<Record<string, unknown>>("gitlab/pipeline-hook.json"), user: null },
        202,
      ],
      [
        "deployment, user null",
        "Deployment Hook",
        { ...fixtureJson<Record<string, unknown>>("gitlab/deployment-hook.json"), user: null },
        202,
      ],
      [
        "deployment, no status",
        "Deployment Hook",
        { ...fixtureJson<Record<string, unknown>>("gitlab/deployment-hook.json"), status: undefined },
        202,
      ],
      [
        "note command, user null",
        "Note Hook",
        {
          ...fixtureJson<Record<string, unknown>>("gitlab/note-hook-issue.json"),
          user: null,
          object_attributes: {
            ...fixtureJson<{ object_attributes: object }>("gitlab/note-hook-issue.json").object_attributes,
            note: "/entra status",
          },
        },
        200,
        /cannot be authorised/,
      ],
      [
        "system hook merge request",
        "System Hook",
        { object_kind: "merge_request", user: { id: 1 }, object_attributes: { id: 1 } },
        200,
        /merge_request/,
      ],
      ["system hook push", "System Hook", { object_kind: "push", ref: "refs/heads/main" }, 200, /push/],
      ["system hook tag push", "System Hook", { object_kind: "tag_push" }, 200, /tag_push/],
      [
        "system hook repository_update",
        "System Hook",
        { event_name: "repository_update" },
        200,
        /repository_update/,
      ],
      ["empty object", "Note Hook", {}, 200, /not commands/],
    ];
    for (const [label, event, body, status, reason] of cases) {
      const r = await deliver(event, JSON.stringify(body));
      expect(r.status, label).toBe(status);
      if (reason) expect(r.json.reason, label).toMatch(reason);
    }
  });

  it(`a Note Hook at GitLab's limits (note of 1,000,000 characters carried twice, a 1 MiB issue description) fits the default body limit (${config.bodyLimitBytes} bytes)`, async () => {
    // Multi-byte text, a code block hiding a command, then the real command at the very end.
    const filler = "Lörem ipsum, ünd so weiter. ".repeat(35_700);
    const noteText = `${filler}\n\n\`\`\`\n/entra offboard production\n\`\`\`\n\n/entra onboard staging`;
    expect(noteText.length).toBeGreaterThan(999_000);
    expect(noteText.length).toBeLessThanOrEqual(1_000_000);
    const base = fixtureJson<Record<string, Record<string, unknown>>>("gitlab/note-hook-issue.json");
    const body = {
      ...base,
      object_attributes: { ...base.object_attributes, note: noteText, description: noteText },
      issue: { ...base.issue, description: "ß".repeat(1_048_576) },
    };
    const raw = JSON.stringify(body);
    expect(Buffer.byteLength(raw)).toBeGreaterThan(4_000_000);
    const r = await deliver("Note Hook", raw);
    expect(r.status).toBe(202);
    expect(r.intent).toMatchObject({ type: "command", line: "/entra onboard staging", issueIid: 17 });

    const quiet = {
      ...body,
      object_attributes: { ...body.object_attributes, note: filler, description: filler },
    };
    const ignoredHuge = await deliver("Note Hook", JSON.stringify(quiet));
    expect(ignoredHuge.status).toBe(200);
    expect(ignoredHuge.json.reason).toMatch(/no \/entra command/);
  });
});
