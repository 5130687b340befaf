import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUES } from "../../src/queue/names.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The operator's 3 a.m. story in real headless Chromium (Debian's `chromium`, installed by .ci/run because
 * .ci/needs-chromium exists): Graph is down, an onboarding job uses up its attempts and fails; the operator
 * logs in to the queue UI with ADMIN_TOKEN, opens the failed job and reads why; Graph comes back; the
 * operator clicks Retry; the job completes and Entra holds the credentials.
 */

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `browser-retry: skipped, no Chromium at ${CHROMIUM} (Debian: apt-get install chromium; CI installs it through .ci/needs-chromium)`,
  );
}
const ARTIFACTS = join(process.cwd(), "test-artifacts");
const SCREENSHOT = join(ARTIFACTS, "browser-retry-failed-job.png");
const PATH = "platform/at-3am";

let stack: SandboxStack;
let context: BrowserContext | undefined;
let userDataDir = "";

// Skipped only on a developer machine without it: in CI (.ci/run installs it) a missing binary must fail.
describe.skipIf(!hasChromium && !process.env.CI)(
  "queue UI: an operator retries a job that failed while Graph was down",
  () => {
    beforeAll(async () => {
      // JOB_BACKOFF_MS=1: the job's 10 attempts (the production count) are spent in well under a second.
      stack = await testStack("browser-retry", { env: { JOB_BACKOFF_MS: "1" } });
      userDataDir = mkdtempSync(join(tmpdir(), "geb-chromium-"));
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
        // The operator's login: Basic auth with the admin token as password.
        httpCredentials: { username: "oncall", password: stack.secrets.adminToken },
        viewport: { width: 1400, height: 1000 },
      });
      // Bull Board's font CSS is a third-party request: keep the test hermetic.
      await context.route(/fonts\.(googleapis|gstatic)\.com/, (route) => route.abort());
    });
    afterAll(async () => {
      await context?.close().catch(() => {});
      if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
      await stack?.close();
    });

    function appFor(projectId: number, env: string) {
      return [...stack.entra.state.applications.values()].find(
        (a) => a.tags.includes(`gitlab-project:${projectId}`) && a.tags.includes(`gitlab-env:${env}`),
      );
    }

    it("fails while Graph is down, shows why, and completes after Retry in the UI", async () => {
      if (!context) throw new Error("no browser");
      const setDown = async (down: boolean) => {
        const res = await fetch(`${stack.entra.url}/_sim/faults`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ down }),
        });
        expect(res.status).toBe(200);
      };
      await setDown(true);

      const events = stack.service.queues.events;
      const { project, delivery } = await stack.driver.createProject(PATH, {
        members: { [SANDBOX.users.alice.id]: 40 },
      });
      expect(delivery.status).toBe(202);
      const jobId = String(delivery.body.jobId ?? "");
      await expect
        .poll(async () => events.getJobState(jobId), { timeout: 15_000, interval: 50 })
        .toBe("failed");
      const failedJob = await events.getJob(jobId);
      expect(failedJob?.attemptsMade).toBe(10);
      expect(failedJob?.failedReason).toMatch(/Graph was unavailable \(HTTP 503\)/);
      expect(stack.entra.state.applications.size).toBe(0);

      // The operator opens the failed list of the events queue and then the job itself.
      const page = await context.newPage();
      page.setDefaultTimeout(8_000);
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(`${stack.service.url}/admin/queues/queue/${QUEUES.events}?status=failed`);
      await page.getByRole("link", { name: jobId, exact: true }).click();
      await page.waitForURL(new RegExp(`/admin/queues/queue/${QUEUES.events}/${jobId}`));
      const reason = page.getByText(/Graph was unavailable \(HTTP 503\)/).first();
      await reason.waitFor({ timeout: 15_000 });
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(statSync(SCREENSHOT).size).toBeGreaterThan(1000);

      // Graph is back; the operator clicks Retry.
      await setDown(false);
      // Bull Board's job actions are icon buttons (names only as tooltips): the retry icon asks to confirm.
      await page.locator("button:has(svg.lucide-refresh-cw)").first().click();
      const dialog = page.getByRole("alertdialog").or(page.getByRole("dialog")).first();
      await dialog.getByText("Are you sure that you want to retry this job?").waitFor();
      await dialog.getByRole("button", { name: "Confirm" }).click();
      await expect
        .poll(async () => events.getJobState(jobId), { timeout: 15_000, interval: 50 })
        .toBe("completed");
      await settled(stack);

      const prod = appFor(project.id, "production");
      const staging = appFor(project.id, "staging");
      expect(prod?.fics.map((f) => f.subject)).toEqual([`project_path:${PATH}:ref_type:branch:ref:main`]);
      expect(staging?.fics.map((f) => f.subject).sort()).toEqual([
        `project_path:${PATH}:ref_type:branch:ref:develop`,
        `project_path:${PATH}:ref_type:branch:ref:main`,
      ]);
      // The report followed: the onboarding issue exists in GitLab.
      expect(
        stack.gitlab
          .project(project.id)
          ?.issues.filter((i) => i.description.includes("gitlab-entra-bot:onboarding")),
      ).toHaveLength(1);
      expect(await failures(stack)).toEqual([]);
      expect(pageErrors).toEqual([]);
    });
  },
);
