import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGitLabDriver } from "../../src/sandbox/gitlab-driver.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { testStack } from "../helpers/stack.ts";
import { botEnv, killAllBots, startBot } from "../reliability/bot-process.ts";

/**
 * Tracing in the real process (`node src/main.ts`, ESM with type stripping), not only under the test runner:
 * off when no OTEL_* variable asks for it, and then not one OpenTelemetry module is loaded, on the webhook path
 * or in the worker; on with OTEL_TRACES_EXPORTER=console, and then the spans of one onboarding come out.
 */

const RECORDER = fileURLToPath(new URL("../helpers/record-modules.mjs", import.meta.url));
/**
 * Everything tracing brings: the SDK, exporters, instrumentations, bullmq-otel. Not @opentelemetry/api itself:
 * prom-client has always loaded it (for exemplars), and without a registered provider it is a no-op.
 */
const TELEMETRY_MODULE = /\/node_modules\/(@opentelemetry\/(?!api\/)|bullmq-otel\/)/;
let stack: SandboxStack;
const dir = mkdtempSync(join(tmpdir(), "geb-tracing-process-"));

beforeAll(async () => {
  stack = await testStack("tracing-process", { startService: false });
});
afterAll(async () => {
  await killAllBots();
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs one onboarding through `node src/main.ts --role=all` and returns the modules it loaded and its output. */
async function onboardOnce(label: string, otel: Record<string, string>) {
  const modulesFile = join(dir, `${label}.txt`);
  const bot = await startBot(
    "all",
    botEnv(stack, { NODE_OPTIONS: `--import=${RECORDER}`, GEB_MODULES_OUT: modulesFile, ...otel }),
  );
  const driver = createGitLabDriver({
    gitlab: stack.gitlab,
    botUrl: () => bot.url as string,
    secret: stack.secrets.webhook,
  });
  const { project, delivery } = await driver.createProject(`tracing/${label}`, {
    members: { [SANDBOX.users.alice.id]: 40 },
  });
  expect(delivery.status).toBe(202);
  const issueWritten = () =>
    (stack.gitlab.project(project.id)?.issues ?? []).some((i) =>
      i.description.includes("gitlab-entra-bot:onboarding"),
    );
  await waitFor(issueWritten, `the onboarding issue of ${label}`);
  expect(await bot.kill("SIGTERM")).toBe(0);
  const modules = readFileSync(modulesFile, "utf8").split("\n");
  return { modules, output: bot.output() };
}

describe("tracing in the real process", () => {
  it("off by default: one onboarding loads no tracing module (SDK, exporters, instrumentations, bullmq-otel)", async () => {
    const { modules } = await onboardOnce("off", {});
    // The recorder saw the whole path: the api, BullMQ, and the worker's Graph and GitLab clients.
    expect(modules.some((m) => m.includes("/node_modules/bullmq/"))).toBe(true);
    expect(modules.some((m) => m.includes("/node_modules/@microsoft/microsoft-graph-client/"))).toBe(true);
    expect(modules.some((m) => m.includes("/node_modules/@gitbeaker/"))).toBe(true);
    expect(modules.filter((m) => TELEMETRY_MODULE.test(m))).toEqual([]);
  });

  it("OTEL_TRACES_EXPORTER=console: the SDK is loaded and the onboarding's spans are exported", async () => {
    const { modules, output } = await onboardOnce("on", {
      OTEL_TRACES_EXPORTER: "console",
      OTEL_SERVICE_NAME: "geb-tracing-test",
    });
    expect(modules.some((m) => m.includes("/node_modules/@opentelemetry/sdk-node/"))).toBe(true);
    expect(modules.some((m) => m.includes("/node_modules/bullmq-otel/"))).toBe(true);
    for (const name of [
      "POST /webhooks/gitlab",
      "add gitlab-events.project.created",
      "process gitlab-events",
    ]) {
      expect(output).toContain(`name: '${name}'`);
    }
    expect(output).toContain("geb-tracing-test");
    expect(output).toMatch(/'url\.full': 'https:\/\/localhost:\d+\/v1\.0\/applications/);
  });
});
