import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { AUD, appFor, botNotes, onboardingIssues, openIssue, spFor, subjectsOf } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Attacks on the binding between a privileged identity and the policy rule that granted it. A privileged
 * environment is granted per rule (its groups, its approvers): payments' production joins payments'
 * production group after a payments lead approved it. A project's rule follows its path, and the path is in
 * the hands of the project's owner (transfer, rename) or of its group's owner (group rename). Each test
 * moves a project after its production was approved (or after an approval was given) and asserts that the
 * move does not carry the grant into another rule's groups, does not leave the old grant working outside
 * the rule, and does not let an approval given under one rule serve another.
 */
const { alice, dave, erin } = SANDBOX.users;
const G = SANDBOX.teamGroups;
const SHARED_PRODUCTION = SANDBOX.productionGroup;
const LEGACY_PRODUCTION = "44444444-4444-4444-8444-444444444444";

/**
 * The sandbox policy's shape (default rule: shared groups, production approved by alice; payments: the
 * team's groups, production approved by payments/leads), with rename-proof subjects (the default layout,
 * project_id first) and a rule for a namespace whose production is someone else's (legacy/**), plus one
 * without production at all (orphan/**).
 */
function policyYaml(): string {
  return `
gitlab:
  audience: api://AzureADTokenExchange
scope:
  include: ["**"]
onProjectCreate:
  environments: [staging]
  openIssue: true
  setCiVariables: true
environments:
  production:
    refs: ["branch:main"]
    groups: ["${SHARED_PRODUCTION}"]
    minAccessLevel: maintainer
    approvers: ["alice"]
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${SANDBOX.stagingGroup}"]
    minAccessLevel: developer
rules:
  - name: payments
    match: ["payments/**"]
    environments:
      staging:
        refs: ["branch:main"]
        groups: ["sg-{top}-{environment}"]
        minAccessLevel: developer
      production:
        refs: ["branch:main"]
        groups: ["sg-{top}-{environment}"]
        minAccessLevel: maintainer
        approvers: ["${SANDBOX.approverGroup}"]
  - name: legacy
    match: ["legacy/**"]
    environments:
      staging:
        refs: ["branch:main"]
        groups: ["${SANDBOX.stagingGroup}"]
        minAccessLevel: developer
      production:
        refs: ["branch:main"]
        groups: ["${LEGACY_PRODUCTION}"]
        minAccessLevel: maintainer
        autoOnboard: true
  - name: orphan
    match: ["orphan/**"]
    environments:
      staging:
        refs: ["branch:main"]
        groups: ["${SANDBOX.stagingGroup}"]
        minAccessLevel: developer
`;
}

let stack: SandboxStack;

beforeAll(async () => {
  stack = await testStack("attack-moves", { policyYaml: policyYaml() });
  stack.entra.state.groups.set(LEGACY_PRODUCTION, {
    id: LEGACY_PRODUCTION,
    displayName: "legacy-production-deployers",
    description: null,
    members: new Set(),
  });
});
afterAll(async () => {
  await stack?.close();
});

/** Groups the service principal of (project, env) is a member of, sorted. */
function groupsOf(projectId: number, env: string): string[] {
  const sp = spFor(stack, projectId, env);
  if (!sp) return [];
  return [...stack.entra.state.groups.values()]
    .filter((g) => g.members.has(sp.id))
    .map((g) => g.id)
    .sort();
}

async function issueIid(projectId: number): Promise<number> {
  const issue = onboardingIssues(stack, projectId)[0] ?? openIssue(stack, projectId, alice.id, "azure");
  return issue.iid;
}

async function say(projectId: number, userId: number, text: string) {
  await stack.driver.comment(projectId, await issueIid(projectId), userId, text);
  await settled(stack);
}

const lastReply = async (projectId: number) =>
  botNotes(stack, projectId, await issueIid(projectId)).at(-1)?.body ?? "";

/** Adds the job the drift scheduler would add and waits until it and what it queued are done. */
async function runDrift() {
  const queue = stack.service.queues.maintenance;
  const job = await queue.add("drift-repair", {});
  await expect
    .poll(async () => ["completed", "failed"].includes(await queue.getJobState(job.id as string)), {
      timeout: 20_000,
      interval: 50,
    })
    .toBe(true);
  expect((await queue.getJob(job.id as string))?.failedReason).toBeUndefined();
  await settled(stack);
}

/** A protected-main production pipeline of the project, as GitLab mints it now, against the app's client id. */
async function productionLogin(projectId: number, clientId: string) {
  const assertion = await stack.gitlab.mintIdToken({
    projectId,
    ref: "main",
    refType: "branch",
    audience: AUD,
    environment: { name: "production", tier: "production" },
    refProtected: true,
  });
  return stack.entra.exchange({ clientId, assertion });
}

/** payments/<name> with production approved by a payments lead and set up: in payments' production group. */
async function approvedPaymentsProject(name: string, owner: number) {
  const { project } = await stack.driver.createProject(`payments/${name}`, { members: { [owner]: 50 } });
  await settled(stack);
  await say(project.id, owner, "/entra onboard production");
  await say(project.id, erin.id, "/entra approve production");
  expect(groupsOf(project.id, "production")).toEqual([G["sg-payments-production"]]);
  const clientId = appFor(stack, project.id, "production")?.appId as string;
  expect((await productionLogin(project.id, clientId)).status).toBe(200);
  return { id: project.id, clientId };
}

describe("a move does not carry a privileged grant into another rule", () => {
  it("payments' approved production, transferred to the owner's personal namespace, does not join the shared production group", async () => {
    const { id, clientId } = await approvedPaymentsProject("transfer-out", dave.id);
    // Dave owns the project: GitLab lets him transfer it to his own namespace, where the default rule governs.
    await stack.driver.transferProject(id, "dave/transfer-out");
    await settled(stack);
    // alice (the default rule's approver) never approved production for this project.
    expect(groupsOf(id, "production")).not.toContain(SHARED_PRODUCTION);
    // Nor does it keep payments' production group: the project is no longer payments'.
    expect(groupsOf(id, "production")).not.toContain(G["sg-payments-production"]);
    // And its pipelines cannot log in as that identity any more: a new grant needs a new approval.
    expect((await productionLogin(id, clientId)).status).toBe(400);
    expect(await failures(stack)).toEqual([]);
  });

  it("a group rename that takes the projects out of the team's rule does not hand them the default rule's production", async () => {
    const { id, clientId } = await approvedPaymentsProject("renamed-group", dave.id);
    // The owner of the payments group renames it: GitLab renames every project below, one group_rename event.
    await stack.driver.renameGroup("payments", "payments-old");
    await settled(stack);
    expect(stack.gitlab.project(id)?.path).toBe("payments-old/renamed-group");
    expect(groupsOf(id, "production")).toEqual([]);
    expect((await productionLogin(id, clientId)).status).toBe(400);
    // Undo, for the other tests.
    await stack.driver.renameGroup("payments-old", "payments");
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
  });

  it("transferred into a rule whose production needs no approval, it is still not granted by the move", async () => {
    const { id, clientId } = await approvedPaymentsProject("to-legacy", dave.id);
    await stack.driver.transferProject(id, "legacy/to-legacy");
    await settled(stack);
    // legacy's production is autoOnboard: but a transfer is not a project creation, and the grant the payments
    // lead approved was payments' production group, not legacy's.
    expect(groupsOf(id, "production")).not.toContain(G["sg-payments-production"]);
    expect(groupsOf(id, "production")).not.toContain(SHARED_PRODUCTION);
    // What the move may do: leave it to the new rule, i.e. legacy's group at most.
    for (const g of groupsOf(id, "production")) expect(g).toBe(LEGACY_PRODUCTION);
    void clientId;
    expect(await failures(stack)).toEqual([]);
  });

  it("moved out to a rule without production, the approved identity does not stay working in payments' group", async () => {
    const { id, clientId } = await approvedPaymentsProject("to-orphan", dave.id);
    await stack.driver.transferProject(id, "orphan/to-orphan");
    await settled(stack);
    expect(groupsOf(id, "production")).toEqual([]);
    expect(subjectsOf(stack, id, "production")).toEqual([]);
    expect((await productionLogin(id, clientId)).status).toBe(400);
    expect(await failures(stack)).toEqual([]);
  });

  it("a move without any event, found by drift repair, does not carry the grant either", async () => {
    const { id, clientId } = await approvedPaymentsProject("silent", dave.id);
    // GitLab.com group hooks send no transfer event: only drift repair notices.
    stack.gitlab.renameProject(id, "dave/silent");
    await runDrift();
    expect(groupsOf(id, "production")).not.toContain(SHARED_PRODUCTION);
    expect(groupsOf(id, "production")).not.toContain(G["sg-payments-production"]);
    expect((await productionLogin(id, clientId)).status).toBe(400);
    // Drift repair keeps it that way: the voided grant is not re-granted by the next run.
    await runDrift();
    expect(groupsOf(id, "production")).toEqual([]);
    expect((await productionLogin(id, clientId)).status).toBe(400);
    expect(await failures(stack)).toEqual([]);
  });

  it("a move without any event, found by a command for another environment, voids the grant at once", async () => {
    const { id, clientId } = await approvedPaymentsProject("silent-command", dave.id);
    stack.gitlab.renameProject(id, "dave/silent-command");
    // The staging command saves staging's pin at the new path; production must not be left for drift to find
    // (drift would then see the registry at the new path already, and nothing moved).
    await say(id, dave.id, "/entra onboard staging");
    expect(groupsOf(id, "production")).toEqual([]);
    expect((await productionLogin(id, clientId)).status).toBe(400);
    await runDrift();
    expect(groupsOf(id, "production")).toEqual([]);
    expect((await productionLogin(id, clientId)).status).toBe(400);
    expect(await failures(stack)).toEqual([]);
  });
});

describe("an approval is bound to the rule it was given under", () => {
  it("a payments lead's approval does not let the project, once moved to another rule, onboard that rule's production", async () => {
    const { project } = await stack.driver.createProject("payments/approve-then-move", {
      members: { [dave.id]: 50 },
    });
    await settled(stack);
    // Erin approves payments' production for this project, before anyone asked (valid for a day).
    await say(project.id, erin.id, "/entra approve production");
    expect(await lastReply(project.id)).toMatch(/Approved `production` for this project until/);
    // Dave moves the project to his namespace (default rule: production approved by alice only) and asks.
    await stack.driver.transferProject(project.id, "dave/approve-then-move");
    await settled(stack);
    await say(project.id, dave.id, "/entra onboard production");
    expect(appFor(stack, project.id, "production")).toBeUndefined();
    expect(await lastReply(project.id)).toContain("Waiting for approval");
    expect(stack.entra.state.groups.get(SHARED_PRODUCTION)?.members.size ?? 0).toBe(0);
    expect(await failures(stack)).toEqual([]);
  });
});
