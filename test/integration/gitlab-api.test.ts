import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGitLabApi, type GitLabApi } from "../../src/gitlab/api.ts";
import { GitLabError } from "../../src/gitlab/errors.ts";
import { type GitLabSimulator, startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";

const TOKEN = "glpat-integration-SECRET-0123456789";
const BOT = { id: 900, username: "entra-bot" };
const ALICE = { id: 11, username: "alice", name: "Alice" };
const BOB = { id: 12, username: "bob", name: "Bob" };

let sim: GitLabSimulator;
let api: GitLabApi;

/** Runs a call expected to fail and returns the GitLabError, checking the token never leaks. */
async function failure(p: Promise<unknown>): Promise<GitLabError> {
  const err = await p.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GitLabError);
  const e = err as GitLabError;
  for (const text of [e.message, String(e.stack), JSON.stringify(e)]) expect(text).not.toContain(TOKEN);
  return e;
}

beforeAll(async () => {
  sim = await startGitLabSimulator({
    token: TOKEN,
    botUser: BOT,
    users: [ALICE, BOB],
    projects: [
      {
        id: 42,
        path: "platform/payments",
        members: { [ALICE.id]: 40 },
        inheritedMembers: { [ALICE.id]: 50, [BOB.id]: 30 },
        environments: ["production", { name: "review/fix-1", tier: "development" }],
      },
      { id: 43, path: "legacy/app", subClaimSupport: "legacy" },
      { id: 44, path: "ancient/app", subClaimSupport: "absent" },
      { id: 45, path: "secret/other", botAccessLevel: null },
      { id: 46, path: "older/app", subClaimSupport: "basic" },
      { id: 47, path: "lowrole/app", botAccessLevel: 30 },
    ],
  });
  // Approvers given as a group path: Bob is a member of payments, so also of payments/leads (inherited).
  sim.addGroup("payments", { [BOB.id]: 30 });
  sim.addGroup("payments/leads", { [ALICE.id]: 5 });
  api = createGitLabApi({ url: sim.url, token: TOKEN, timeoutMs: 2_000 });
});

afterAll(async () => {
  await sim.close();
});

beforeEach(() => {
  sim.faults.clear();
  sim.stats.reset();
});

describe("identity and projects", () => {
  it("reads the bot user and memoises it", async () => {
    const me = await api.currentUser();
    expect(me).toMatchObject({ id: BOT.id, username: BOT.username });
    await api.currentUser();
    expect(sim.stats.requests).toBe(1);
  });

  it("rejects a bad token with a typed, non-retryable error that does not echo it", async () => {
    const bad = createGitLabApi({ url: sim.url, token: `${TOKEN}-wrong` });
    const err = await failure(bad.currentUser());
    expect(err).toMatchObject({ code: "unauthorized", status: 401, retryable: false });
    expect(err.message).toContain("GITLAB_TOKEN");
    expect(err.message).not.toContain(`${TOKEN}-wrong`);
  });

  it("accepts the token as a Bearer header too (OAuth-style tokens)", async () => {
    const res = await fetch(`${sim.url}/api/v4/user`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  });

  it("gets a project by id and by path", async () => {
    const byId = await api.getProject(42);
    expect(byId).toMatchObject({
      id: 42,
      pathWithNamespace: "platform/payments",
      webUrl: `${sim.url}/platform/payments`,
      namespace: { fullPath: "platform" },
      ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref"],
    });
    const byPath = await api.getProject("platform/payments");
    expect(byPath.id).toBe(42);
  });

  it("answers 404 for projects the bot cannot see", async () => {
    const err = await failure(api.getProject(45));
    expect(err).toMatchObject({ code: "not_found", status: 404, retryable: false });
    expect(err.message).toContain("404 Project Not Found");
  });
});

describe("members/all", () => {
  it("returns the highest effective level including inherited membership", async () => {
    expect(await api.memberAccessLevel(42, ALICE.id)).toBe(50);
    expect(await api.memberAccessLevel(42, BOB.id)).toBe(30);
  });

  it("returns null for a non-member (404)", async () => {
    expect(await api.memberAccessLevel(42, 777)).toBeNull();
  });

  it("throws when the project itself is invisible rather than reporting 'no access'", async () => {
    const err = await failure(api.memberAccessLevel(45, ALICE.id));
    expect(err.code).toBe("not_found");
  });
});

describe("ci_id_token_sub_claim_components", () => {
  it("sets project_id first on a GitLab that supports it, then reports unchanged", async () => {
    const components = ["project_id", "ref_type", "ref"];
    expect(await api.setSubClaimComponents(42, components)).toEqual({ status: "updated", components });
    expect(sim.project(42)?.subClaimComponents).toEqual(components);
    sim.stats.reset();
    expect(await api.setSubClaimComponents(42, components)).toEqual({ status: "unchanged", components });
    expect(sim.stats.writes).toBe(0);
    await api.setSubClaimComponents(42, ["project_path", "ref_type", "ref"]);
  });

  it("reports 'unsupported' (not a crash) when GitLab requires project_path first", async () => {
    const result = await api.setSubClaimComponents(43, ["project_id", "ref_type", "ref"]);
    expect(result.status).toBe("unsupported");
    expect(result.status === "unsupported" && result.reason).toContain(
      "project_path must be the first element of the sub claim",
    );
    expect(sim.project(43)?.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
  });

  it("reports 'unsupported' when GitLab predates the setting (17.9: Grape's at_least_one_of 400)", async () => {
    const result = await api.setSubClaimComponents(44, ["project_id", "ref_type", "ref"]);
    expect(result.status).toBe("unsupported");
    expect(result.status === "unsupported" && result.reason).toMatch(
      /are missing, at least one parameter must be provided/,
    );
    const res = await fetch(`${sim.url}/api/v4/projects/44`, {
      method: "PUT",
      headers: { "private-token": TOKEN, "content-type": "application/json" },
      body: JSON.stringify({ ci_id_token_sub_claim_components: ["project_id", "ref_type", "ref"] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string };
    expect(body.error).toMatch(/^[a-z_]+(, [a-z_]+)* are missing, at least one parameter must be provided$/);
  });

  it("binding protected refs: GitLab 17.10-18.6 refuses ref_protected; a bot below Maintainer gets 403", async () => {
    const wanted = ["project_path", "ref_type", "ref", "ref_protected"];
    const older = await api.setSubClaimComponents(46, wanted);
    expect(older).toEqual({
      status: "unsupported",
      reason: expect.stringContaining("ref_protected is not an allowed sub claim component"),
    });
    const low = await api.setSubClaimComponents(47, wanted);
    expect(low.status === "unsupported" && low.reason).toMatch(/403 Forbidden .*needs the Maintainer role/);
    expect(sim.project(47)?.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
    expect(await api.setSubClaimComponents(42, wanted)).toEqual({ status: "updated", components: wanted });
    await api.setSubClaimComponents(42, ["project_path", "ref_type", "ref"]);
  });

  it("answers the exact 400 body documented for old GitLab", async () => {
    const res = await fetch(`${sim.url}/api/v4/projects/43`, {
      method: "PUT",
      headers: { "private-token": TOKEN, "content-type": "application/json" },
      body: JSON.stringify({ ci_id_token_sub_claim_components: ["project_id", "ref_type", "ref"] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      message: {
        "ci_cd_settings.id_token_sub_claim_components": [
          "project_path must be the first element of the sub claim",
          "project_id is not an allowed sub claim component",
        ],
      },
    });
  });
});

describe("approvers: users and group members", () => {
  it("reads a user's current username by id; null for an unknown id", async () => {
    expect(await api.getUser(ALICE.id)).toMatchObject({ id: ALICE.id, username: "alice" });
    expect(await api.getUser(4242)).toBeNull();
  });

  it("group members/all: direct, inherited from ancestors; Minimal Access is reported as such", async () => {
    sim.stats.reset();
    expect(await api.groupMemberAccessLevel("payments/leads", BOB.id)).toBe(30);
    expect(sim.stats.log.at(-1)).toEqual({
      method: "GET",
      path: `/groups/payments%2Fleads/members/all/${BOB.id}`,
      status: 200,
    });
    expect(await api.groupMemberAccessLevel("payments/leads", ALICE.id)).toBe(5);
    expect(await api.groupMemberAccessLevel("payments", ALICE.id)).toBeNull();
    expect(await api.groupMemberAccessLevel("no/such-group", BOB.id)).toBeNull();
  });
});

describe("CI/CD variables", () => {
  const input = {
    key: "AZURE_CLIENT_ID",
    value: "11111111-2222-3333-4444-555555555555",
    environmentScope: "production",
  };

  it("creates, leaves identical values alone, and updates in its own scope", async () => {
    expect((await api.upsertVariable(42, input)).op).toBe("created");
    expect((await api.upsertVariable(42, { ...input, environmentScope: "staging" })).op).toBe("created");
    sim.stats.reset();
    expect((await api.upsertVariable(42, input)).op).toBe("unchanged");
    expect(sim.stats.writes).toBe(0);
    const changed = await api.upsertVariable(42, { ...input, value: "99999999-2222-3333-4444-555555555555" });
    expect(changed.op).toBe("updated");
    const vars = sim.project(42)?.variables.filter((v) => v.key === "AZURE_CLIENT_ID") ?? [];
    expect(vars.map((v) => [v.environmentScope, v.value]).sort()).toEqual([
      ["production", "99999999-2222-3333-4444-555555555555"],
      ["staging", "11111111-2222-3333-4444-555555555555"],
    ]);
  });

  it("turns 'has already been taken' on create into an update (a racing writer got there first)", async () => {
    await api.upsertVariable(42, {
      key: "AZURE_TENANT_ID",
      value: "aaaaaaaa-0000-0000-0000-000000000000",
      environmentScope: "*",
    });
    sim.stats.reset();
    // Hide the existing variable from the read so the client takes the create path and meets the duplicate.
    sim.faults.failNext(1, 404, { pathIncludes: "/variables/AZURE_TENANT_ID", method: "GET" });
    const result = await api.upsertVariable(42, {
      key: "AZURE_TENANT_ID",
      value: "bbbbbbbb-0000-0000-0000-000000000000",
      environmentScope: "*",
    });
    expect(result.op).toBe("updated");
    expect(sim.stats.log.map((l) => `${l.method} ${l.status}`)).toEqual(["GET 404", "POST 400", "PUT 200"]);
    expect(sim.project(42)?.variables.filter((v) => v.key === "AZURE_TENANT_ID")).toHaveLength(1);
  });

  it("refuses masked values GitLab cannot mask", async () => {
    const err = await failure(
      api.upsertVariable(42, { key: "SHORT", value: "abc", environmentScope: "*", masked: true }),
    );
    expect(err).toMatchObject({ code: "validation", status: 400, retryable: false });
  });
});

describe("issues, notes and emoji", () => {
  it("creates, finds by a marker in the description, and edits an issue", async () => {
    const issue = await api.createIssue(42, {
      title: "Azure login",
      description: "hello\n<!-- gitlab-entra-bot:onboarding -->",
      labels: ["entra"],
    });
    expect(issue).toMatchObject({ projectId: 42, title: "Azure login", authorId: BOT.id, labels: ["entra"] });
    const second = await api.createIssue(42, { title: "Other", description: "nothing" });
    expect(second.iid).toBe(issue.iid + 1);
    const found = await api.findIssues(42, {
      search: "gitlab-entra-bot:onboarding",
      searchIn: "description",
      authorId: BOT.id,
    });
    expect(found.map((i) => i.iid)).toEqual([issue.iid]);
    const edited = await api.editIssue(42, issue.iid, {
      description: "v2\n<!-- gitlab-entra-bot:onboarding -->",
    });
    expect(edited.description).toContain("v2");
  });

  it("creates, lists (across pages) and edits notes, and awards an emoji once", async () => {
    const issue = await api.createIssue(42, { title: "Notes", description: "" });
    for (let i = 0; i < 120; i++) sim.addUserNote(42, issue.iid, ALICE.id, `comment ${i}`);
    const note = await api.createIssueNote(42, issue.iid, "status v1");
    sim.stats.reset();
    const notes = await api.listIssueNotes(42, issue.iid);
    expect(notes).toHaveLength(121);
    expect(notes.at(-1)).toMatchObject({ id: note.id, authorId: BOT.id });
    expect(sim.stats.requests).toBe(2);
    const edited = await api.editIssueNote(42, issue.iid, note.id, "status v2");
    expect(edited.body).toBe("status v2");
    const command = notes[0];
    if (!command) throw new Error("no notes");
    expect(await api.awardEmojiOnNote(42, issue.iid, command.id, "thumbsup")).toBe("awarded");
    expect(await api.awardEmojiOnNote(42, issue.iid, command.id, "thumbsup")).toBe("already");
  });

  it("cannot edit somebody else's note (403)", async () => {
    const issue = await api.createIssue(42, { title: "Foreign", description: "" });
    const theirs = sim.addUserNote(42, issue.iid, ALICE.id, "/entra onboard");
    const err = await failure(api.editIssueNote(42, issue.iid, theirs.id, "hijack"));
    expect(err).toMatchObject({ code: "forbidden", status: 403, retryable: false });
  });
});

describe("environments", () => {
  it("lists environments with their tiers", async () => {
    const envs = await api.listEnvironments(42);
    expect(envs.map((e) => [e.name, e.tier])).toEqual([
      ["production", "production"],
      ["review/fix-1", "development"],
    ]);
  });
});

describe("transient failures: one retry layer", () => {
  it("maps 503 to a retryable error after exactly one request", async () => {
    sim.faults.failNext(1, 503);
    const err = await failure(api.getProject(42));
    expect(err).toMatchObject({ code: "unavailable", status: 503, retryable: true });
    expect(sim.stats.requests).toBe(1);
  });

  it("maps 502 (which gitbeaker would retry itself) to one request and a retryable error", async () => {
    sim.faults.failNext(1, 502);
    const err = await failure(api.getProject(42));
    expect(err).toMatchObject({ code: "unavailable", retryable: true });
    expect(sim.stats.requests).toBe(1);
  });

  it("maps 429 to rate_limited with retryAfterMs from Retry-After", async () => {
    sim.faults.failNext(1, 429, { retryAfterSeconds: 7 });
    const err = await failure(api.listEnvironments(42));
    expect(err).toMatchObject({ code: "rate_limited", status: 429, retryable: true, retryAfterMs: 7000 });
    expect(sim.stats.requests).toBe(1);
  });

  it("enforces a per-minute rate limit with Retry-After", async () => {
    sim.faults.rateLimitPerMinute = 2;
    await api.getProject(42);
    await api.getProject(42);
    const err = await failure(api.getProject(42));
    expect(err.code).toBe("rate_limited");
    expect(err.retryAfterMs).toBeGreaterThan(0);
  });

  it("treats a down GitLab as retryable", async () => {
    sim.faults.down = true;
    const err = await failure(api.getProject(42));
    expect(err).toMatchObject({ code: "unavailable", retryable: true });
  });

  it("treats a timeout as retryable", async () => {
    // GitLab answers after 10 s; the client gives up after 50 ms: the timeout wins on any machine.
    sim.faults.latencyMs = 10_000;
    const slow = createGitLabApi({ url: sim.url, token: TOKEN, timeoutMs: 50 });
    const err = await failure(slow.getProject(42));
    expect(err).toMatchObject({ code: "timeout", retryable: true });
  });

  it("treats an unreachable GitLab as a retryable network error", async () => {
    const gone = createGitLabApi({ url: "https://localhost:1", token: TOKEN });
    const err = await failure(gone.currentUser());
    expect(err).toMatchObject({ code: "network", retryable: true });
  });
});

describe("helpers behind the client", () => {
  it("parses Retry-After as seconds or as an HTTP date", async () => {
    const { parseRetryAfter } = await import("../../src/gitlab/errors.ts");
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it("sends gitbeaker's camelCase options as GitLab's snake_case, nested filters in brackets", async () => {
    const { decamelize, toQuery } = await import("../../src/gitlab/api-requester.ts");
    expect(decamelize("ciIdTokenSubClaimComponents")).toBe("ci_id_token_sub_claim_components");
    expect(decamelize("environment_scope")).toBe("environment_scope");
    expect(
      decodeURIComponent(toQuery({ filter: { environment_scope: "prod" }, perPage: 100, iids: [1, 2] })),
    ).toBe("filter[environment_scope]=prod&per_page=100&iids[]=1&iids[]=2");
  });
});
