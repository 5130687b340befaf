import { connect } from "node:net";
import { Writable } from "node:stream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import { type Service, startService } from "../../src/service.ts";
import { baseConfig } from "../helpers/config.ts";
import { fixtureJson } from "../helpers/fixtures.ts";
import { testPolicy } from "../helpers/policy.ts";
import { deletePrefix, uniquePrefix } from "../helpers/redis.ts";

/**
 * Hostile input at the intake, in process (app.request) for volume and over a real socket for timeouts.
 * Every answer must be 2xx or 4xx with a reason; never 5xx, never an unhandled error, memory bounded.
 */
const SECRET = "fuzz-secret-0123456789abcdef";
const INSTANCE = "https://gitlab.example.com";
const LIMIT = 256 * 1024;
let service: Service;
let prefix: string;
const logLines: string[] = [];

beforeAll(async () => {
  prefix = uniquePrefix("fuzz");
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  service = await startService({
    config: baseConfig({
      role: "api",
      queuePrefix: prefix,
      bodyLimitBytes: LIMIT,
      gitlab: { ...baseConfig().gitlab, webhookSecrets: [SECRET], instances: [] },
      http: { headersTimeoutMs: 400, requestTimeoutMs: 800 },
    }),
    policy: testPolicy(),
    logger: createLogger("warn", sink),
  });
});
afterAll(async () => {
  await service?.close();
  await deletePrefix(prefix);
});

const EVENTS = [
  "System Hook",
  "Project Hook",
  "Note Hook",
  "Confidential Note Hook",
  "Deployment Hook",
  "Pipeline Hook",
  "Job Hook",
  "Issue Hook",
  "Push Hook",
  "",
  "Syst\u00e8m Hook",
];
const FIXTURES: Array<[string, unknown]> = [
  ["System Hook", fixtureJson("gitlab/system-hook-project_create.json")],
  ["System Hook", fixtureJson("gitlab/system-hook-project_destroy.json")],
  ["System Hook", fixtureJson("gitlab/system-hook-project_rename.json")],
  ["System Hook", fixtureJson("gitlab/system-hook-project_transfer.json")],
  ["System Hook", fixtureJson("gitlab/system-hook-group_rename.json")],
  ["Note Hook", fixtureJson("gitlab/note-hook-issue.json")],
  ["Deployment Hook", fixtureJson("gitlab/deployment-hook.json")],
  ["Pipeline Hook", fixtureJson("gitlab/pipeline-hook.json")],
  ["Project Hook", fixtureJson("gitlab/group-hook-project_create.json")],
];

const counts = { cases: 0, byStatus: new Map<number, number>() };

async function deliver(event: string, body: string | Uint8Array, instance = INSTANCE) {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    "X-Gitlab-Token": SECRET,
    "X-Gitlab-Instance": instance,
  };
  if (event) headers["X-Gitlab-Event"] = event;
  const app = service.app;
  if (!app) throw new Error("no app");
  const res = await app.request("/webhooks/gitlab", { method: "POST", headers, body });
  const text = await res.text();
  counts.cases++;
  counts.byStatus.set(res.status, (counts.byStatus.get(res.status) ?? 0) + 1);
  return { status: res.status, text };
}

/** The property every answer must have. */
function judge(r: { status: number; text: string }): boolean {
  if (r.status >= 500 || r.status < 200 || (r.status >= 300 && r.status < 400)) return false;
  const body = JSON.parse(r.text) as Record<string, unknown>;
  if (r.status === 202) return typeof body.jobId === "string";
  // 200 = ignored (with a reason) or duplicate; 4xx always says why.
  return typeof body.reason === "string" || body.duplicate === true;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A JSON path mutation: replace, delete, or plant a hostile key somewhere in the fixture. */
const mutation = fc.record({
  where: fc.nat(),
  op: fc.constantFrom("replace", "delete", "pollute", "huge", "nest"),
  value: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(-1, 0, 1e308, "", "../../etc", "main\n", true, null, [], {}),
  ),
});

function mutate(doc: unknown, m: { where: number; op: string; value: unknown }): unknown {
  const clone = doc as Json; // a fresh JSON.parse result, ours to change
  const containers: Array<{ [k: string]: Json } | Json[]> = [];
  const walk = (v: Json, depth = 0) => {
    if (v && typeof v === "object" && depth < 30) {
      containers.push(v);
      for (const c of Object.values(v)) walk(c as Json, depth + 1);
    }
  };
  walk(clone);
  const target = containers[m.where % containers.length] as Record<string, unknown>;
  const keys = Object.keys(target);
  const key = keys.length ? (keys[m.where % keys.length] as string) : "x";
  switch (m.op) {
    case "replace":
      target[key] = m.value;
      break;
    case "delete":
      delete target[key];
      break;
    case "huge":
      target[key] = "A".repeat(100_000 + (m.where % 1000));
      break;
    case "nest": {
      let deep: unknown = m.value;
      for (let i = 0; i < 2_000; i++) deep = [deep];
      target[key] = deep;
      break;
    }
  }
  let text = JSON.stringify(clone);
  if (m.op === "pollute") {
    // JSON.stringify drops __proto__ set by assignment: write the hostile keys into the text itself.
    const hostile = `"__proto__":{"polluted":true,"isAdmin":true},"constructor":{"prototype":{"polluted":true}},`;
    text = text.replace(/\{/, `{${hostile}`);
  }
  return text;
}

describe("property-based fuzzing of POST /webhooks/gitlab", () => {
  it("random, mutated and malformed deliveries: every answer is 2xx/4xx with a reason; no crash, no pollution, bounded heap", async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    const errorsBefore = logLines.filter((l) => l.includes("unhandled error")).length;

    // 1. Random JSON documents under every event name.
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...EVENTS), fc.jsonValue({ maxDepth: 4 }), async (event, doc) =>
        judge(await deliver(event, JSON.stringify(doc))),
      ),
      { numRuns: 1200 },
    );
    // 2. Real fixtures with one or more mutations (wrong types, missing fields, huge strings, deep nesting,
    //    prototype-pollution keys).
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FIXTURES),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        async ([event, doc], ms) => {
          let text = JSON.stringify(doc);
          for (const m of ms) text = mutate(JSON.parse(text), m) as string;
          return judge(await deliver(event, text));
        },
      ),
      { numRuns: 1500 },
    );
    // 3. Raw bytes: invalid UTF-8, truncated JSON, binary noise.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FIXTURES),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.nat(),
        async ([event, doc], noise, cut) => {
          const good = new TextEncoder().encode(JSON.stringify(doc));
          const at = cut % (good.length + 1);
          const bytes = new Uint8Array([...good.slice(0, at), 0xc3, 0x28, 0xff, ...noise, ...good.slice(at)]);
          return judge(await deliver(event, bytes));
        },
      ),
      { numRuns: 800 },
    );
    // 4. Fixed hostile shapes.
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const deepObj = `${'{"a":'.repeat(50_000)}1${"}".repeat(50_000)}`;
    for (const [event, body] of [
      ["System Hook", deep],
      ["Note Hook", deepObj],
      ["System Hook", "A".repeat(LIMIT + 1)],
      ["System Hook", '{"__proto__":{"polluted":1},"event_name":"project_create"}'],
      ["System Hook", '{"event_name":"project_create","project_id":"74","path_with_namespace":["a"]}'],
      ["System Hook", "null"],
      ["System Hook", ""],
    ] as const) {
      expect(judge(await deliver(event, body))).toBe(true);
    }

    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(logLines.filter((l) => l.includes("unhandled error")).length).toBe(errorsBefore);
    const health = await service.app?.request("/healthz");
    expect(health?.status).toBe(200);
    (globalThis as { gc?: () => void }).gc?.();
    const heapAfter = process.memoryUsage().heapUsed;
    const growthMb = (heapAfter - heapBefore) / 1024 / 1024;
    expect(growthMb).toBeLessThan(96);
    const byStatus = Object.fromEntries([...counts.byStatus.entries()].sort((a, b) => a[0] - b[0]));
    console.info(
      `[reliability] intake fuzz: ${counts.cases} cases, statuses ${JSON.stringify(byStatus)}, heap ${growthMb.toFixed(1)} MB growth`,
    );
    // ~3,500 cases are CPU work (about 10 s on an idle box): the guard allows a loaded 2-core CI machine.
  }, 120_000);

  it("X-Gitlab-Instance is no trust signal: another instance is ignored (2xx) with a reason, a missing one accepted", async () => {
    const [event, doc] = FIXTURES[0] as [string, unknown];
    for (const instance of [
      "https://evil.example.com",
      "https://gitlab.example.com.evil.example",
      "not a url",
    ]) {
      const r = await deliver(event, JSON.stringify(doc), instance);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text).reason).toMatch(/X-Gitlab-Instance names another GitLab instance/);
    }
    for (const instance of ["", "https://gitlab.example.com/", "HTTPS://GITLAB.EXAMPLE.COM"]) {
      expect((await deliver(event, JSON.stringify(doc), instance)).status, instance).toBe(202);
    }
    // A wrong instance header never rescues a wrong secret.
    const app = service.app;
    const res = await app?.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "X-Gitlab-Event": event, "X-Gitlab-Token": "wrong", "X-Gitlab-Instance": INSTANCE },
      body: JSON.stringify(doc),
    });
    expect(res?.status).toBe(401);
  });
});

describe("slow-loris", () => {
  /** Sends `head` then drips `drip` one byte per interval; resolves with how the socket ended. */
  function slowClient(head: string, drip: string, intervalMs: number) {
    return new Promise<{ closedByServer: boolean; sent: number; total: number; answer: string }>(
      (resolve) => {
        const url = new URL(service.url as string);
        const socket = connect(Number(url.port), url.hostname);
        let sent = 0;
        let answer = "";
        let timer: NodeJS.Timeout | undefined;
        const finish = (closedByServer: boolean) => {
          clearInterval(timer);
          socket.destroy();
          resolve({ closedByServer, sent, total: drip.length, answer });
        };
        socket.on("data", (d) => {
          answer += d.toString();
        });
        socket.on("close", () => finish(true));
        socket.on("error", () => finish(true));
        socket.on("connect", () => {
          socket.write(head);
          timer = setInterval(() => {
            if (sent >= drip.length) return finish(false);
            socket.write(drip[sent] as string);
            sent++;
          }, intervalMs);
        });
      },
    );
  }

  it("headers sent byte by byte: the server closes the socket (headersTimeout)", async () => {
    const drip = `X-Gitlab-Token: ${SECRET}\r\nX-Gitlab-Event: System Hook\r\nContent-Length: 2\r\n\r\n{}`;
    const r = await slowClient("POST /webhooks/gitlab HTTP/1.1\r\nHost: bot\r\n", drip, 50);
    expect(r.closedByServer).toBe(true);
    expect(r.sent).toBeLessThan(r.total);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    console.info(`[reliability] slow-loris headers: cut off after ${r.sent}/${r.total} bytes (408)`);
  });

  it("a body sent byte by byte: the server closes the socket (requestTimeout)", async () => {
    const body = JSON.stringify(FIXTURES[0]?.[1]);
    const head = `POST /webhooks/gitlab HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nX-Gitlab-Token: ${SECRET}\r\nX-Gitlab-Event: System Hook\r\nX-Gitlab-Instance: ${INSTANCE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    const r = await slowClient(head, body, 40);
    expect(r.closedByServer).toBe(true);
    expect(r.sent).toBeLessThan(r.total);
    console.info(`[reliability] slow-loris body: cut off after ${r.sent}/${r.total} bytes`);
  });
});
