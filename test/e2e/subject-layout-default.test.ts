import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SubClaimSupport } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX, sandboxPolicyYaml } from "../../src/sandbox/stack.ts";
import { exchange, onboardingIssues, subjectsOf } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The policy's default `sub` layout (no gitlab.subClaimComponents in the file): project_id-headed where GitLab
 * accepts it, and otherwise exactly what GitLab mints for the project, so the credentials always match the
 * tokens. The GitLab simulator mints `sub` from the project's own ci_id_token_sub_claim_components, so every
 * exchange below proves the credentials match GitLab's tokens, not the bot's idea of them.
 */
let stack: SandboxStack;
const { alice } = SANDBOX.users;

beforeAll(async () => {
  const policyYaml = sandboxPolicyYaml().replace("  subClaimComponents: [project_path, ref_type, ref]\n", "");
  expect(policyYaml).not.toContain("subClaimComponents");
  stack = await testStack("subject-layout-default", { policyYaml });
  expect(stack.policy.gitlab.subClaimComponentsExplicit).toBe(false);
});
afterAll(async () => {
  await stack?.close();
});

async function create(path: string, subClaimSupport: SubClaimSupport): Promise<number> {
  const p = stack.gitlab.addProject({ path, subClaimSupport, members: { [alice.id]: 40 } });
  const res = await stack.driver.send("System Hook", {
    event_name: "project_create",
    project_id: p.id,
    path_with_namespace: p.path,
    name: path.split("/").pop(),
    path: path.split("/").pop(),
  });
  expect(res.status).toBe(202);
  await settled(stack);
  return p.id;
}

async function runDrift() {
  const queue = stack.service.queues.maintenance;
  const added: Job = await queue.add("drift-repair", {});
  const id = added.id as string;
  await expect
    .poll(async () => ["completed", "failed"].includes(await queue.getJobState(id)), {
      timeout: 15_000,
      interval: 50,
    })
    .toBe(true);
  const job = await queue.getJob(id);
  expect(job?.failedReason).toBeUndefined();
  await settled(stack);
  return job?.returnvalue as { driftFound: number; repaired: number };
}

describe("default sub-claim layout: project_id where GitLab accepts it, GitLab's own layout where it does not", () => {
  it("a GitLab that accepts project_id first: the project is switched and the credentials are project_id-headed", async () => {
    const id = await create("layout/modern", "modern");
    expect(stack.gitlab.project(id)?.subClaimComponents).toEqual(["project_id", "ref_type", "ref"]);
    expect(subjectsOf(stack, id, "production")).toEqual([`project_id:${id}:ref_type:branch:ref:main`]);
    expect((await exchange(stack, id, "production", "main")).status).toBe(200);
    expect(onboardingIssues(stack, id)[0]?.description).not.toMatch(/did not accept/);
  });

  it("a GitLab that wants project_path first (17.10..19.x): path credentials that match, and the issue says why", async () => {
    const id = await create("layout/legacy", "legacy");
    const path = stack.gitlab.project(id)?.path;
    expect(stack.gitlab.project(id)?.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
    expect(subjectsOf(stack, id, "production")).toEqual([`project_path:${path}:ref_type:branch:ref:main`]);
    expect((await exchange(stack, id, "production", "main")).status).toBe(200);
    expect((await exchange(stack, id, "staging", "develop")).status).toBe(200);
    const issue = onboardingIssues(stack, id)[0]?.description ?? "";
    expect(issue).toMatch(/GitLab did not accept `project_id, ref_type, ref`/);
    expect(issue).toMatch(/credentials use `project_path, ref_type, ref`/);
    expect(await failures(stack)).toEqual([]);
  });

  it("a GitLab older than 17.10 (no such setting): GitLab's default path layout, which its tokens carry", async () => {
    const id = await create("layout/ancient", "absent");
    const path = stack.gitlab.project(id)?.path;
    expect(subjectsOf(stack, id, "production")).toEqual([`project_path:${path}:ref_type:branch:ref:main`]);
    expect((await exchange(stack, id, "production", "main")).status).toBe(200);
  });

  it("drift repair keeps each project's layout: nothing is found to repair, no Graph write", async () => {
    stack.entra.stats.reset();
    const report = await runDrift();
    expect(report).toMatchObject({ driftFound: 0, repaired: 0 });
    expect(stack.entra.stats.writes()).toBe(0);
  });
});
