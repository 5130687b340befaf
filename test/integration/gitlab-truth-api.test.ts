import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGitLabApi, type GitLabApi } from "../../src/gitlab/api.ts";
import { noteSchema, projectSchema } from "../../src/gitlab/api-schemas.ts";
import { isGitLabError } from "../../src/gitlab/errors.ts";
import { isPendingDeletion } from "../../src/gitlab/paths.ts";
import { type GitLabSimulator, startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";

/**
 * What the worker re-reads from GitLab before any Entra write, through the real client (gitbeaker) against
 * the GitLab simulator, each shape pinned to GitLab's documented example.
 */
const TOKEN = "glpat-truth-api-SECRET";
const BOT = { id: 1, username: "bot" };
const AUTHOR = { id: 5, username: "eve", name: "Eve" };
let sim: GitLabSimulator;
let api: GitLabApi;

const documentedNotes = JSON.parse(
  readFileSync(
    new URL("../fixtures/reference/gitlab/api-issue-notes-list-response.json", import.meta.url),
    "utf8",
  ),
) as Record<string, unknown>[];

beforeAll(async () => {
  sim = await startGitLabSimulator({ token: TOKEN, botUser: BOT, users: [AUTHOR] });
  api = createGitLabApi({ url: sim.url, token: TOKEN });
});
afterAll(async () => {
  await sim.close();
});

async function status(p: Promise<unknown>): Promise<number | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    if (isGitLabError(err)) return err.status ?? -1;
    throw err;
  }
}

describe("single issue note (doc/api/notes.md)", () => {
  it("the documented examples parse, including the internal one", () => {
    const [system, internal] = documentedNotes.map((n) => noteSchema.parse(n));
    expect(system).toMatchObject({
      id: 302,
      system: true,
      internal: false,
      noteable_type: "Issue",
      noteable_iid: 377,
    });
    expect(internal).toMatchObject({ id: 305, internal: true, confidential: true, noteable_iid: 121 });
  });

  it("the simulator answers with every field of the documented shape", async () => {
    const p = sim.addProject({ path: "notes/app", members: { [AUTHOR.id]: 30 } });
    const issue = await api.createIssue(p.id, { title: "t", description: "d" });
    const note = sim.addUserNote(p.id, issue.iid, AUTHOR.id, "/entra status", { internal: true });
    const res = await fetch(`${sim.url}/api/v4/projects/${p.id}/issues/${issue.iid}/notes/${note.id}`, {
      headers: { "PRIVATE-TOKEN": TOKEN },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    const documentedKeys = Object.keys(documentedNotes[1] ?? {}).sort();
    expect(
      Object.keys(body)
        .filter((k) => documentedKeys.includes(k))
        .sort(),
    ).toEqual(documentedKeys);
    expect(body).toMatchObject({
      noteable_type: "Issue",
      noteable_iid: issue.iid,
      internal: true,
      system: false,
    });
  });

  it("getIssueNote: author, body, internal flag and issue; a note of another issue is a 404", async () => {
    const p = sim.addProject({ path: "notes/other", members: { [AUTHOR.id]: 30 } });
    const one = await api.createIssue(p.id, { title: "one", description: "" });
    const two = await api.createIssue(p.id, { title: "two", description: "" });
    const note = sim.addUserNote(p.id, two.iid, AUTHOR.id, "/entra onboard staging");
    expect(await api.getIssueNote(p.id, two.iid, note.id)).toEqual({
      id: note.id,
      body: "/entra onboard staging",
      authorId: AUTHOR.id,
      authorUsername: AUTHOR.username,
      system: false,
      internal: false,
      noteableType: "Issue",
      noteableIid: two.iid,
    });
    expect(await status(api.getIssueNote(p.id, one.iid, note.id))).toBe(404);
    expect(await status(api.getIssueNote(p.id, two.iid, 999_999))).toBe(404);
  });

  it("getIssue says whether the issue is confidential", async () => {
    const p = sim.addProject({ path: "notes/conf" });
    const open = await api.createIssue(p.id, { title: "open", description: "" });
    const secret = await api.createIssue(p.id, { title: "secret", description: "", confidential: true });
    expect((await api.getIssue(p.id, open.iid)).confidential).toBe(false);
    expect((await api.getIssue(p.id, secret.iid)).confidential).toBe(true);
  });
});

describe("a project by path (GET /projects/:url-encoded-path, redirects after renames)", () => {
  it("finds the current holder case-insensitively, follows a rename's redirect, and answers null when none", async () => {
    const p = sim.addProject({ path: "Paths/Svc" });
    expect((await api.findProjectByPath("paths/svc"))?.id).toBe(p.id);
    sim.renameProject(p.id, "paths/svc-v2");
    // The old path redirects to the renamed project until someone else takes it.
    expect((await api.findProjectByPath("Paths/Svc"))?.id).toBe(p.id);
    const taker = sim.addProject({ path: "paths/svc" });
    expect((await api.findProjectByPath("paths/svc"))?.id).toBe(taker.id);
    expect(await api.findProjectByPath("paths/none")).toBeNull();
  });
});

describe("a project pending deletion (doc/api/projects.md marked_for_deletion_on)", () => {
  it("shows the date and the -deletion_scheduled- path; the old path is free at once", async () => {
    const p = sim.addProject({ path: "del/app" });
    expect((await api.getProject(p.id)).markedForDeletionOn).toBeUndefined();
    sim.scheduleDeletion(p.id);
    const live = await api.getProject(p.id);
    expect(live.pathWithNamespace).toBe(`del/app-deletion_scheduled-${p.id}`);
    expect(live.markedForDeletionOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(isPendingDeletion(live)).toBe(true);
    // Documented shape: both the deprecated _at and _on, as dates.
    expect(projectSchema.parse(await rawProject(p.id))).toMatchObject({
      marked_for_deletion_at: live.markedForDeletionOn,
      marked_for_deletion_on: live.markedForDeletionOn,
    });
    sim.removeProject(p.id);
    expect(await status(api.getProject(p.id))).toBe(404);
  });
});

async function rawProject(id: number): Promise<unknown> {
  const res = await fetch(`${sim.url}/api/v4/projects/${id}`, { headers: { "PRIVATE-TOKEN": TOKEN } });
  return res.json();
}
