import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appsOf, onboardingIssues } from "../helpers/e2e.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Inputs a Developer controls without any secret: the environments a pipeline names. GitLab sends one
 * Pipeline Hook per pipeline status change, listing every job with its environment; a Developer can push a
 * .gitlab-ci.yml with thousands of jobs whose environment names match a glob key (review/*), each a first
 * sight. The bot's work per such event must stay bounded: identities (maxIdentitiesPerProject), GitLab
 * calls, Redis keys, and the size of what it writes into the onboarding issue.
 */
const { alice, dave } = SANDBOX.users;
let stack: SandboxStack;
let redis: Redis;

beforeAll(async () => {
  stack = await testStack("attack-intake");
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await redis?.quit();
  await stack?.close();
});

function pipelineHook(
  projectId: number,
  path: string,
  user: { id: number; username: string },
  envs: string[],
) {
  return {
    object_kind: "pipeline",
    object_attributes: { id: 1, ref: "develop", tag: false, status: "running", source: "push" },
    user: { id: user.id, username: user.username, name: user.username },
    project: { id: projectId, name: path.split("/").pop(), path_with_namespace: path },
    builds: envs.map((name, i) => ({
      id: i + 1,
      stage: "deploy",
      name: `deploy ${i}`,
      status: "created",
      environment: { name, action: "start", deployment_tier: "development" },
    })),
  };
}

describe("a pipeline naming thousands of environments", () => {
  it("costs a bounded number of identities, GitLab calls, Redis fields and issue characters", async () => {
    const { project } = await stack.driver.createProject("big/pipeline", {
      members: { [alice.id]: 40, [dave.id]: 30 },
    });
    await settled(stack);
    const before = appsOf(stack, project.id).length;
    const calls = stack.gitlab.stats.requests;
    const N = 3000;
    const envs = Array.from({ length: N }, (_, i) => `review/${"x".repeat(200)}-${i}`);
    const delivery = await stack.driver.send(
      "Pipeline Hook",
      pipelineHook(project.id, project.path, dave, envs),
    );
    expect(delivery.status).toBe(202);
    await settled(stack);
    if (process.env.ATTACK_DEBUG)
      console.log({
        apps: appsOf(stack, project.id).length,
        gitlab: stack.gitlab.stats.requests - calls,
        seen: await redis.hlen(`${stack.config.queuePrefix}:first-seen:${project.id}`),
        issue: onboardingIssues(stack, project.id)[0]?.description.length,
        failures: await failures(stack),
      });
    // At most maxIdentitiesPerProject identities (20 in the policy's default), whatever the pipeline names.
    expect(appsOf(stack, project.id).length).toBeLessThanOrEqual(20);
    expect(appsOf(stack, project.id).length).toBeGreaterThan(before);
    // GitLab is not asked once per environment named (the deployer's role is the same for all of them).
    expect(stack.gitlab.stats.requests - calls).toBeLessThan(200);
    // The first-sight record does not grow by thousands of fields for environments that were never onboarded.
    const seen = await redis.hlen(`${stack.config.queuePrefix}:first-seen:${project.id}`);
    expect(seen).toBeLessThanOrEqual(40);
    // The onboarding issue stays far below GitLab's 1,000,000-character limit.
    const issue = onboardingIssues(stack, project.id)[0];
    expect(issue?.description.length ?? 0).toBeLessThan(200_000);
    expect(await failures(stack)).toEqual([]);
  });
});
