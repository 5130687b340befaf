import { Queue, Worker } from "bullmq";
import type { Hono } from "hono";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminRoutes } from "../../src/http/admin.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * The admin UI cannot be driven from another site and cannot forge work. A browser replays cached Basic
 * credentials on a cross-site form post (text/plain, no preflight): the token alone does not stop it.
 */
const ADMIN = "admin-token-csrf-0123456789abcdef";
const prefix = uniquePrefix("csrf");
const connection = { url: TEST_REDIS_URL };
const QUEUE = "csrf-events";

let redis: Redis;
let queue: Queue;
let app: Hono;
let behindProxy: Hono;
const basic = { Authorization: `Basic ${Buffer.from(`ops:${ADMIN}`).toString("base64")}` };

async function failedJob(): Promise<string> {
  const worker = new Worker(
    QUEUE,
    async () => {
      throw new Error("boom");
    },
    { connection, prefix },
  );
  const failed = new Promise<string>((resolve) => worker.on("failed", (job) => resolve(job?.id ?? "")));
  await queue.add("project.created", { intent: { type: "project.created" } }, { attempts: 1 });
  const id = await failed;
  await worker.close();
  return id;
}

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  queue = new Queue(QUEUE, { connection, prefix });
  const audit = new AuditLog(redis, { key: `${prefix}:audit` });
  app = createAdminRoutes({ queues: [queue], adminToken: ADMIN, basePath: "/admin", audit });
  behindProxy = createAdminRoutes({
    queues: [queue],
    adminToken: ADMIN,
    basePath: "/admin",
    audit,
    publicOrigin: "https://entra-bot.example.com",
  });
});
afterAll(async () => {
  await queue.close();
  await redis.quit();
  await deletePrefix(prefix);
});

const pausePath = `/admin/queues/api/queues/${QUEUE}/pause`;

describe("cross-site requests are refused", () => {
  it("a cross-site form POST (text/plain, cached Basic credentials, no Origin nor Sec-Fetch-Site) changes nothing", async () => {
    // What <form method=post enctype=text/plain action=".../add"> on another site makes a browser send when
    // it holds Basic credentials for this origin (old browsers omit Origin and Sec-Fetch-*).
    const before = await queue.count();
    const res = await app.request(`/admin/queues/api/queues/${QUEUE}/add`, {
      method: "POST",
      headers: { ...basic, "Content-Type": "text/plain" },
      body: '{"name":"project.moved","data":{"intent":{"type":"project.moved"}}}',
    });
    expect(res.status).toBe(403);
    expect(await queue.count()).toBe(before);
  });

  it("missing Origin and Sec-Fetch-Site, a wrong Origin, or a cross-site fetch: 403, queue not paused", async () => {
    for (const headers of [
      {},
      { Origin: "https://evil.example" },
      { Origin: "http://localhost.evil.example" },
      { Origin: "null" },
      { "Sec-Fetch-Site": "cross-site" },
      { "Sec-Fetch-Site": "same-site" },
      { "Sec-Fetch-Site": "none" },
      { "Sec-Fetch-Site": "same-origin", Origin: "https://evil.example" },
      { "Sec-Fetch-Site": "cross-site", Origin: "http://localhost" },
    ]) {
      const res = await app.request(pausePath, { method: "PUT", headers: { ...basic, ...headers } });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(await queue.isPaused()).toBe(false);
    }
  });

  it("an unsafe request with a body that is not JSON is refused even from the same origin", async () => {
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "",
    ]) {
      const res = await app.request(pausePath, {
        method: "PUT",
        headers: { ...basic, "Sec-Fetch-Site": "same-origin", ...(type ? { "Content-Type": type } : {}) },
        body: "{}",
      });
      expect(res.status, type).toBe(403);
    }
    expect(await queue.isPaused()).toBe(false);
  });

  it("same-origin JSON works: retry by Sec-Fetch-Site, pause and resume by Origin", async () => {
    const id = await failedJob();
    const retry = await app.request(`/admin/queues/api/queues/${QUEUE}/${id}/retry`, {
      method: "PUT",
      headers: { ...basic, "Sec-Fetch-Site": "same-origin" },
    });
    expect(retry.status).toBe(204);
    expect(await (await queue.getJob(id))?.getState()).toBe("waiting");
    const pause = await app.request(pausePath, {
      method: "PUT",
      headers: { ...basic, Origin: "http://localhost", "Content-Type": "application/json" },
      body: "{}",
    });
    expect(pause.status).toBe(200);
    expect(await queue.isPaused()).toBe(true);
    const resume = await app.request(`/admin/queues/api/queues/${QUEUE}/resume`, {
      method: "PUT",
      headers: { ...basic, Origin: "http://LOCALHOST" },
    });
    expect(resume.status).toBe(200);
    expect(await queue.isPaused()).toBe(false);
  });

  it("behind a proxy, PUBLIC_URL is the origin: the Host header no longer decides", async () => {
    const wrong = await behindProxy.request(pausePath, {
      method: "PUT",
      headers: { ...basic, Origin: "http://localhost" },
    });
    expect(wrong.status).toBe(403);
    const right = await behindProxy.request(pausePath, {
      method: "PUT",
      headers: { ...basic, Origin: "https://entra-bot.example.com" },
    });
    expect(right.status).toBe(200);
    await queue.resume();
  });
});

describe("the queue UI cannot forge work", () => {
  const sameOrigin = {
    ...basic,
    "Sec-Fetch-Site": "same-origin",
    Origin: "http://localhost",
    "Content-Type": "application/json",
  };

  it("adding a job through Bull Board's API is refused for the admin token, same origin and JSON", async () => {
    const before = await queue.getJobCountByTypes("waiting", "delayed", "prioritized");
    const res = await app.request(`/admin/queues/api/queues/${QUEUE}/add`, {
      method: "POST",
      headers: sameOrigin,
      body: JSON.stringify({
        name: "project.moved",
        data: {
          intent: {
            type: "project.moved",
            project: { id: 1, path: "attacker/x" },
            oldPath: "victim/x",
            how: "rename",
          },
        },
        options: {},
      }),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { message: string }).message).toMatch(/Adding jobs/);
    expect(await queue.getJobCountByTypes("waiting", "delayed", "prioritized")).toBe(before);
  });

  it("editing a job's data, delay or priority is refused and the job is unchanged", async () => {
    const job = await queue.add(
      "project.created",
      { intent: { project: { id: 7, path: "g/p" } } },
      { delay: 60_000 },
    );
    for (const [method, path, body] of [
      [
        "PATCH",
        `/admin/queues/api/queues/${QUEUE}/${job.id}/update-data`,
        { jobData: { intent: { project: { id: 8 } } } },
      ],
      ["PATCH", `/admin/queues/api/queues/${QUEUE}/${job.id}/delay`, { delay: 0 }],
      ["PATCH", `/admin/queues/api/queues/${QUEUE}/${job.id}/priority`, { priority: 1 }],
      ["PUT", `/admin/queues/api/queues/${QUEUE}/concurrency`, { concurrency: 1 }],
    ] as const) {
      const res = await app.request(path, { method, headers: sameOrigin, body: JSON.stringify(body) });
      expect(res.status, path).toBe(403);
    }
    const after = await queue.getJob(job.id as string);
    expect(after?.data).toEqual({ intent: { project: { id: 7, path: "g/p" } } });
    expect(await after?.getState()).toBe("delayed");
    // Promote stays.
    const promote = await app.request(`/admin/queues/api/queues/${QUEUE}/${job.id}/promote`, {
      method: "PUT",
      headers: sameOrigin,
    });
    expect(promote.status).toBe(204);
    expect(await (await queue.getJob(job.id as string))?.getState()).not.toBe("delayed");
  });
});
