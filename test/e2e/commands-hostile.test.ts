import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SimIssue } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appFor, botNotes, entraSnapshot, openIssue, statusNotes } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Commands that reach for object prototypes, and commands from strangers. A public project lets any signed-in
 * user comment, so the bot must neither crash on a hostile environment name (a crash is retried ten times)
 * nor talk to people who are not project members, and never repeat what they typed.
 */
let stack: SandboxStack;
const { alice, bot } = SANDBOX.users;
const stranger = { id: 9, username: "stranger", name: "Stranger (not a member)" };
let projectId = 0;
let issue: SimIssue;

beforeAll(async () => {
  stack = await testStack("commands-hostile");
  stack.gitlab.addUser(stranger);
  projectId = stack.gitlab.addProject({
    path: "open/project",
    visibility: "public",
    members: { [alice.id]: 40 },
  }).id;
  issue = openIssue(stack, projectId, alice.id, "Azure please");
});
afterAll(async () => {
  await stack?.close();
});

async function say(userId: number, text: string) {
  const { noteId, delivery } = await stack.driver.comment(projectId, issue.iid, userId, text);
  expect(delivery.status).toBe(202);
  await settled(stack);
  return noteId;
}

/** Attempts of every events job, by the note it was about. */
async function attemptsFor(noteId: number): Promise<number[]> {
  const jobs = await stack.service.queues.events.getJobs([
    "completed",
    "failed",
    "delayed",
    "waiting",
    "active",
  ]);
  return jobs.filter((j) => j.data.intent?.noteId === noteId).map((j) => j.attemptsMade);
}

describe("environment names that are Object.prototype's keys", () => {
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    for (const verb of ["onboard", "plan", "offboard"]) {
      it(`/entra ${verb} ${name}: answered politely, no crash, no retry, nothing written to Entra`, async () => {
        const before = entraSnapshot(stack);
        const noteId = await say(alice.id, `/entra ${verb} ${name}`);
        expect(await failures(stack)).toEqual([]);
        expect(await attemptsFor(noteId)).toEqual([1]);
        const reply = statusNotes(stack, projectId, issue.iid)[0]?.body ?? "";
        if (verb === "offboard") {
          expect(reply).toMatch(/no identity (of the bot )?exists for environment/);
        } else {
          expect(reply).toMatch(/no rule for/);
          expect(reply).toMatch(/Environments the policy allows: `production`, `staging`, `review\/\*`/);
        }
        expect(entraSnapshot(stack)).toBe(before);
        expect(appFor(stack, projectId, name)).toBeUndefined();
      });
    }
  }

  it("a deployment of an environment named constructor does not onboard anything, and does not crash", async () => {
    const before = entraSnapshot(stack);
    const res = await stack.driver.deploy(projectId, "constructor", { user: alice.id });
    expect(res.status).toBe(202);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    expect(entraSnapshot(stack)).toBe(before);
  });
});

describe("strangers (not project members) get no help and hear nothing they typed", () => {
  it("help and unknown words from a non-member: no reply at all, no reaction", async () => {
    const before = botNotes(stack, projectId, issue.iid).map((n) => `${n.id}:${n.body}`);
    const typed = [
      "/entra help",
      "/entra",
      "/entra <img src=x onerror=alert(1)> @all",
      "/entra [click](https://evil.example) /close",
      "/entra hlep",
    ];
    for (const text of typed) {
      const noteId = await say(stranger.id, text);
      expect(issue.notes.find((n) => n.id === noteId)?.awards.filter((a) => a.userId === bot.id)).toEqual([]);
    }
    expect(botNotes(stack, projectId, issue.iid).map((n) => `${n.id}:${n.body}`)).toEqual(before);
    for (const n of botNotes(stack, projectId, issue.iid)) {
      expect(n.body).not.toContain("onerror");
      expect(n.body).not.toContain("evil.example");
      expect(n.body).not.toContain("hlep");
    }
    expect(await failures(stack)).toEqual([]);
  });

  it("the same words from a member get help, without the typed word repeated", async () => {
    await say(alice.id, "/entra hlep <b>bold</b>");
    const reply = statusNotes(stack, projectId, issue.iid)[0]?.body ?? "";
    expect(reply).toMatch(/That is not a command I know\. Did you mean `\/entra help`\?/);
    expect(reply).toContain("### `/entra` commands");
    expect(reply).not.toContain("hlep");
    expect(reply).not.toContain("<b>");
  });

  it("an onboard from a stranger is refused in one sentence that names nothing they typed", async () => {
    const before = entraSnapshot(stack);
    await say(stranger.id, "/entra onboard production <script>x</script>");
    const reply = statusNotes(stack, projectId, issue.iid)[0]?.body ?? "";
    expect(reply).toMatch(/^Sorry, only members of this project can use `\/entra` commands here\./);
    expect(reply).not.toContain("script");
    expect(reply).not.toContain("production");
    expect(entraSnapshot(stack)).toBe(before);
  });
});

describe("confidentiality comes from GitLab's API, not the delivery", () => {
  it("an internal note delivered as an ordinary Note Hook is answered internally; the public status note is untouched", async () => {
    await say(alice.id, "/entra help");
    const publicBefore = statusNotes(stack, projectId, issue.iid).filter((n) => !n.internal);
    expect(publicBefore).toHaveLength(1);
    const publicBody = publicBefore[0]?.body;

    const note = stack.gitlab.addUserNote(projectId, issue.iid, alice.id, "/entra status", {
      internal: true,
    });
    const { event, payload } = stack.driver.notePayload(projectId, issue.iid, {
      noteId: note.id,
      authorId: alice.id,
      text: "/entra status",
      confidential: false,
    });
    expect(event).toBe("Note Hook");
    expect((await stack.driver.send(event, payload)).status).toBe(202);
    await settled(stack);

    const internal = statusNotes(stack, projectId, issue.iid).filter((n) => n.internal);
    expect(internal).toHaveLength(1);
    expect(internal[0]?.body).toContain("Azure access for");
    expect(statusNotes(stack, projectId, issue.iid).find((n) => !n.internal)?.body).toBe(publicBody);
    expect(await failures(stack)).toEqual([]);
  });
});
