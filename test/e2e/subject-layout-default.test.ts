import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SubClaimSupport } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { AUD, appFor, exchange, onboardingIssues, subjectsOf } from "../helpers/e2e.ts";
import { e2ePolicyYaml } from "../helpers/policy.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The policy's default `sub` layout (no gitlab.subClaimComponents in the file): project_id-headed where GitLab
 * accepts it, and otherwise exactly what GitLab mints for the project, so the credentials always match the
 * tokens. The GitLab simulator mints `sub` from the project's own ci_id_token_sub_claim_components, so every
 * exchange below proves the credentials match GitLab's tokens, not the bot's idea of them.
 */
let stack: SandboxStack;
const { alice } = SANDBOX.users;

/**
 * The test policy (production automatic and not bound to protected refs, so no rule adds ref_protected) with no
 * gitlab.subClaimComponents; `bound` keeps production privileged and bound (autoOnboard only), so the default
 * rule's layout carries ref_protected too.
 */
function defaultLayoutPolicy(opts: { bound: boolean }): string {
  let yaml = e2ePolicyYaml().replace("  subClaimComponents: [project_path, ref_type, ref]\n", "");
  if (opts.bound) yaml = yaml.replace("    allowUnprotectedRefs: true\n", "");
  expect(yaml).not.toContain("subClaimComponents");
  expect(yaml.includes("allowUnprotectedRefs")).toBe(!opts.bound);
  return yaml;
}

beforeAll(async () => {
  stack = await testStack("subject-layout-default", { policyYaml: defaultLayoutPolicy({ bound: false }) });
  expect(stack.policy.gitlab.subClaimComponentsExplicit).toBe(false);
});
afterAll(async () => {
  await stack?.close();
});

async function create(path: string, subClaimSupport: SubClaimSupport, on = stack): Promise<number> {
  const p = on.gitlab.addProject({ path, subClaimSupport, members: { [alice.id]: 40 } });
  const res = await on.driver.send("System Hook", {
    event_name: "project_create",
    project_id: p.id,
    path_with_namespace: p.path,
    name: path.split("/").pop(),
    path: path.split("/").pop(),
  });
  expect(res.status).toBe(202);
  await settled(on);
  return p.id;
}

async function runDrift(on = stack) {
  const queue = on.service.queues.maintenance;
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
  await settled(on);
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

/**
 * Where the two features meet: the default project_id layout (issue 11) and ref_protected for a rule with a
 * privileged environment (issue 13), decided in one place. Every login below is a token the GitLab simulator
 * mints from the project's own setting, so it proves what GitLab would really send.
 */
describe("default layout for a rule that binds protected refs (production privileged, autoOnboard)", () => {
  let bound: SandboxStack;
  beforeAll(async () => {
    bound = await testStack("subject-layout-bound", { policyYaml: defaultLayoutPolicy({ bound: true }) });
  });
  afterAll(async () => {
    await bound?.close();
  });

  async function login(projectId: number, env: string, ref: string, refProtected: boolean) {
    const app = appFor(bound, projectId, env);
    if (!app) throw new Error(`no ${env} app for ${projectId}`);
    const assertion = await bound.gitlab.mintIdToken({
      projectId,
      ref,
      refType: "branch",
      audience: AUD,
      environment: { name: env },
      refProtected,
    });
    return (await bound.entra.exchange({ clientId: app.appId, assertion })).status;
  }

  it("GitLab that accepts project_id first: project_id-headed, with ref_protected; only a protected main gets production", async () => {
    const id = await create("bound/modern", "modern", bound);
    expect(bound.gitlab.project(id)?.subClaimComponents).toEqual([
      "project_id",
      "ref_type",
      "ref",
      "ref_protected",
    ]);
    expect(subjectsOf(bound, id, "production")).toEqual([
      `project_id:${id}:ref_type:branch:ref:main:ref_protected:true`,
    ]);
    expect(await login(id, "production", "main", true)).toBe(200);
    expect(await login(id, "production", "main", false)).toBe(400);
    // staging is not privileged: its refs log in protected or not.
    expect(await login(id, "staging", "develop", false)).toBe(200);
    expect(await login(id, "staging", "main", true)).toBe(200);
  });

  it("GitLab 18.7..19.x (project_path first): its path layout plus ref_protected, and the issue says why", async () => {
    const id = await create("bound/legacy", "legacy", bound);
    const path = bound.gitlab.project(id)?.path;
    expect(bound.gitlab.project(id)?.subClaimComponents).toEqual([
      "project_path",
      "ref_type",
      "ref",
      "ref_protected",
    ]);
    expect(subjectsOf(bound, id, "production")).toEqual([
      `project_path:${path}:ref_type:branch:ref:main:ref_protected:true`,
    ]);
    expect(await login(id, "production", "main", true)).toBe(200);
    expect(await login(id, "production", "main", false)).toBe(400);
    expect(onboardingIssues(bound, id)[0]?.description).toMatch(
      /GitLab did not accept `project_id, ref_type, ref`/,
    );
    expect(await failures(bound)).toEqual([]);
  });

  it("GitLab 17.10..18.6 (no ref_protected): production refused with GitLab's reason; staging on the path layout", async () => {
    const id = await create("bound/basic", "basic", bound);
    expect(bound.gitlab.project(id)?.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
    expect(appFor(bound, id, "production")).toBeUndefined();
    const issue = onboardingIssues(bound, id)[0]?.description ?? "";
    expect(issue).toMatch(/is privileged: its credentials must accept only protected refs/);
    expect(issue).toMatch(/ref_protected is not an allowed sub claim component/);
    expect(await login(id, "staging", "develop", false)).toBe(200);
    expect(await failures(bound)).toEqual([]);
  });

  it("drift repair reads the same decision: nothing to repair, no Graph write, production still refused", async () => {
    bound.entra.stats.reset();
    const report = await runDrift(bound);
    expect(report).toMatchObject({ driftFound: 0, repaired: 0 });
    expect(bound.entra.stats.writes()).toBe(0);
    const basic = [...bound.gitlab.state.projects.values()].find((p) => p.path === "bound/basic");
    expect(basic && appFor(bound, basic.id, "production")).toBeUndefined();
  });
});
