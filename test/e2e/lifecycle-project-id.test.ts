import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { AUD, appFor, exchange, onboardingIssues, subjectsOf } from "../helpers/e2e.ts";
import { e2ePolicyYaml } from "../helpers/policy.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Policy with rename-proof `project_id` subjects: the bot sets the project's ci_id_token_sub_claim_components,
 * and the GitLab simulator then builds `sub` from that setting, so a minted token proves the setting took.
 * A GitLab that refuses project_id first ("legacy", 17.10..19.x) gets an "Action needed" note and no credential:
 * the policy names project_id explicitly, so the bot neither writes subjects GitLab will not mint nor falls back.
 */
let stack: SandboxStack;
const { alice } = SANDBOX.users;
const COMPONENTS = ["project_id", "ref_type", "ref"];

beforeAll(async () => {
  const policyYaml = e2ePolicyYaml().replace(
    "subClaimComponents: [project_path, ref_type, ref]",
    `subClaimComponents: [${COMPONENTS.join(", ")}]`,
  );
  expect(policyYaml).toContain("[project_id, ref_type, ref]");
  stack = await testStack("lifecycle-project-id", { policyYaml });
});
afterAll(async () => {
  await stack?.close();
});

async function onboarded(path: string): Promise<number> {
  const { project } = await stack.driver.createProject(path, { members: { [alice.id]: 40 } });
  await settled(stack);
  return project.id;
}

describe("project_id sub-claim policy", () => {
  it("sets the project's sub-claim components; a pipeline token built from the setting exchanges", async () => {
    const projectId = await onboarded("ids/api");
    expect(stack.gitlab.project(projectId)?.subClaimComponents).toEqual(COMPONENTS);
    expect(subjectsOf(stack, projectId, "production")).toEqual([
      `project_id:${projectId}:ref_type:branch:ref:main`,
    ]);
    expect((await exchange(stack, projectId, "production", "main")).status).toBe(200);
    expect((await exchange(stack, projectId, "production", "develop")).status).toBe(400);
    const issue = onboardingIssues(stack, projectId)[0]?.description ?? "";
    expect(issue).toMatch(/changed this project's ID token sub claim/);
    expect(issue).not.toMatch(/Action needed/);
    expect(await failures(stack)).toEqual([]);
  });

  it("a rename touches no federated credential and tokens from before and after both work", async () => {
    const projectId = await onboarded("ids/renamed");
    const before = await stack.gitlab.mintIdToken({
      projectId,
      ref: "main",
      refType: "branch",
      audience: AUD,
    });
    stack.entra.stats.reset();
    await stack.driver.renameProject(projectId, "ids/renamed-v2");
    await settled(stack);
    // Only the apps' path tags/names follow the rename; no credential is touched.
    const writes = stack.entra.stats.requests.filter((r) => r.kind !== "login" && r.method !== "GET");
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.filter((r) => r.path.includes("federatedIdentityCredentials"))).toEqual([]);
    expect(subjectsOf(stack, projectId, "production")).toEqual([
      `project_id:${projectId}:ref_type:branch:ref:main`,
    ]);
    const clientId = appFor(stack, projectId, "production")?.appId as string;
    expect((await stack.entra.exchange({ clientId, assertion: before })).status).toBe(200);
    expect((await exchange(stack, projectId, "production", "main")).status).toBe(200);
  });

  it("an explicit project_id policy on a GitLab that refuses it: refused with Action needed, no credential written", async () => {
    const legacy = stack.gitlab.addProject({
      path: "ids/old-gitlab",
      subClaimSupport: "legacy",
      members: { [alice.id]: 40 },
    });
    stack.entra.stats.reset();
    const res = await stack.driver.send("System Hook", {
      event_name: "project_create",
      project_id: legacy.id,
      path_with_namespace: legacy.path,
      name: "old-gitlab",
      path: "old-gitlab",
    });
    expect(res.status).toBe(202);
    await settled(stack);
    expect(stack.gitlab.project(legacy.id)?.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
    // A credential that could never match GitLab's tokens is not written; the explicit choice is not weakened.
    expect(appFor(stack, legacy.id, "production")).toBeUndefined();
    expect(appFor(stack, legacy.id, "staging")).toBeUndefined();
    expect(stack.entra.stats.writes()).toBe(0);
    const issues = onboardingIssues(stack, legacy.id);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.description).toMatch(/\*\*Action needed\*\*.*ci_id_token_sub_claim_components/s);
    expect(issues[0]?.description).toMatch(/\| `production` \| refused \|/);
    expect(await failures(stack)).toEqual([]);
  });
});
