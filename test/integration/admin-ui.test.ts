import { existsSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminRoutes } from "../../src/http/admin.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { sandboxServerTls } from "../../src/sandbox/tls.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * Proves in a real browser that Bull Board renders and works under our CSP (no violation reports).
 * Needs a Chromium binary (CHROMIUM_PATH, or Debian's chromium-headless-shell / chromium); skipped without one.
 */
const browserPath = [
  process.env.CHROMIUM_PATH,
  "/usr/bin/chromium-headless-shell",
  "/usr/bin/chromium",
  "/usr/bin/google-chrome",
].find((p): p is string => Boolean(p && existsSync(p)));

const ADMIN = "admin-token-ui-0123456789abcdef";
const VIEWER = "viewer-token-ui-0123456789abcdef";
const prefix = uniquePrefix("adminui");
const connection = { url: TEST_REDIS_URL };
const QUEUE = "ui-events";

// Skipped only on a developer machine without it: in CI (.ci/run installs it) a missing binary must fail.
describe.skipIf(!browserPath && !process.env.CI)("admin UI in a browser", () => {
  let redis: Redis;
  let queue: Queue;
  let server: ServerType;
  let origin: string;
  let browser: Browser;
  let failedId: string;

  beforeAll(async () => {
    redis = new Redis(TEST_REDIS_URL);
    queue = new Queue(QUEUE, { connection, prefix });
    const worker = new Worker(
      QUEUE,
      async () => {
        throw new Error("simulated Graph 403");
      },
      { connection, prefix },
    );
    const failed = new Promise<string>((resolve) => worker.on("failed", (job) => resolve(job?.id ?? "")));
    await queue.add("project.created", { project: { id: 1, path: "g/p" } }, { attempts: 1 });
    failedId = await failed;
    await worker.close();

    const audit = new AuditLog(redis, { key: `${prefix}:audit` });
    const app = createAdminRoutes({
      queues: [queue],
      adminToken: ADMIN,
      viewerToken: VIEWER,
      basePath: "/admin",
      audit,
    });
    server = serve({
      fetch: app.fetch,
      port: 0,
      hostname: "127.0.0.1",
      createServer,
      serverOptions: sandboxServerTls(),
    });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    origin = `https://localhost:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox"] });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    await queue?.close();
    await redis?.quit();
    await deletePrefix(prefix);
  });

  async function openBoard(token: string, path: string) {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      httpCredentials: { username: "ops", password: token },
    });
    // The font CSS is a third-party request: keep the test hermetic (CSP is checked before routing, so a
    // blocked origin would still be reported as a violation).
    await context.route(/fonts\.(googleapis|gstatic)\.com/, (route) => route.abort());
    const page = await context.newPage();
    const violations: string[] = [];
    const errors: string[] = [];
    await page.exposeFunction("reportViolation", (v: string) => violations.push(v));
    // A string, because this runs in the page and the project is type-checked without the DOM lib.
    await page.addInitScript({
      content: `document.addEventListener("securitypolicyviolation", (e) =>
        window.reportViolation(e.violatedDirective + " " + e.blockedURI + " " + e.sample));`,
    });
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${origin}${path}`);
    return { context, page, violations, errors };
  }

  it("renders the queues for an admin with no CSP violation, and retry works from the UI", async () => {
    const { context, page, violations, errors } = await openBoard(
      ADMIN,
      `/admin/queues/queue/${QUEUE}?status=failed`,
    );
    try {
      await page.getByText("simulated Graph 403").first().waitFor({ timeout: 15_000 });
      // "Retry all" (PUT .../retry/failed) behind a confirmation dialog: the same request path the per-job
      // icon button uses, driven exactly as an operator would.
      await page.getByRole("button", { name: "Retry all" }).click();
      await page.getByRole("button", { name: "Confirm" }).click();
      await expect
        .poll(async () => (await queue.getJob(failedId))?.getState(), { timeout: 10_000 })
        .toBe("waiting");
      expect(violations).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("renders read-only for a viewer with no CSP violation", async () => {
    const { context, page, violations } = await openBoard(VIEWER, "/admin/queues");
    try {
      await page.getByText(QUEUE).first().waitFor({ timeout: 15_000 });
      expect(await page.title()).toContain("read-only");
      expect(violations).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
