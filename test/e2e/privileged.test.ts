import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, type AuditRecord } from "../../src/onboarding/audit.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX, sandboxPolicyYaml } from "../../src/sandbox/stack.ts";
import { AUD, appFor, appsOf, botNotes, onboardingIssues, subjectsOf } from "../helpers/e2e.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The sandbox policy's promises, end to end (webhooks in, simulators' state out): two teams' projects get
 * identities in their own groups (one template), a project creator cannot obtain production by creating a
 * project or by deploying, production needs an approver's /entra approve, and its credentials only accept
 * pipelines on protected refs: a fork's merge-request pipeline named main, or an unprotected main, are
 * refused by the token exchange while the protected main logs in.
 */
let stack: SandboxStack;
let redis: Redis;
let audit: AuditLog;
const { alice, dave, rita, erin } = SANDBOX.users;
const G = SANDBOX.teamGroups;
const ids: Record<string, number> = {};

const members = (appId: string | undefined) =>
  [...stack.entra.state.groups.values()].filter((g) => {
    const sp = [...stack.entra.state.servicePrincipals.values()].find((s) => s.appId === appId);
    return sp && g.members.has(sp.id);
  });
const groupsOf = (projectId: number, env: string) =>
  members(appFor(stack, projectId, env)?.appId)
    .map((g) => g.id)
    .sort();

async function records(projectId: number): Promise<AuditRecord[]> {
  return (await audit.query({ project: projectId, limit: 500 })).records;
}

async function login(
  projectId: number,
  env: string,
  ref: string,
  opts: { refProtected: boolean; overrides?: Record<string, unknown> },
) {
  const app = appFor(stack, projectId, env);
  if (!app) throw new Error(`no ${env} app for ${projectId}`);
  const assertion = await stack.gitlab.mintIdToken({
    projectId,
    ref,
    refType: "branch",
    audience: AUD,
    environment: { name: env, tier: env === "production" ? "production" : "staging" },
    refProtected: opts.refProtected,
    ...(opts.overrides ? { overrides: opts.overrides } : {}),
  });
  return stack.entra.exchange({ clientId: app.appId, assertion });
}

async function issueIid(projectId: number): Promise<number> {
  const issue = onboardingIssues(stack, projectId)[0];
  if (!issue) throw new Error(`no onboarding issue in ${projectId}`);
  return issue.iid;
}

async function comment(projectId: number, userId: number, text: string) {
  const r = await stack.driver.comment(projectId, await issueIid(projectId), userId, text);
  await settled(stack);
  return r.noteId;
}

const lastReply = async (projectId: number) =>
  botNotes(stack, projectId, await issueIid(projectId)).at(-1)?.body ?? "";

beforeAll(async () => {
  stack = await testStack("privileged", { policyYaml: sandboxPolicyYaml() });
  redis = new Redis(TEST_REDIS_URL);
  audit = new AuditLog(redis, { key: `${stack.config.queuePrefix}:audit` });
  for (const [key, path, creator] of [
    ["payments", "payments/api", alice.id],
    ["shop", "shop/web", alice.id],
    ["side", "dave/side-project", dave.id],
  ] as const) {
    const team: Record<number, number> = key === "payments" ? { [dave.id]: 30, [rita.id]: 20 } : {};
    const { project } = await stack.driver.createProject(path, { members: { [creator]: 40, ...team } });
    ids[key] = project.id;
  }
  await settled(stack);
});
afterAll(async () => {
  await redis?.quit();
  await stack?.close();
});

describe("two teams, one template, privileged production", () => {
  it("each team's project gets staging in its own group; nobody gets production by creating a project", async () => {
    const payments = ids.payments as number;
    const shop = ids.shop as number;
    const side = ids.side as number;
    expect(groupsOf(payments, "staging")).toEqual([G["sg-payments-staging"]]);
    expect(groupsOf(shop, "staging")).toEqual([G["sg-shop-staging"]]);
    // A personal project (Dave's, a Maintainer of it) falls to the default rule: the shared staging group.
    expect(groupsOf(side, "staging")).toEqual([SANDBOX.stagingGroup]);
    for (const p of [payments, shop, side]) {
      expect(appFor(stack, p, "production")).toBeUndefined();
      expect(appsOf(stack, p)).toHaveLength(1);
    }
    // The onboarding issue says why production is missing and how to ask for it.
    const issue = onboardingIssues(stack, side)[0]?.description ?? "";
    expect(issue).toContain("Not set up automatically: production is privileged");
    expect(issue).toContain("approves it with /entra approve production");
    expect(await failures(stack)).toEqual([]);
  });

  it("the project's sub claim carries ref_protected, so staging accepts its refs both protected and not", async () => {
    const payments = ids.payments as number;
    expect(stack.gitlab.project(payments)?.subClaimComponents).toEqual([
      "project_path",
      "ref_type",
      "ref",
      "ref_protected",
    ]);
    expect(subjectsOf(stack, payments, "staging")).toEqual([
      "project_path:payments/api:ref_type:branch:ref:develop:ref_protected:false",
      "project_path:payments/api:ref_type:branch:ref:develop:ref_protected:true",
      "project_path:payments/api:ref_type:branch:ref:main:ref_protected:false",
      "project_path:payments/api:ref_type:branch:ref:main:ref_protected:true",
    ]);
    expect((await login(payments, "staging", "develop", { refProtected: false })).status).toBe(200);
    expect((await login(payments, "staging", "main", { refProtected: true })).status).toBe(200);
  });

  it("a first deployment to production (even by a Maintainer) onboards nothing", async () => {
    const payments = ids.payments as number;
    stack.entra.stats.reset();
    await stack.driver.deploy(payments, "production", { tier: "production", user: alice.id });
    await settled(stack);
    expect(appFor(stack, payments, "production")).toBeUndefined();
    expect(stack.entra.stats.writes()).toBe(0);
  });

  it("without an approval, /entra onboard production waits; a non-approver's approve is refused and audited", async () => {
    const payments = ids.payments as number;
    stack.entra.stats.reset();
    await comment(payments, alice.id, "/entra onboard production");
    expect(appFor(stack, payments, "production")).toBeUndefined();
    expect(await lastReply(payments)).toContain("Waiting for approval: production is privileged");
    expect(await lastReply(payments)).toContain("One of its approvers (payments/leads)");

    // Dave is a Developer of the project but not in payments/leads; Alice approves shop, not payments.
    await comment(payments, dave.id, "/entra approve production");
    await comment(payments, alice.id, "/entra approve production");
    expect(appFor(stack, payments, "production")).toBeUndefined();
    expect(stack.entra.stats.writes()).toBe(0);
    expect(await lastReply(payments)).toContain("only the approvers of `production` may approve it");
    const refusals = (await records(payments)).filter(
      (r) => r.change.kind === "approval" && r.change.op === "refuse",
    );
    expect(refusals.map((r) => r.outcome)).toEqual(["refused", "refused"]);
    expect(refusals.map((r) => r.change.detail)).toEqual([
      expect.stringMatching(/^@dave \(user 3\) is not an approver \(approvers: payments\/leads\)/),
      expect.stringMatching(/^@alice \(user 2\) is not an approver/),
    ]);
  });

  it("a group approver's /entra approve completes the pending request: production in the team's group", async () => {
    const payments = ids.payments as number;
    // Erin is not a member of the project; she is a Developer of the GitLab group payments/leads.
    await comment(payments, erin.id, "/entra approve production");
    const app = appFor(stack, payments, "production");
    expect(app).toBeDefined();
    expect(groupsOf(payments, "production")).toEqual([G["sg-payments-production"]]);
    expect(subjectsOf(stack, payments, "production")).toEqual([
      "project_path:payments/api:ref_type:branch:ref:main:ref_protected:true",
    ]);
    expect(await lastReply(payments)).toContain(
      "Approved by @erin (group payments/leads) for @alice's request.",
    );
    const approvals = (await records(payments)).filter((r) => r.change.kind === "approval");
    expect(approvals.map((r) => `${r.change.op}:${r.outcome}`)).toEqual([
      "observe:ok",
      "refuse:refused",
      "refuse:refused",
      "add:ok",
    ]);
    expect(approvals.at(-1)?.change.detail).toMatch(/approved by @erin \(user 5\) as group payments\/leads/);
    expect(await failures(stack)).toEqual([]);
  });

  it("only the protected main logs in to production: not an unprotected main, not a fork's MR pipeline", async () => {
    const payments = ids.payments as number;
    expect((await login(payments, "production", "main", { refProtected: true })).status).toBe(200);
    const unprotected = await login(payments, "production", "main", { refProtected: false });
    expect(unprotected.status).toBe(400);
    expect(JSON.stringify(unprotected.body)).toMatch(/AADSTS7002/);
    // A merge request from a fork whose branch is named main, run in the parent project: ref main, unprotected.
    const fork = await login(payments, "production", "main", {
      refProtected: false,
      overrides: { pipeline_source: "merge_request_event" },
    });
    expect(fork.status).toBe(400);
    // A protected-looking claim cannot be smuggled into a token GitLab mints without it.
    const staging = await login(payments, "production", "develop", { refProtected: true });
    expect(staging.status).toBe(400);
  });

  it("a user approver's approval, given first, is used by the next onboard, once, for that project only", async () => {
    const shop = ids.shop as number;
    await comment(shop, alice.id, "/entra approve production");
    expect(appFor(stack, shop, "production")).toBeUndefined();
    expect(await lastReply(shop)).toMatch(/Approved `production` for this project until /);

    // The approval does not travel to another project.
    const side = ids.side as number;
    await comment(side, dave.id, "/entra onboard production");
    expect(appFor(stack, side, "production")).toBeUndefined();
    expect(await lastReply(side)).toContain("Waiting for approval");

    await comment(shop, alice.id, "/entra onboard production");
    expect(groupsOf(shop, "production")).toEqual([G["sg-shop-production"]]);
    expect(await lastReply(shop)).toContain("Approved by @alice (user alice).");

    // Used once: after offboarding, onboarding again needs a new approval.
    await comment(shop, alice.id, "/entra offboard production");
    expect(appFor(stack, shop, "production")).toBeUndefined();
    await comment(shop, alice.id, "/entra onboard production");
    expect(appFor(stack, shop, "production")).toBeUndefined();
    expect(await lastReply(shop)).toContain("Waiting for approval");
    expect(await failures(stack)).toEqual([]);
  });

  it("an approver still needs the role: an approval does not let a Reporter onboard", async () => {
    const payments = ids.payments as number;
    await comment(payments, alice.id, "/entra offboard production");
    await comment(payments, erin.id, "/entra approve production");
    await comment(payments, rita.id, "/entra onboard production");
    expect(appFor(stack, payments, "production")).toBeUndefined();
    expect(await lastReply(payments)).toMatch(/needs the Maintainer role/);
  });

  it("an approve from someone neither a member nor an approver: audited, and no answer at all", async () => {
    const side = ids.side as number;
    const before = botNotes(stack, side, await issueIid(side)).length;
    await comment(side, rita.id, "/entra approve production");
    expect(botNotes(stack, side, await issueIid(side))).toHaveLength(before);
    const refused = (await records(side)).filter(
      (r) => r.change.kind === "approval" && r.change.op === "refuse",
    );
    expect(refused.map((r) => r.change.detail)).toEqual([
      expect.stringMatching(/^@rita \(user 4\) is not an approver \(approvers: alice\)/),
    ]);
  });

  it("a team project deleted: retired, and its memberships in the template's groups go too", async () => {
    const shop = ids.shop as number;
    expect(groupsOf(shop, "staging")).toEqual([G["sg-shop-staging"]]);
    await stack.driver.deleteProject(shop);
    await settled(stack);
    // The group is named by template, not by id: the bot removes the membership because it made it.
    expect(groupsOf(shop, "staging")).toEqual([]);
    expect(stack.entra.state.groups.get(G["sg-shop-staging"])?.members.size).toBe(0);
    expect(subjectsOf(stack, shop, "staging")).toEqual([]);
    expect(await failures(stack)).toEqual([]);
  });
});
