import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/onboarding/audit.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import {
  AUD,
  appFor,
  appsOf,
  botNotes,
  graphCalls,
  onboardingIssues,
  openIssue,
  subjectsOf,
} from "../helpers/e2e.ts";
import { PROD_GROUP, STAGING_GROUP } from "../helpers/policy.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Least surprise around the policy: the deployer's role on first deployment, the per-command and
 * per-project limits (refused politely, nothing written), a GitLab that cannot bind refs (privileged
 * refused with the reason, unless the rule accepts the risk), and an approval whose note GitLab does not
 * confirm.
 */
const POLICY = `
gitlab:
  subClaimComponents: [project_path, ref_type, ref]
  audience: ${AUD}
maxEnvironmentsPerCommand: 3
maxIdentitiesPerProject: 3
onProjectCreate: { environments: [staging] }
environments:
  staging: { refs: ["branch:main"], groups: ["${STAGING_GROUP}"], minAccessLevel: developer, onFirstDeployment: true }
  perf: { refs: ["branch:main"], minAccessLevel: maintainer, onFirstDeployment: true }
  "review/*": { refs: ["branch:develop"], minAccessLevel: developer, onFirstDeployment: true }
  production: { refs: ["branch:main"], groups: ["${PROD_GROUP}"], approvers: ["alice"] }
  dr: { refs: ["branch:main"], tier: production, allowUnprotectedRefs: true }
`;

let stack: SandboxStack;
let redis: Redis;
let audit: AuditLog;
const { alice, dave } = SANDBOX.users;
let team = 0;
let old = 0;
let oldIssue = 0;

const reply = (projectId: number, iid: number) => botNotes(stack, projectId, iid).at(-1)?.body ?? "";
const teamIssue = () => onboardingIssues(stack, team)[0]?.iid ?? 0;

beforeAll(async () => {
  stack = await testStack("policy-guards", { policyYaml: POLICY });
  redis = new Redis(TEST_REDIS_URL);
  audit = new AuditLog(redis, { key: `${stack.config.queuePrefix}:audit` });
  team = (await stack.driver.createProject("team/app", { members: { [alice.id]: 40, [dave.id]: 30 } }))
    .project.id;
  // A GitLab older than 18.7 for this project: it refuses ref_protected in the sub claim.
  old = stack.gitlab.addProject({
    path: "old/app",
    subClaimSupport: "basic",
    members: { [alice.id]: 40 },
  }).id;
  oldIssue = openIssue(stack, old, alice.id, "Azure please").iid;
  await settled(stack);
});
afterAll(async () => {
  await redis?.quit();
  await stack?.close();
});

describe("first deployment checks the deployer's role", () => {
  it("a Developer's first deployment does not onboard a Maintainer-only environment; a Maintainer's does", async () => {
    await stack.driver.deploy(team, "perf", { tier: "testing", user: dave.id });
    await settled(stack);
    expect(appFor(stack, team, "perf")).toBeUndefined();
    await stack.driver.deploy(team, "perf", { tier: "testing", user: alice.id });
    await settled(stack);
    expect(appFor(stack, team, "perf")).toBeDefined();
    expect(await failures(stack)).toEqual([]);
  });

  it("a deployment of tier production never onboards, whatever the environment's key says", async () => {
    await stack.driver.deploy(team, "review/hotfix", { tier: "production", user: alice.id });
    await settled(stack);
    expect(appFor(stack, team, "review/hotfix")).toBeUndefined();
  });
});

describe("limits, refused politely", () => {
  it("one command names at most maxEnvironmentsPerCommand environments: nothing is read or written", async () => {
    const before = graphCalls(stack);
    await stack.driver.comment(
      team,
      teamIssue(),
      alice.id,
      "/entra onboard review/a review/b review/c review/d",
    );
    await settled(stack);
    expect(graphCalls(stack)).toBe(before);
    expect(reply(team, teamIssue())).toContain(
      "That names 4 environments; one command may name at most 3. Please split it into several commands.",
    );
  });

  it("a project has at most maxIdentitiesPerProject identities: the next ones are refused with what to do", async () => {
    // staging (creation) + perf (first deployment) = 2; one more fits.
    await stack.driver.comment(team, teamIssue(), alice.id, "/entra onboard review/a review/b");
    await settled(stack);
    expect(appFor(stack, team, "review/a")).toBeDefined();
    expect(appFor(stack, team, "review/b")).toBeUndefined();
    expect(reply(team, teamIssue())).toContain(
      "Not set up: this project would have more than 3 Azure identities, the most the platform policy allows per project (maxIdentitiesPerProject: 3)",
    );
    await stack.driver.deploy(team, "review/c", { tier: "development", user: alice.id });
    await settled(stack);
    expect(appFor(stack, team, "review/c")).toBeUndefined();
    expect(appsOf(stack, team)).toHaveLength(3);
    expect(await failures(stack)).toEqual([]);
  });
});

describe("an approval GitLab does not confirm", () => {
  it("a Note Hook claiming Alice approved, for a note Dave wrote, approves nothing and is audited", async () => {
    const project = stack.gitlab.project(team);
    const issue = project?.issues.find((i) => i.iid === teamIssue());
    if (!project || !issue) throw new Error("no onboarding issue");
    const note = stack.gitlab.addUserNote(team, issue.iid, dave.id, "looks good to me");
    const delivery = await stack.driver.send("Note Hook", {
      object_kind: "note",
      event_type: "note",
      user: { id: alice.id, name: alice.name, username: alice.username, avatar_url: null },
      project_id: team,
      project: { id: team, name: "app", path_with_namespace: project.path },
      object_attributes: {
        id: note.id,
        note: "/entra approve production",
        noteable_type: "Issue",
        author_id: alice.id,
        created_at: note.createdAt,
        updated_at: note.updatedAt,
        project_id: team,
        noteable_id: issue.id,
        system: false,
        action: "create",
      },
      issue: { id: issue.id, iid: issue.iid, title: issue.title, confidential: false },
    });
    expect(delivery.status).toBe(202);
    await settled(stack);
    const refused = (await audit.query({ project: team, limit: 500 })).records.filter(
      (r) => r.change.kind === "approval" && r.change.op === "refuse",
    );
    expect(refused).toHaveLength(1);
    expect(refused[0]?.change.detail).toMatch(/does not confirm this \/entra approve note/);
    // No approval was recorded: Alice's own onboard now waits for one.
    await stack.driver.comment(team, teamIssue(), alice.id, "/entra offboard review/a");
    await settled(stack);
    await stack.driver.comment(team, teamIssue(), alice.id, "/entra onboard production");
    await settled(stack);
    expect(appFor(stack, team, "production")).toBeUndefined();
    expect(reply(team, teamIssue())).toContain("Waiting for approval");
  });
});

describe("a GitLab that cannot bind credentials to protected refs", () => {
  it("refuses the privileged environment with the reason; staging and an accepted-risk one work as before", async () => {
    await stack.driver.comment(old, oldIssue, alice.id, "/entra approve production");
    await settled(stack);
    await stack.driver.comment(old, oldIssue, alice.id, "/entra onboard staging production dr");
    await settled(stack);
    expect(appFor(stack, old, "production")).toBeUndefined();
    const text = reply(old, oldIssue);
    expect(text).toContain('"production" is privileged: its credentials must accept only protected refs');
    expect(text).toContain("ref_protected is not an allowed sub claim component");
    expect(text).toContain("upgrade GitLab to 18.7 or later");
    // GitLab kept its components, so the others' subjects are the plain ones and their pipelines log in.
    expect(stack.gitlab.project(old)?.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
    expect(subjectsOf(stack, old, "staging")).toEqual(["project_path:old/app:ref_type:branch:ref:main"]);
    expect(subjectsOf(stack, old, "dr")).toEqual(["project_path:old/app:ref_type:branch:ref:main"]);
    for (const env of ["staging", "dr"]) {
      const assertion = await stack.gitlab.mintIdToken({
        projectId: old,
        ref: "main",
        refType: "branch",
        audience: AUD,
        environment: { name: env },
      });
      const app = appFor(stack, old, env);
      expect((await stack.entra.exchange({ clientId: app?.appId ?? "", assertion })).status, env).toBe(200);
    }
    expect(await failures(stack)).toEqual([]);
  });
});

describe("a privileged identity whose project moves while GitLab cannot bind refs any more", () => {
  it("its credentials naming the former path are removed (fail closed); staging follows the new path", async () => {
    const { project } = await stack.driver.createProject("mover/app", { members: { [alice.id]: 40 } });
    await settled(stack);
    const iid = onboardingIssues(stack, project.id)[0]?.iid ?? 0;
    await stack.driver.comment(project.id, iid, alice.id, "/entra approve production");
    await settled(stack);
    await stack.driver.comment(project.id, iid, alice.id, "/entra onboard production");
    await settled(stack);
    expect(subjectsOf(stack, project.id, "production")).toEqual([
      "project_path:mover/app:ref_type:branch:ref:main:ref_protected:true",
    ]);
    // The bot loses the Maintainer role: it can no longer set (or see) the project's sub-claim components.
    stack.gitlab.addMember(project.id, SANDBOX.users.bot.id, 30);
    await stack.driver.renameProject(project.id, "mover/app-renamed");
    await settled(stack);
    const all = [...stack.entra.state.applications.values()].flatMap((a) => a.fics.map((f) => f.subject));
    expect(all.filter((s) => s?.startsWith("project_path:mover/app:"))).toEqual([]);
    expect(appFor(stack, project.id, "production")).toBeDefined();
    expect(subjectsOf(stack, project.id, "production")).toEqual([]);
    expect(subjectsOf(stack, project.id, "staging")).toEqual([
      "project_path:mover/app-renamed:ref_type:branch:ref:main",
    ]);
    // Said where the rename's outcome is recorded (the issue update needs the role the bot lost).
    const closing = (await audit.query({ project: project.id, limit: 500 })).records.filter(
      (r) => r.environment === "production" && r.outcome === "refused" && r.message,
    );
    expect(closing.at(-1)?.message).toContain(
      "named the project's former path mover/app, so they were removed",
    );
    expect(await failures(stack)).toEqual([]);
  });
});
