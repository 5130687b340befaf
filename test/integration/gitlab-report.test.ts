import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { createGitLabApi, type GitLabApi } from "../../src/gitlab/api.ts";
import { GitLabError } from "../../src/gitlab/errors.ts";
import { trusted } from "../../src/gitlab/markdown-inert.ts";
import { authorizeCommand } from "../../src/onboarding/authorize.ts";
import {
  ONBOARDING_MARKER,
  replyToCommand,
  STATUS_MARKER,
  setCiVariables,
  upsertOnboardingIssue,
} from "../../src/onboarding/report.ts";
import type { EnvironmentOutcome } from "../../src/onboarding/types.ts";
import { type GitLabSimulator, startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";

const TOKEN = "glpat-report-SECRET-abcdef";
const BOT = { id: 900, username: "entra-bot" };
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const DEV = { id: 21, username: "dev", name: "Dev" };
const MAINT = { id: 22, username: "maint", name: "Maint" };
const GUEST = { id: 23, username: "guest", name: "Guest" };

const policy = parsePolicy(`
environments:
  production:
    refs: ["branch:main"]
    minAccessLevel: maintainer
  staging:
    refs: ["branch:main", "branch:develop"]
    minAccessLevel: developer
  "review/*":
    refs: ["branch:main"]
    minAccessLevel: developer
`);

let sim: GitLabSimulator;
let api: GitLabApi;
let nextProject = 200;

function freshProject() {
  const id = nextProject++;
  sim.addProject({
    id,
    path: `team/app-${id}`,
    members: { [DEV.id]: 30, [GUEST.id]: 10 },
    inheritedMembers: { [MAINT.id]: 40 },
  });
  return id;
}

function outcome(
  environment: string,
  appId: string,
  status: EnvironmentOutcome["status"] = "changed",
): EnvironmentOutcome {
  return {
    environment,
    status,
    identity: {
      environment,
      appObjectId: `obj-${environment}`,
      appId,
      spObjectId: `sp-${environment}`,
      displayName: environment,
    },
    refs: ["branch:main"],
    subjects: [],
    groups: [],
    changes: [],
  };
}

beforeAll(async () => {
  sim = await startGitLabSimulator({ token: TOKEN, botUser: BOT, users: [DEV, MAINT, GUEST] });
  api = createGitLabApi({ url: sim.url, token: TOKEN });
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.faults.clear();
  sim.stats.reset();
});

describe("upsertOnboardingIssue", () => {
  it("creates the issue once, edits it on change, and writes nothing when unchanged", async () => {
    const pid = freshProject();
    const first = await upsertOnboardingIssue(api, pid, trusted("## Azure access\nv1"));
    expect(first).toMatchObject([{ op: "create", kind: "issue", objectId: "1" }]);
    expect(first[0]?.detail).toBe(`${sim.url}/team/app-${pid}/-/issues/1`);

    const again = await upsertOnboardingIssue(api, pid, trusted("## Azure access\nv1"));
    expect(again).toEqual([]);

    const changed = await upsertOnboardingIssue(api, pid, trusted("## Azure access\nv2"));
    expect(changed).toMatchObject([{ op: "update", kind: "issue", objectId: "1" }]);

    const issues = sim.project(pid)?.issues ?? [];
    expect(issues).toHaveLength(1);
    expect(issues[0]?.description).toContain("v2");
    expect(issues[0]?.description).toContain(ONBOARDING_MARKER);
    expect(issues[0]?.authorId).toBe(BOT.id);
  });

  it("ignores look-alike issues written by humans", async () => {
    const pid = freshProject();
    sim.state.projects
      .find((p) => p.id === pid)
      ?.issues.push({
        id: 999_001,
        iid: 1,
        projectId: pid,
        title: "copy-paste",
        description: `I pasted ${ONBOARDING_MARKER}`,
        state: "opened",
        labels: [],
        authorId: DEV.id,
        confidential: false,
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
        notes: [],
      });
    const changes = await upsertOnboardingIssue(api, pid, trusted("bot text"));
    expect(changes[0]).toMatchObject({ op: "create", objectId: "2" });
    expect(sim.project(pid)?.issues.find((i) => i.iid === 1)?.description).toBe(
      `I pasted ${ONBOARDING_MARKER}`,
    );
  });

  it("surfaces GitLab outages as retryable errors, and a retry still ends with one issue", async () => {
    const pid = freshProject();
    sim.faults.failNext(1, 503, { method: "POST", pathIncludes: "/issues" });
    const err = await upsertOnboardingIssue(api, pid, trusted("text")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitLabError);
    expect((err as GitLabError).retryable).toBe(true);
    await upsertOnboardingIssue(api, pid, trusted("text"));
    await upsertOnboardingIssue(api, pid, trusted("text"));
    expect(sim.project(pid)?.issues).toHaveLength(1);
  });
});

describe("replyToCommand", () => {
  it("posts one status note per issue, edits it in place on re-runs, and reacts once on the command", async () => {
    const pid = freshProject();
    await upsertOnboardingIssue(api, pid, trusted("issue"));
    const cmd1 = sim.addUserNote(pid, 1, DEV.id, "/entra plan");
    const first = await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: cmd1.id,
      body: trusted("plan: 2 changes"),
    });
    expect(first.map((c) => `${c.op}:${c.kind}`)).toEqual(["create:note", "add:note"]);

    const cmd2 = sim.addUserNote(pid, 1, DEV.id, "/entra onboard");
    const second = await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: cmd2.id,
      body: trusted("onboarded"),
    });
    expect(second.map((c) => `${c.op}:${c.kind}`)).toEqual(["update:note", "add:note"]);

    sim.stats.reset();
    const replay = await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: cmd2.id,
      body: trusted("onboarded"),
    });
    expect(replay).toEqual([]);
    expect(sim.stats.log.filter((l) => l.status < 400 && l.method !== "GET")).toEqual([]);

    const notes = sim.project(pid)?.issues[0]?.notes ?? [];
    const botNotes = notes.filter((n) => n.authorId === BOT.id);
    expect(botNotes).toHaveLength(1);
    expect(botNotes[0]?.body).toContain("onboarded");
    expect(botNotes[0]?.body).toContain(STATUS_MARKER);
    for (const cmd of [cmd1, cmd2]) {
      expect(notes.find((n) => n.id === cmd.id)?.awards.map((a) => [a.name, a.userId])).toEqual([
        ["thumbsup", BOT.id],
      ]);
    }
  });

  it("answers internal commands in an internal note of their own, never in (or by flipping) the public one", async () => {
    const pid = freshProject();
    await upsertOnboardingIssue(api, pid, trusted("issue"));
    const pub = sim.addUserNote(pid, 1, DEV.id, "/entra help");
    await replyToCommand(api, { projectId: pid, issueIid: 1, noteId: pub.id, body: trusted("public help") });
    const priv = sim.addUserNote(pid, 1, DEV.id, "/entra status");
    const changes = await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: priv.id,
      body: trusted("client id 1234"),
      internal: true,
    });
    expect(changes.map((c) => `${c.op}:${c.target}`)).toContain("create:internal note on issue #1");
    const again = await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: priv.id,
      body: trusted("client id 5678"),
      internal: true,
    });
    expect(again.map((c) => c.op)).toEqual(["update"]);
    const bot = (sim.project(pid)?.issues[0]?.notes ?? []).filter((n) => n.authorId === BOT.id);
    expect(bot.map((n) => [n.internal, n.body.includes("client id")])).toEqual([
      [false, false],
      [true, true],
    ]);
    expect(bot[0]?.body).toContain("public help");
    // A public note that merely carries the internal marker text is not taken for the internal status note.
    const planted = sim.project(pid)?.issues[0]?.notes.find((n) => n.internal);
    if (planted) planted.internal = false;
    await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: priv.id,
      body: trusted("client id 9999"),
      internal: true,
    });
    const after = (sim.project(pid)?.issues[0]?.notes ?? []).filter((n) => n.authorId === BOT.id);
    expect(after.filter((n) => n.body.includes("9999")).map((n) => n.internal)).toEqual([true]);
  });

  it("can skip the reaction", async () => {
    const pid = freshProject();
    await upsertOnboardingIssue(api, pid, trusted("issue"));
    const cmd = sim.addUserNote(pid, 1, DEV.id, "/entra status");
    const changes = await replyToCommand(api, {
      projectId: pid,
      issueIid: 1,
      noteId: cmd.id,
      body: trusted("x"),
      react: false,
    });
    expect(changes.map((c) => c.op)).toEqual(["create"]);
    expect(sim.project(pid)?.issues[0]?.notes.find((n) => n.id === cmd.id)?.awards).toEqual([]);
  });
});

describe("setCiVariables", () => {
  it("sets env-scoped AZURE_CLIENT_ID and AZURE_TENANT_ID idempotently", async () => {
    const pid = freshProject();
    const outcomes = [
      outcome("production", "aaaaaaaa-0000-0000-0000-000000000001"),
      outcome("staging", "aaaaaaaa-0000-0000-0000-000000000002", "unchanged"),
      { ...outcome("qa", "x"), status: "refused" as const },
    ];
    const first = await setCiVariables(api, pid, outcomes, TENANT);
    expect(first.map((c) => `${c.op} ${c.target}`)).toEqual([
      "create AZURE_CLIENT_ID (production)",
      "create AZURE_CLIENT_ID (staging)",
      "create AZURE_TENANT_ID (*)",
    ]);
    sim.stats.reset();
    expect(await setCiVariables(api, pid, outcomes, TENANT)).toEqual([]);
    expect(sim.stats.writes).toBe(0);

    const rotated = await setCiVariables(
      api,
      pid,
      [outcome("production", "bbbbbbbb-0000-0000-0000-000000000001")],
      TENANT,
    );
    expect(rotated.map((c) => `${c.op} ${c.target}`)).toEqual(["update AZURE_CLIENT_ID (production)"]);
    const vars = sim.project(pid)?.variables ?? [];
    expect(vars.map((v) => `${v.key}@${v.environmentScope}=${v.value}`).sort()).toEqual([
      "AZURE_CLIENT_ID@production=bbbbbbbb-0000-0000-0000-000000000001",
      "AZURE_CLIENT_ID@staging=aaaaaaaa-0000-0000-0000-000000000002",
      `AZURE_TENANT_ID@*=${TENANT}`,
    ]);
  });

  it("writes nothing when no environment is usable", async () => {
    const pid = freshProject();
    expect(await setCiVariables(api, pid, [{ ...outcome("prod", "x"), status: "failed" }], TENANT)).toEqual(
      [],
    );
    expect(sim.stats.requests).toBe(0);
  });
});

describe("authorizeCommand", () => {
  it("accepts roles that meet every named environment's minimum (inherited membership counts)", async () => {
    const pid = freshProject();
    expect(await authorizeCommand(api, policy, pid, DEV.id, ["staging", "review/fix-1"])).toEqual({
      ok: true,
      accessLevel: 30,
    });
    expect(await authorizeCommand(api, policy, pid, MAINT.id, ["production", "staging"])).toEqual({
      ok: true,
      accessLevel: 40,
    });
  });

  it("refuses a Developer for production, naming the role needed", async () => {
    const pid = freshProject();
    const result = await authorizeCommand(api, policy, pid, DEV.id, ["staging", "production"]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toContain("Maintainer role or higher");
    expect(!result.ok && result.message).toContain("`production`");
    expect(!result.ok && result.message).toContain("your role is Developer");
  });

  it("refuses non-members and environments without a policy rule", async () => {
    const pid = freshProject();
    const stranger = await authorizeCommand(api, policy, pid, 4242, ["staging"]);
    expect(stranger.ok).toBe(false);
    expect(!stranger.ok && stranger.message).toContain("only members");

    // A stranger hears only that commands are for members: nothing about, or from, what they typed.
    const strangerUnknown = await authorizeCommand(api, policy, pid, 4242, ["qa-<b>x</b>"]);
    expect(!strangerUnknown.ok && strangerUnknown.message).toBe(
      "Sorry, only members of this project can use `/entra` commands here.",
    );

    sim.stats.reset();
    const unknown = await authorizeCommand(api, policy, pid, MAINT.id, ["qa"]);
    expect(unknown.ok).toBe(false);
    expect(!unknown.ok && unknown.message).toContain("no rule for `qa`");
    expect(!unknown.ok && unknown.message).toContain("`production`, `staging`, `review/*`");
    // Membership is read first (one GET); nothing else is asked of GitLab.
    expect(sim.stats.requests).toBe(1);
  });

  it("needs Reporter for commands without environments (status)", async () => {
    const pid = freshProject();
    expect((await authorizeCommand(api, policy, pid, GUEST.id, [])).ok).toBe(false);
    expect((await authorizeCommand(api, policy, pid, DEV.id, [])).ok).toBe(true);
  });
});
