import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Queue, Worker } from "bullmq";
import type { Hono } from "hono";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminRoutes } from "../../src/http/admin.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const ADMIN = "admin-token-0123456789abcdef";
const VIEWER = "viewer-token-0123456789abcdef";
const prefix = uniquePrefix("admin");
const connection = { url: TEST_REDIS_URL };
const QUEUE = "ops-events";

let redis: Redis;
let queue: Queue;
let audit: AuditLog;
let app: Hono;
let failedJobId: string;
let staticJs: string;

const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });
const basic = (user: string, pass: string) => ({
  Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`,
});

async function makeFailedJob(name: string): Promise<string> {
  const worker = new Worker(
    QUEUE,
    async () => {
      throw new Error("Graph said 403: grant Application.ReadWrite.OwnedBy");
    },
    { connection, prefix, autorun: true },
  );
  const failed = new Promise<string>((resolve) => worker.on("failed", (job) => resolve(job?.id ?? "")));
  await queue.add(name, { project: 1 }, { attempts: 1 });
  const id = await failed;
  await worker.close();
  return id;
}

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  queue = new Queue(QUEUE, { connection, prefix });
  audit = new AuditLog(redis, { key: `${prefix}:audit` });
  app = createAdminRoutes({
    queues: [queue],
    adminToken: ADMIN,
    viewerToken: VIEWER,
    basePath: "/admin",
    audit,
  });
  failedJobId = await makeFailedJob("project.created");
  // The hashed bundle name changes with every Bull Board release: find the current one.
  const uiDist = join(dirname(createRequire(import.meta.url).resolve("@bull-board/ui/package.json")), "dist");
  const js = readdirSync(join(uiDist, "static/js")).find((f) => f.startsWith("main.") && f.endsWith(".js"));
  if (!js) throw new Error("Bull Board UI bundle not found");
  staticJs = `/admin/queues/static/js/${js}`;
});

afterAll(async () => {
  await queue.close();
  await redis.quit();
  await deletePrefix(prefix);
});

describe("admin auth", () => {
  it("refuses every admin path without credentials, with a Basic challenge and secure headers", async () => {
    for (const path of [
      "/admin",
      "/admin/",
      "/admin/queues",
      "/admin/queues/queue/ops-events",
      "/admin/queues/api/queues",
      staticJs,
      "/admin/queues/static/images/logo.svg",
      "/admin/audit",
      "/admin/nonexistent",
    ]) {
      const res = await app.request(path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get("www-authenticate"), path).toContain('Basic realm="gitlab-entra-bot admin"');
      expect(res.headers.get("content-security-policy"), path).toContain("default-src 'none'");
      expect(await res.text(), path).not.toContain(ADMIN);
    }
    const put = await app.request(`/admin/queues/api/queues/${QUEUE}/pause`, { method: "PUT" });
    expect(put.status).toBe(401);
  });

  it("refuses wrong tokens and malformed headers", async () => {
    for (const headers of [
      bearer("wrong-token-0123456789abcdef"),
      bearer(`${ADMIN}x`),
      bearer(ADMIN.slice(0, -1)),
      basic("admin", "nope"),
      basic(ADMIN, ""),
      { Authorization: ADMIN },
      { Authorization: `Token ${ADMIN}` },
      { Authorization: "Basic !!!notbase64" },
    ]) {
      const res = await app.request("/admin/queues/api/queues", { headers });
      expect(res.status, headers.Authorization).toBe(401);
    }
  });

  it("accepts the admin token as Bearer and as Basic password (any user)", async () => {
    for (const headers of [bearer(ADMIN), basic("anyone", ADMIN), basic("", ADMIN)]) {
      const res = await app.request("/admin/queues/api/queues", { headers });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { queues: { name: string }[] };
      expect(body.queues.map((q) => q.name)).toContain(QUEUE);
    }
  });

  it("serves the UI page and its static assets only with a token", async () => {
    const page = await app.request("/admin/queues", { headers: bearer(ADMIN) });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<base href="/admin/queues/"');
    expect(html).toContain(staticJs.replace("/admin/queues/", ""));
    expect(page.headers.get("cache-control")).toBe("no-store");

    const asset = await app.request(staticJs, { headers: basic("ops", VIEWER) });
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toContain("javascript");
    expect((await asset.text()).length).toBeGreaterThan(1000);

    const deepLink = await app.request(`/admin/queues/queue/${QUEUE}`, { headers: bearer(VIEWER) });
    expect(deepLink.status).toBe(200);
    expect(await deepLink.text()).toContain("gitlab-entra-bot (read-only)");
  });

  it("sets a CSP with strict scripts and the other secure headers on admin responses", async () => {
    const res = await app.request("/admin/queues", { headers: bearer(ADMIN) });
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("object-src 'none'");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  });

  it("returns 404 (after auth) for unknown admin paths", async () => {
    const res = await app.request("/admin/what", { headers: bearer(ADMIN) });
    expect(res.status).toBe(404);
  });
});

describe("viewer is read-only", () => {
  it("can read queues and jobs", async () => {
    const res = await app.request(`/admin/queues/api/queues/${QUEUE}/${failedJobId}`, {
      headers: bearer(VIEWER),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { job: { id: string; failedReason: string }; status: string };
    expect(body.status).toBe("failed");
    expect(body.job.failedReason).toContain("Application.ReadWrite.OwnedBy");
    const list = await app.request("/admin/queues/api/queues", { headers: bearer(VIEWER) });
    const queues = ((await list.json()) as { queues: { name: string; readOnlyMode: boolean }[] }).queues;
    expect(queues.find((q) => q.name === QUEUE)?.readOnlyMode).toBe(true);
  });

  it("gets 403 for retry, pause, clean, promote and add, and nothing changes", async () => {
    for (const [method, path] of [
      ["PUT", `/admin/queues/api/queues/${QUEUE}/${failedJobId}/retry`],
      ["PUT", `/admin/queues/api/queues/${QUEUE}/retry/failed`],
      ["PUT", `/admin/queues/api/queues/${QUEUE}/pause`],
      ["PUT", "/admin/queues/api/queues/pause"],
      ["PUT", `/admin/queues/api/queues/${QUEUE}/clean/failed`],
      ["PUT", `/admin/queues/api/queues/${QUEUE}/${failedJobId}/clean`],
      ["PUT", `/admin/queues/api/queues/${QUEUE}/promote`],
      ["POST", `/admin/queues/api/queues/${QUEUE}/add`],
      ["DELETE", `/admin/queues/api/queues/${QUEUE}`],
    ] as const) {
      const res = await app.request(path, { method, headers: bearer(VIEWER), body: "{}" });
      expect(res.status, `${method} ${path}`).toBe(403);
    }
    expect(await queue.isPaused()).toBe(false);
    expect(await (await queue.getJob(failedJobId))?.getState()).toBe("failed");
  });
});

describe("admin actions", () => {
  it("retries a failed job: it moves to waiting", async () => {
    const id = await makeFailedJob("retry-me");
    expect(await (await queue.getJob(id))?.getState()).toBe("failed");
    const res = await app.request(`/admin/queues/api/queues/${QUEUE}/${id}/retry`, {
      method: "PUT",
      headers: { ...basic("ops", ADMIN), "Sec-Fetch-Site": "same-origin" },
    });
    expect(res.status).toBe(204);
    expect(await (await queue.getJob(id))?.getState()).toBe("waiting");
  });

  it("pauses and resumes a queue (kill switch)", async () => {
    const pause = await app.request(`/admin/queues/api/queues/${QUEUE}/pause`, {
      method: "PUT",
      headers: { ...bearer(ADMIN), Origin: "http://localhost" },
    });
    expect(pause.status).toBe(200);
    expect(await queue.isPaused()).toBe(true);
    const list = await app.request("/admin/queues/api/queues", { headers: bearer(ADMIN) });
    const queues = ((await list.json()) as { queues: { name: string; isPaused: boolean }[] }).queues;
    expect(queues.find((q) => q.name === QUEUE)?.isPaused).toBe(true);
    const resume = await app.request(`/admin/queues/api/queues/${QUEUE}/resume`, {
      method: "PUT",
      headers: { ...bearer(ADMIN), "Sec-Fetch-Site": "same-origin" },
    });
    expect(resume.status).toBe(200);
    expect(await queue.isPaused()).toBe(false);
  });

  it("refuses state changes sent from another site (CSRF with cached Basic credentials)", async () => {
    const res = await app.request(`/admin/queues/api/queues/${QUEUE}/pause`, {
      method: "PUT",
      headers: { ...basic("ops", ADMIN), "Sec-Fetch-Site": "cross-site" },
    });
    expect(res.status).toBe(403);
    expect(await queue.isPaused()).toBe(false);
  });
});

describe("audit endpoint", () => {
  it("returns the audit trail to admin and viewer, paginated and filtered", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        await audit.append({
          trigger: { event: "Note Hook", eventId: `n${i}`, actor: { id: 3, username: "bob" } },
          project: { id: i < 3 ? 42 : 43, path: i < 3 ? "g/a" : "g/b" },
          environment: "staging",
          change: { op: "create", kind: "application", target: `app-${i}` },
          outcome: "ok",
        }),
      );
    }
    const first = await app.request("/admin/audit?limit=2", { headers: bearer(VIEWER) });
    expect(first.status).toBe(200);
    const p1 = (await first.json()) as { records: { id: string }[]; nextCursor?: string };
    expect(p1.records.map((r) => r.id)).toEqual(ids.slice(0, 2));
    expect(p1.nextCursor).toBeDefined();
    const second = await app.request(`/admin/audit?limit=10&cursor=${p1.nextCursor}`, {
      headers: bearer(ADMIN),
    });
    const p2 = (await second.json()) as { records: { id: string }[]; nextCursor?: string };
    expect(p2.records.map((r) => r.id)).toEqual(ids.slice(2));
    expect(p2.nextCursor).toBeUndefined();

    const byProject = await app.request("/admin/audit?project=43", { headers: bearer(VIEWER) });
    const p43 = (await byProject.json()) as { records: { id: string; project: { path: string } }[] };
    expect(p43.records.map((r) => r.id)).toEqual(ids.slice(3));
    const since = await app.request(`/admin/audit?since=${ids[4]}`, { headers: bearer(VIEWER) });
    expect(((await since.json()) as { records: { id: string }[] }).records.map((r) => r.id)).toEqual([
      ids[4],
    ]);
  });

  it("answers 400 with reasons for bad query parameters", async () => {
    for (const q of ["limit=0", "limit=abc", "project=-1", "since=not-a-date", "cursor=xyz"]) {
      const res = await app.request(`/admin/audit?${q}`, { headers: bearer(ADMIN) });
      expect(res.status, q).toBe(400);
      expect(((await res.json()) as { issues: string[] }).issues.length, q).toBeGreaterThan(0);
    }
  });
});

describe("configuration", () => {
  it("is disabled with a clear 503 when no token is configured", async () => {
    const off = createAdminRoutes({ queues: [queue], basePath: "/admin", audit });
    for (const path of ["/admin", "/admin/queues", "/admin/audit", staticJs]) {
      const res = await off.request(path, { headers: bearer(ADMIN) });
      expect(res.status, path).toBe(503);
      expect(((await res.json()) as { message: string }).message).toContain("ADMIN_TOKEN");
    }
  });

  it("serves only the read-only board when only a viewer token is set", async () => {
    const viewerOnly = createAdminRoutes({ queues: [queue], viewerToken: VIEWER, basePath: "/ops/", audit });
    const ok = await viewerOnly.request("/ops/queues/api/queues", { headers: bearer(VIEWER) });
    expect(ok.status).toBe(200);
    const denied = await viewerOnly.request(`/ops/queues/api/queues/${QUEUE}/pause`, {
      method: "PUT",
      headers: bearer(VIEWER),
    });
    expect(denied.status).toBe(403);
    expect((await viewerOnly.request("/ops/queues", { headers: bearer(ADMIN) })).status).toBe(401);
  });

  it("refuses identical admin and viewer tokens", () => {
    expect(() =>
      createAdminRoutes({ queues: [], adminToken: ADMIN, viewerToken: ADMIN, basePath: "/admin", audit }),
    ).toThrow(/must differ/);
  });
});
