import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appFor, appsOf, exchange, onboardingIssues, subjectsOf } from "../helpers/e2e.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * GitLab has no "environment created" event: the first Deployment Hook naming an environment the policy
 * allows on first deployment ("review/*", staging) onboards it, once, and reports in the onboarding issue.
 */
let stack: SandboxStack;
const { alice, dave } = SANDBOX.users;

beforeAll(async () => {
  stack = await testStack("first-sight");
});

/** Each test onboards a project of its own (project_create: staging + production), so any one can run alone. */
async function shop(path: string): Promise<number> {
  const { project } = await stack.driver.createProject(path, { members: { [alice.id]: 40, [dave.id]: 30 } });
  await settled(stack);
  expect(appsOf(stack, project.id)).toHaveLength(2);
  return project.id;
}
async function deployed(projectId: number, env: string) {
  expect((await stack.driver.deploy(projectId, env, { tier: "development" })).status).toBe(202);
  await settled(stack);
}
afterAll(async () => {
  await stack?.close();
});

describe("environment first sight", () => {
  it("a Deployment Hook for review/feature-1 onboards it once; a redelivery-like second deployment changes nothing", async () => {
    const projectId = await shop("web/shop");
    const first = await stack.driver.deploy(projectId, "review/feature-1", { tier: "development" });
    expect(first.status).toBe(202);
    await settled(stack);
    expect(subjectsOf(stack, projectId, "review/feature-1")).toEqual([
      "project_path:web/shop:ref_type:branch:ref:develop",
    ]);
    expect((await exchange(stack, projectId, "review/feature-1", "develop")).status).toBe(200);

    stack.entra.stats.reset();
    await stack.driver.deploy(projectId, "review/feature-1", { tier: "development" });
    await settled(stack);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(appsOf(stack, projectId)).toHaveLength(3);
  });

  it("five concurrent first deployments of review/feature-2 make one identity", async () => {
    const projectId = await shop("web/concurrent");
    const deliveries = await Promise.all(
      Array.from({ length: 5 }, () =>
        stack.driver.deploy(projectId, "review/feature-2", { tier: "development" }),
      ),
    );
    expect(deliveries.map((d) => d.status)).toEqual([202, 202, 202, 202, 202]);
    await settled(stack);
    const apps = appsOf(stack, projectId).filter((a) => a.tags.includes("gitlab-env:review/feature-2"));
    expect(apps).toHaveLength(1);
    expect(subjectsOf(stack, projectId, "review/feature-2")).toHaveLength(1);
    expect(await failures(stack)).toEqual([]);
  });

  it("reports in the one onboarding issue, which now lists every environment", async () => {
    const projectId = await shop("web/reported");
    await deployed(projectId, "review/feature-1");
    await deployed(projectId, "review/feature-2");
    const issues = onboardingIssues(stack, projectId);
    expect(issues).toHaveLength(1);
    const description = issues[0]?.description ?? "";
    for (const env of ["staging", "production", "review/feature-1", "review/feature-2"]) {
      expect(description).toContain(env);
      expect(description).toContain(appFor(stack, projectId, env)?.appId);
    }
  });

  it("production (onFirstDeployment: false) is never onboarded by a deployment; staging (true) is", async () => {
    const other = stack.gitlab.addProject({ path: "web/legacy", members: { [alice.id]: 40 } });
    await stack.driver.deploy(other.id, "production", { tier: "production" });
    await settled(stack);
    expect(appsOf(stack, other.id)).toHaveLength(0);
    expect(onboardingIssues(stack, other.id)).toHaveLength(0);

    await stack.driver.deploy(other.id, "staging", { tier: "staging" });
    await settled(stack);
    expect(appsOf(stack, other.id).map((a) => a.tags.find((t) => t.startsWith("gitlab-env:")))).toEqual([
      "gitlab-env:staging",
    ]);
    expect(onboardingIssues(stack, other.id)).toHaveLength(1);
  });

  it("an environment offboarded on purpose is not re-onboarded by its next deployment", async () => {
    const projectId = await shop("web/offboarded");
    await deployed(projectId, "review/feature-1");
    expect(appFor(stack, projectId, "review/feature-1")).toBeDefined();
    const iid = onboardingIssues(stack, projectId)[0]?.iid as number;
    await stack.driver.comment(projectId, iid, dave.id, "/entra offboard review/feature-1");
    await settled(stack);
    expect(appFor(stack, projectId, "review/feature-1")).toBeUndefined();
    await stack.driver.deploy(projectId, "review/feature-1", { tier: "development" });
    await settled(stack);
    expect(appFor(stack, projectId, "review/feature-1")).toBeUndefined();
    expect(await failures(stack)).toEqual([]);
  });

  it("project_destroy forgets what was first seen, so the record does not outlive the project", async () => {
    const projectId = await shop("web/destroyed");
    await deployed(projectId, "review/feature-1");
    await deployed(projectId, "review/feature-2");
    const redis = new Redis(TEST_REDIS_URL);
    const key = `${stack.config.queuePrefix}:first-seen:${projectId}`;
    expect(await redis.hkeys(key)).toEqual(expect.arrayContaining(["review/feature-1", "review/feature-2"]));
    await stack.driver.deleteProject(projectId);
    await settled(stack);
    expect(await redis.exists(key)).toBe(0);
    await redis.quit();
  });
});
