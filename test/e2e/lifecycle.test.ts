import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "../../src/onboarding/registry.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import {
  AUD,
  appFor,
  appsOf,
  exchange,
  onboardingIssues,
  RETIRED,
  retiredState,
  subjectsOf,
} from "../helpers/e2e.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Credentials follow the project: after each lifecycle event a pipeline token minted by the GitLab simulator
 * (sub built from the project's path at that moment) is exchanged at the Entra simulator. A token minted
 * under the old path must fail, a fresh one must work; a destroyed project's tokens fail.
 */
let stack: SandboxStack;
let redis: Redis;
let registry: Registry;
const { alice } = SANDBOX.users;

beforeAll(async () => {
  stack = await testStack("lifecycle");
  redis = new Redis(TEST_REDIS_URL);
  registry = new Registry(redis, stack.config.queuePrefix);
});
afterAll(async () => {
  await redis?.quit();
  await stack?.close();
});

const mint = (projectId: number, ref = "main") =>
  stack.gitlab.mintIdToken({ projectId, ref, refType: "branch", audience: AUD });

async function create(path: string): Promise<number> {
  const { project, delivery } = await stack.driver.createProject(path, { members: { [alice.id]: 40 } });
  expect(delivery.status).toBe(202);
  await settled(stack);
  expect(appsOf(stack, project.id)).toHaveLength(2);
  return project.id;
}

/** The token minted before the move no longer logs in; a token minted now does, for both environments. */
async function expectFollowed(projectId: number, oldTokens: { prod: string; staging: string }) {
  const prod = appFor(stack, projectId, "production")?.appId as string;
  const staging = appFor(stack, projectId, "staging")?.appId as string;
  expect((await stack.entra.exchange({ clientId: prod, assertion: oldTokens.prod })).status).toBe(400);
  expect((await stack.entra.exchange({ clientId: staging, assertion: oldTokens.staging })).status).toBe(400);
  expect((await exchange(stack, projectId, "production", "main")).status).toBe(200);
  expect((await exchange(stack, projectId, "staging", "develop")).status).toBe(200);
}

describe("lifecycle: rename, transfer, group rename, destroy", () => {
  // Each test onboards the projects it needs, so any one of them can run alone.
  it("project_rename: old path fails, new path works; registry and onboarding issue follow", async () => {
    const projectId = await create("acme/api");
    const old = { prod: await mint(projectId), staging: await mint(projectId, "develop") };
    expect(
      (
        await stack.entra.exchange({
          clientId: appFor(stack, projectId, "production")?.appId ?? "",
          assertion: old.prod,
        })
      ).status,
    ).toBe(200);

    expect((await stack.driver.renameProject(projectId, "acme/api-v2")).status).toBe(202);
    await settled(stack);
    expect(subjectsOf(stack, projectId, "production")).toEqual([
      "project_path:acme/api-v2:ref_type:branch:ref:main",
    ]);
    await expectFollowed(projectId, old);
    expect((await registry.get(projectId))?.path).toBe("acme/api-v2");
    const issues = onboardingIssues(stack, projectId);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.description).toContain("acme/api-v2");
    expect(issues[0]?.description).not.toContain("acme/api:");
    // The rewritten issue still says the bot set the variables, instead of falling back to literal ids.
    expect(issues[0]?.description).toContain("are CI/CD variables");
    expect(issues[0]?.description).not.toMatch(/AZURE_CLIENT_ID: [0-9a-f]{8}-/);
  });

  it("project_transfer to another group: same identities (no new app), subjects follow", async () => {
    const projectId = await create("acme/transferred");
    const before = appsOf(stack, projectId)
      .map((a) => a.appId)
      .sort();
    const old = { prod: await mint(projectId), staging: await mint(projectId, "develop") };
    expect((await stack.driver.transferProject(projectId, "platform/transferred")).status).toBe(202);
    await settled(stack);
    expect(
      appsOf(stack, projectId)
        .map((a) => a.appId)
        .sort(),
    ).toEqual(before);
    expect(subjectsOf(stack, projectId, "staging")).toEqual([
      "project_path:platform/transferred:ref_type:branch:ref:develop",
      "project_path:platform/transferred:ref_type:branch:ref:main",
    ]);
    await expectFollowed(projectId, old);
  });

  it("group_rename: every onboarded project under the group follows; a sibling group with the same prefix does not", async () => {
    const a = await create("shop/web");
    const b = await create("shop/sub/worker");
    const sibling = await create("shopping/app");
    const oldA = { prod: await mint(a), staging: await mint(a, "develop") };
    const oldB = { prod: await mint(b), staging: await mint(b, "develop") };
    const siblingSubjects = subjectsOf(stack, sibling, "production");

    stack.entra.stats.reset();
    expect((await stack.driver.renameGroup("shop", "store")).status).toBe(202);
    await settled(stack);
    expect(stack.gitlab.project(a)?.path).toBe("store/web");
    expect(subjectsOf(stack, a, "production")).toEqual(["project_path:store/web:ref_type:branch:ref:main"]);
    expect(subjectsOf(stack, b, "production")).toEqual([
      "project_path:store/sub/worker:ref_type:branch:ref:main",
    ]);
    await expectFollowed(a, oldA);
    await expectFollowed(b, oldB);
    expect(subjectsOf(stack, sibling, "production")).toEqual(siblingSubjects);
    expect((await exchange(stack, sibling, "production", "main")).status).toBe(200);
    expect((await registry.get(b))?.path).toBe("store/sub/worker");
    // The onboarding issues' snippets name the project path: GitLab sent no per-project event, still updated.
    for (const [id, path] of [
      [a, "store/web"],
      [b, "store/sub/worker"],
    ] as const) {
      const issues = onboardingIssues(stack, id);
      expect(issues).toHaveLength(1);
      expect(issues[0]?.description).toContain(`project_path:${path}:`);
      expect(issues[0]?.description).not.toContain("project_path:shop/");
    }
    expect(await failures(stack)).toEqual([]);
  });

  it("project_destroy: identities retired, tokens fail, registry empty; a new project on the same path gets new ones", async () => {
    const projectId = await create("platform/api-v2");
    const token = await mint(projectId);
    const prodAppId = appFor(stack, projectId, "production")?.appId as string;
    expect((await stack.entra.exchange({ clientId: prodAppId, assertion: token })).status).toBe(200);

    expect((await stack.driver.deleteProject(projectId)).status).toBe(202);
    await settled(stack);
    // Retired, not deleted: kept (disabled, without credentials or groups) for the audit trail.
    expect(appsOf(stack, projectId)).toHaveLength(2);
    expect(retiredState(stack, projectId, "production")).toEqual(RETIRED);
    expect(retiredState(stack, projectId, "staging")).toEqual(RETIRED);
    expect((await stack.entra.exchange({ clientId: prodAppId, assertion: token })).status).not.toBe(200);
    expect(await registry.get(projectId)).toBeUndefined();

    // Path reuse: the takeover risk a stale FIC would be. The newcomer's token cannot use the old app.
    const reused = await create("platform/api-v2");
    const newcomer = await mint(reused);
    expect((await stack.entra.exchange({ clientId: prodAppId, assertion: newcomer })).status).not.toBe(200);
    expect(appFor(stack, reused, "production")?.appId).not.toBe(prodAppId);
    expect(await failures(stack)).toEqual([]);
  });
});
