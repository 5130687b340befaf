import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "../../src/onboarding/registry.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { deletePrefix, TEST_REDIS_URL } from "../helpers/redis.ts";
import { settled, testStack } from "../helpers/stack.ts";
import { botEnv, killAllBots } from "../reliability/bot-process.ts";

/** `npm run registry:rebuild` (src/cli/registry-rebuild.ts) as a child process against the simulators. */
const CLI = fileURLToPath(new URL("../../src/cli/registry-rebuild.ts", import.meta.url));
let stack: SandboxStack;
let redis: Redis;

beforeAll(async () => {
  stack = await testStack("registry-cli");
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await killAllBots();
  await redis?.quit();
  await stack?.close();
});

function rebuild(env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "--sandbox-ca"], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, out: `${stdout}${stderr}` });
    });
  });
}

describe("registry:rebuild", () => {
  it("restores the registry from the objects the bot owns after Redis lost it", async () => {
    const { project } = await stack.driver.createProject("team/rebuilt", {
      members: { [SANDBOX.users.alice.id]: 40 },
    });
    await settled(stack);
    const registry = new Registry(redis, stack.config.queuePrefix);
    const before = await registry.get(project.id);
    expect(Object.keys(before?.environments ?? {}).sort()).toEqual(["production", "staging"]);

    await deletePrefix(`${stack.config.queuePrefix}:registry`);
    expect(await registry.get(project.id)).toBeUndefined();

    const r = await rebuild(botEnv(stack));
    expect(r.out).toContain(`${project.id}\tteam/rebuilt\tproduction,staging`);
    expect(r.code).toBe(0);
    // Everything but the recorded sub layout, a cache that the next write re-learns from GitLab's project.
    const { subjectLayout: _layout, ...identities } = before ?? { subjectLayout: undefined };
    expect(await registry.get(project.id)).toEqual(identities);
    expect(r.out).not.toContain(stack.secrets.azureClientSecret);
  });

  it("exits 2 with the missing variables named", async () => {
    const r = await rebuild({ PATH: process.env.PATH ?? "" });
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/AZURE_TENANT_ID: is required/);
  });
});
