import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import {
  AUD,
  appFor,
  appsOf,
  botNotes,
  editComment,
  exchange,
  graphCalls,
  onboardingIssues,
  openIssue,
  statusNotes,
} from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Every `/entra` command through the whole stack: the driver comments in the GitLab simulator and delivers
 * the Note Hook, the bot works against the Entra simulator and answers in the same issue.
 */
let stack: SandboxStack;
const { alice, dave, rita, bot } = SANDBOX.users;
const mallory = { id: 7, username: "mallory", name: "Mallory (member elsewhere)" };

beforeAll(async () => {
  stack = await testStack("commands");
  stack.gitlab.addUser(mallory);
  stack.gitlab.addProject({ path: "other/thing", members: { [mallory.id]: 50 } });
});
afterAll(async () => {
  await stack?.close();
});

/**
 * One conversation per test: a project the bot has not seen yet (no project_create delivered) with an issue a
 * person opened, so any test can run alone. `onboarded` lists environments to onboard first (as Alice).
 */
async function conversation(name: string, onboarded: string[] = []) {
  const projectId = stack.gitlab.addProject({
    path: `team/${name}`,
    members: { [alice.id]: 40, [dave.id]: 30, [rita.id]: 20 },
  }).id;
  const issue = openIssue(stack, projectId, alice.id, "Deploy to Azure");
  const say = async (userId: number, text: string) => {
    const { noteId, delivery } = await stack.driver.comment(projectId, issue.iid, userId, text);
    expect(delivery.status).toBe(202);
    await settled(stack);
    return noteId;
  };
  const reply = () => {
    const notes = statusNotes(stack, projectId, issue.iid);
    expect(notes).toHaveLength(1); // one status note, edited in place: never a pile-up
    return notes[0]?.body ?? "";
  };
  const reactions = (noteId: number) =>
    issue.notes
      .find((n) => n.id === noteId)
      ?.awards.filter((a) => a.userId === bot.id)
      .map((a) => a.name) ?? [];
  if (onboarded.length > 0) {
    await say(alice.id, `/entra onboard ${onboarded.join(" ")}`);
    for (const env of onboarded) expect(appFor(stack, projectId, env), env).toBeDefined();
  }
  return { projectId, issue, say, reply, reactions };
}

describe("slash commands, answered in the issue they were written in", () => {
  it("help: the command table and the policy's environments; accepted with a reaction", async () => {
    const { say, reply, reactions } = await conversation("help");
    const noteId = await say(rita.id, "Hello bot\n/ENTRA Help");
    expect(reply()).toContain("### `/entra` commands");
    expect(reply()).toMatch(/\| `production` \| `branch:main` \| Maintainer \| no \(privileged\) \| no \|/);
    expect(reactions(noteId)).toEqual(["thumbsup"]);
  });

  it("an unknown word is answered with help and a did-you-mean, edited into the same note, no reaction", async () => {
    const { projectId, issue, say, reply, reactions } = await conversation("unknown");
    await say(rita.id, "/entra help");
    const noteId = await say(dave.id, "/entra onbaord staging");
    expect(reply()).toMatch(/That is not a command I know\. Did you mean `\/entra onboard`\?/);
    // What the commenter typed is never repeated back.
    expect(reply()).not.toContain("onbaord");
    expect(reply()).toContain("### `/entra` commands");
    expect(reactions(noteId)).toEqual([]);
    expect(botNotes(stack, projectId, issue.iid)).toHaveLength(1);
  });

  it("plan: says what onboard would create and writes nothing to Entra", async () => {
    const { projectId, say, reply } = await conversation("plan");
    stack.entra.stats.reset();
    await say(dave.id, "/entra plan staging");
    expect(reply()).toMatch(/Plan only/);
    expect(reply()).toContain("staging");
    expect(stack.entra.stats.writes()).toBe(0);
    expect(appFor(stack, projectId, "staging")).toBeUndefined();
  });

  it("refusals per environment, each with zero Graph calls: developer/production, reporter, non-member", async () => {
    const { projectId, say, reply } = await conversation("refusals");
    stack.entra.stats.reset();
    await say(dave.id, "/entra onboard production");
    expect(reply()).toMatch(
      /needs the Maintainer role .*\(policy for `production`\); your role is Developer/,
    );

    await say(dave.id, "/entra onboard staging production");
    expect(reply()).toMatch(/needs the Maintainer role/);

    await say(rita.id, "/entra onboard staging");
    expect(reply()).toMatch(/needs the Developer role .*your role is Reporter/);

    await say(mallory.id, "/entra onboard staging");
    expect(reply()).toMatch(/only members of this project/);
    await say(mallory.id, "/entra status");
    expect(reply()).toMatch(/only members of this project/);
    await say(mallory.id, "/entra offboard");
    expect(reply()).toMatch(/only members of this project/);

    expect(graphCalls(stack)).toBe(0);
    expect(appsOf(stack, projectId)).toHaveLength(0);
    expect(await failures(stack)).toEqual([]);
  });

  it("onboard staging (developer): reply with the snippet in the same issue, CI variables, a reaction, a working login", async () => {
    const { projectId, say, reply, reactions } = await conversation("onboard-staging");
    const noteId = await say(dave.id, "/entra onboard staging");
    const staging = appFor(stack, projectId, "staging");
    expect(staging).toBeDefined();
    expect(appFor(stack, projectId, "production")).toBeUndefined();
    const body = reply();
    expect(body).toContain(staging?.appId);
    const yaml = [...body.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
    expect(yaml.length).toBeGreaterThan(0);
    for (const block of yaml) expect(() => parseYaml(block)).not.toThrow();
    expect(reactions(noteId)).toEqual(["thumbsup"]);

    const vars = stack.gitlab.project(projectId)?.variables ?? [];
    expect(vars.find((v) => v.key === "AZURE_CLIENT_ID" && v.environmentScope === "staging")?.value).toBe(
      staging?.appId,
    );
    expect(vars.find((v) => v.key === "AZURE_TENANT_ID")?.value).toBe(SANDBOX.tenantId);
    expect((await exchange(stack, projectId, "staging", "develop")).status).toBe(200);
    expect((await exchange(stack, projectId, "staging", "feature/x")).status).toBe(400);
    expect(onboardingIssues(stack, projectId)).toHaveLength(1);
  });

  it("onboard production (maintainer) is allowed; a re-run edits the one status note in place", async () => {
    const { projectId, issue, say, reply } = await conversation("onboard-production");
    await say(alice.id, "/entra onboard production");
    expect(appFor(stack, projectId, "production")).toBeDefined();
    expect((await exchange(stack, projectId, "production", "main")).status).toBe(200);
    stack.entra.stats.reset();
    const before = reply();
    await say(alice.id, "/entra onboard production");
    expect(stack.entra.stats.writes()).toBe(0);
    expect(reply()).not.toBe(before); // "unchanged" replaces "changed"
    expect(botNotes(stack, projectId, issue.iid)).toHaveLength(1);
  });

  it("status (reporter): lists both identities, reads only", async () => {
    const { projectId, say, reply } = await conversation("status", ["staging", "production"]);
    stack.entra.stats.reset();
    await say(rita.id, "/entra status");
    expect(reply()).toContain(appFor(stack, projectId, "staging")?.appId);
    expect(reply()).toContain(appFor(stack, projectId, "production")?.appId);
    expect(stack.entra.stats.writes()).toBe(0);
  });

  it("the bot never acts on its own notes; edited notes are ignored", async () => {
    const { projectId, issue } = await conversation("own-notes", ["staging"]);
    stack.entra.stats.reset();
    const own = await stack.driver.comment(projectId, issue.iid, bot.id, "/entra offboard staging");
    expect(own.delivery.status).toBe(202); // no marker: the worker recognises its own user
    await settled(stack);
    const marked = await stack.driver.comment(
      projectId,
      issue.iid,
      alice.id,
      "/entra offboard staging\n<!-- gitlab-entra-bot:status -->",
    );
    expect(marked.delivery.status).toBe(200);
    expect(marked.delivery.body.reason).toMatch(/written by the bot/);

    const { noteId } = await stack.driver.comment(projectId, issue.iid, alice.id, "thanks!");
    await settled(stack);
    const edited = await editComment(stack, projectId, issue.iid, noteId, "/entra offboard staging");
    expect(edited.status).toBe(200);
    expect(edited.body.reason).toMatch(/not a new comment/);
    await settled(stack);

    expect(stack.entra.stats.writes()).toBe(0);
    expect(appFor(stack, projectId, "staging")).toBeDefined();
  });

  it("a confidential issue's comments arrive as Confidential Note Hook and are answered there", async () => {
    const { projectId } = await conversation("confidential", ["staging"]);
    const secret = openIssue(stack, projectId, alice.id, "Private rollout", { confidential: true });
    const { noteId, delivery } = await stack.driver.comment(projectId, secret.iid, dave.id, "/entra status");
    expect(delivery.status).toBe(202);
    await settled(stack);
    const notes = statusNotes(stack, projectId, secret.iid);
    expect(notes).toHaveLength(1);
    expect(notes[0]?.body).toContain(appFor(stack, projectId, "staging")?.appId);
    expect(secret.notes.find((n) => n.id === noteId)?.awards.map((a) => a.name)).toEqual(["thumbsup"]);
  });

  it("doctor with the claims a failed pipeline prints: a token-vs-credentials table naming the cause", async () => {
    const { projectId, say, reply } = await conversation("doctor-claims", ["staging"]);
    const p = stack.gitlab.project(projectId);
    await say(
      dave.id,
      [
        "/entra doctor",
        `"iss":"${stack.gitlab.url}"`,
        `"sub":"project_path:${p?.path}:ref_type:branch:ref:feature/login"`,
        `"aud":"${AUD}"`,
      ].join("\n"),
    );
    const body = reply();
    expect(body).toContain("### `/entra doctor`");
    expect(body).toContain("| ID token |");
    expect(body).toContain(`project_path:${p?.path}:ref_type:branch:ref:feature/login`);
    expect(body).toMatch(/ref:develop|ref:main/); // the nearest credential is shown beside the token
  });

  it("doctor with a raw ID token: decoded, never echoed, not stored in job data, and the reply says to delete it", async () => {
    const { projectId, say, reply } = await conversation("doctor-token", ["staging"]);
    const jwt = await stack.gitlab.mintIdToken({
      projectId,
      ref: "feature/login",
      refType: "branch",
      audience: AUD,
    });
    const signature = jwt.split(".")[2] ?? "";
    expect(signature.length).toBeGreaterThan(20);
    await say(dave.id, `/entra doctor\n${jwt}`);
    const body = reply();
    expect(body).toMatch(/delete that comment/);
    expect(body).toContain("feature/login");
    expect(body).not.toContain(signature);
    expect(body).not.toContain(jwt.split(".")[1]);
    const jobs = await stack.service.queues.events.getJobs(["completed", "failed", "active", "waiting"]);
    const data = JSON.stringify(jobs.map((j) => j.data));
    expect(data).toContain("/entra doctor");
    expect(data).not.toContain(signature);
  });

  it("offboard of identities the policy no longer has needs Maintainer: a reporter cannot remove them", async () => {
    const { projectId, say, reply } = await conversation("orphaned", ["staging", "production"]);
    // The platform team removed production from the policy; its identity is still in Entra.
    const prodApp = appFor(stack, projectId, "production");
    expect(prodApp).toBeTruthy();
    const saved = stack.policy.environments.production;
    delete stack.policy.environments.production;
    try {
      stack.entra.stats.reset();
      await say(rita.id, "/entra offboard production");
      expect(reply()).toMatch(/Maintainer/);
      expect(graphCalls(stack)).toBe(0);
      // `/entra offboard` without names covers every registered identity, including the orphaned one.
      await say(rita.id, "/entra offboard");
      expect(reply()).toMatch(/Maintainer/);
      expect(graphCalls(stack)).toBe(0);
      expect(appFor(stack, projectId, "production")?.appId).toBe(prodApp?.appId);
    } finally {
      if (saved) stack.policy.environments.production = saved;
    }
  });

  it("offboard staging: the identity is gone and staging's login fails; production still works", async () => {
    const { projectId, say, reply, reactions } = await conversation("offboard", ["staging", "production"]);
    const stagingAppId = appFor(stack, projectId, "staging")?.appId as string;
    const noteId = await say(dave.id, "/entra offboard staging");
    expect(appFor(stack, projectId, "staging")).toBeUndefined();
    expect(reply()).toMatch(/staging/);
    expect(reactions(noteId)).toEqual(["thumbsup"]);
    expect((await exchange(stack, projectId, "staging", "develop", stagingAppId)).status).not.toBe(200);
    expect((await exchange(stack, projectId, "production", "main")).status).toBe(200);
    expect(await failures(stack)).toEqual([]);
  });
});
