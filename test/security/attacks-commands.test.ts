import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX, sandboxPolicyYaml } from "../../src/sandbox/stack.ts";
import { appFor, botNotes, entraSnapshot, graphCalls, onboardingIssues, openIssue } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Slash-command attacks on the sandbox policy (payments' production approved by the GitLab group
 * payments/leads). Each asserts the attack changes nothing in Entra.
 */
const { alice, dave, rita, erin } = SANDBOX.users;
const guest = { id: 61, username: "gus", name: "Gus (guest of payments)" };
const reporter = { id: 62, username: "remy", name: "Remy (reporter of payments)" };
const developer = { id: 63, username: "devi", name: "Devi (developer of payments)" };

let stack: SandboxStack;
let payments: number;

beforeAll(async () => {
  stack = await testStack("attack-commands", { policyYaml: sandboxPolicyYaml() });
  for (const u of [guest, reporter, developer]) stack.gitlab.addUser(u);
  // The top-level group: a contractor with Guest (to read issues), someone with Reporter, a Developer. GitLab
  // makes them inherited members of every subgroup, payments/leads included.
  stack.gitlab.addGroup("payments", { [guest.id]: 10, [reporter.id]: 20, [developer.id]: 30 });
  const { project } = await stack.driver.createProject("payments/ledger", {
    members: { [alice.id]: 40, [dave.id]: 30, [rita.id]: 20 },
  });
  payments = project.id;
  await settled(stack);
});
afterAll(async () => {
  await stack?.close();
});

function issueIid(projectId: number): number {
  const issue = onboardingIssues(stack, projectId)[0] ?? openIssue(stack, projectId, alice.id, "azure");
  return issue.iid;
}

async function say(projectId: number, userId: number, text: string) {
  await stack.driver.comment(projectId, issueIid(projectId), userId, text);
  await settled(stack);
}

const lastReply = (projectId: number) => botNotes(stack, projectId, issueIid(projectId)).at(-1)?.body ?? "";

describe("approvals of a privileged environment", () => {
  it("a Guest or Reporter of the approver group's parent group cannot approve production", async () => {
    for (const who of [guest, reporter]) {
      await say(payments, alice.id, "/entra onboard production");
      await say(payments, who.id, "/entra approve production");
      expect(appFor(stack, payments, "production"), who.username).toBeUndefined();
      // And the approval did not wait for the next onboard either.
      await say(payments, alice.id, "/entra onboard production");
      expect(appFor(stack, payments, "production"), who.username).toBeUndefined();
      expect(lastReply(payments)).toContain("Waiting for approval");
    }
    expect(await failures(stack)).toEqual([]);
  });

  it("a Developer of the parent group approves, as GitLab's own eligible approvers of a group do", async () => {
    await say(payments, alice.id, "/entra onboard production");
    await say(payments, developer.id, "/entra approve production");
    expect(appFor(stack, payments, "production")).toBeDefined();
    await say(payments, alice.id, "/entra offboard production");
    expect(appFor(stack, payments, "production")).toBeUndefined();
    expect(await failures(stack)).toEqual([]);
  });

  it("erin (a direct Developer of payments/leads) still approves", async () => {
    await say(payments, alice.id, "/entra onboard production");
    await say(payments, erin.id, "/entra approve production");
    expect(appFor(stack, payments, "production")).toBeDefined();
    await say(payments, alice.id, "/entra offboard production");
    expect(await failures(stack)).toEqual([]);
  });
});

describe("commands below the role, or around it", () => {
  it("a Developer's bare /entra offboard (every registered identity) does not remove a Maintainer-only one", async () => {
    await say(payments, alice.id, "/entra onboard production");
    await say(payments, erin.id, "/entra approve production");
    expect(appFor(stack, payments, "production")).toBeDefined();
    const before = entraSnapshot(stack);
    const calls = graphCalls(stack);
    await say(payments, dave.id, "/entra offboard");
    await say(payments, dave.id, "/entra offboard Production staging");
    await say(payments, dave.id, "/entra offboard production,staging");
    expect(entraSnapshot(stack)).toBe(before);
    expect(graphCalls(stack)).toBe(calls);
    expect(await failures(stack)).toEqual([]);
  });

  it("environment names that look like production to a person but not to the policy get nothing", async () => {
    const before = entraSnapshot(stack);
    for (const env of [
      "Production",
      "production ",
      "prod\u200buction",
      "prоduction",
      "production/",
      "./production",
    ]) {
      await say(payments, dave.id, `/entra onboard ${env}`);
    }
    expect(entraSnapshot(stack)).toBe(before);
    expect(await failures(stack)).toEqual([]);
  });
});
