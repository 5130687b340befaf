import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGitLabApi } from "../../src/gitlab/api.ts";
import { type GitLabSimulator, startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";

const TOKEN = "glpat-sim-control-SECRET";
let sim: GitLabSimulator;

const post = async (path: string, body: unknown) => {
  const res = await fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  sim = await startGitLabSimulator({ token: TOKEN, botUser: { id: 1, username: "bot" } });
});
afterAll(async () => {
  await sim.close();
});

describe("/_sim control endpoints (for the sandbox and other processes)", () => {
  it("creates projects, members and environments, renames, and reports state without tokens", async () => {
    const created = await post("/_sim/projects", { id: 77, path: "grp/sub/app", members: { "5": 30 } });
    expect(created.status).toBe(201);
    expect(created.json.path_with_namespace).toBe("grp/sub/app");
    expect((await post("/_sim/projects", { id: 78, path: "grp/sub/app" })).status).toBe(409);
    expect((await post("/_sim/projects", { path: "no-namespace" })).status).toBe(400);

    expect((await post("/_sim/users", { id: 5, username: "eve", token: "eve-token-123" })).status).toBe(201);
    expect(
      (await post("/_sim/projects/77/members", { userId: 6, accessLevel: 40, inherited: true })).status,
    ).toBe(200);
    expect((await post("/_sim/projects/77/environments", { name: "production" })).json.tier).toBe(
      "production",
    );

    const renamed = await post("/_sim/projects/77/rename", { path: "grp/sub/app2" });
    expect(renamed.json).toEqual({
      id: 77,
      path_with_namespace: "grp/sub/app2",
      old_path_with_namespace: "grp/sub/app",
    });

    const api = createGitLabApi({ url: sim.url, token: TOKEN });
    expect((await api.getProject(77)).pathWithNamespace).toBe("grp/sub/app2");
    expect(await api.memberAccessLevel(77, 6)).toBe(40);
    // Another user's token works too (their own view of GitLab).
    const eve = createGitLabApi({ url: sim.url, token: "eve-token-123" });
    expect((await eve.currentUser()).username).toBe("eve");

    const state = (await (await fetch(`${sim.url}/_sim/state`)).json()) as {
      users: Record<string, unknown>[];
    };
    expect(JSON.stringify(state)).not.toContain(TOKEN);
    expect(JSON.stringify(state)).not.toContain("eve-token-123");
    expect(state.users.map((u) => u.username)).toEqual(["bot", "eve"]);
  });

  it("posts a human comment and sets faults over HTTP", async () => {
    const api = createGitLabApi({ url: sim.url, token: TOKEN });
    const issue = await api.createIssue(77, { title: "t", description: "d" });
    const note = await post(`/_sim/projects/77/issues/${issue.iid}/notes`, {
      userId: 5,
      body: "/entra status",
    });
    expect(note.status).toBe(201);
    expect((await api.listIssueNotes(77, issue.iid)).map((n) => [n.authorId, n.body])).toEqual([
      [5, "/entra status"],
    ]);

    await post("/_sim/faults", { failNext: { count: 1, status: 429, retryAfterSeconds: 3 } });
    const err = await api.getProject(77).catch((e: unknown) => e as { code: string; retryAfterMs: number });
    expect(err).toMatchObject({ code: "rate_limited", retryAfterMs: 3000 });
    await post("/_sim/faults", { down: true });
    expect((await fetch(`${sim.url}/api/v4/user`, { headers: { "private-token": TOKEN } })).status).toBe(503);
    await post("/_sim/faults", { clear: true });
    expect((await fetch(`${sim.url}/api/v4/user`, { headers: { "private-token": TOKEN } })).status).toBe(200);
    const stats = (await (await fetch(`${sim.url}/_sim/stats`)).json()) as { requests: number };
    expect(stats.requests).toBeGreaterThan(0);
  });

  it("answers unknown API paths like GitLab and 401 without a token", async () => {
    expect((await fetch(`${sim.url}/api/v4/user`)).status).toBe(401);
    expect(await (await fetch(`${sim.url}/api/v4/user`)).json()).toEqual({ message: "401 Unauthorized" });
    const res = await fetch(`${sim.url}/api/v4/nope`, { headers: { "private-token": TOKEN } });
    expect(res.status).toBe(404);
  });
});

describe("environments as GitLab's environments API documents them", () => {
  const gl = (method: string, path: string) =>
    fetch(`${sim.url}/api/v4${path}`, { method, headers: { "private-token": TOKEN } });

  it("lists every state without `states`, one with it; stop, then delete (only a stopped one) leave the list", async () => {
    sim.addProject({ id: 90, path: "grp/envs" });
    sim.addEnvironment(90, "review/a");
    sim.addEnvironment(90, "review/b");
    // Names are case-sensitive (GitLab's unique index on project_id, name): another environment.
    sim.addEnvironment(90, "Review/a");
    const api = createGitLabApi({ url: sim.url, token: TOKEN });
    const a = sim.project(90)?.environments.find((e) => e.name === "review/a");
    expect((await gl("DELETE", `/projects/90/environments/${a?.id}`)).status).toBe(403);
    const stopped = await gl("POST", `/projects/90/environments/${a?.id}/stop`);
    expect(stopped.status).toBe(200);
    expect(((await stopped.json()) as { state: string }).state).toBe("stopped");
    const all = await api.listEnvironments(90);
    expect(all.map((e) => [e.name, e.state])).toEqual([
      ["review/a", "stopped"],
      ["review/b", "available"],
      ["Review/a", "available"],
    ]);
    expect((await api.listEnvironments(90, { states: "stopped" })).map((e) => e.name)).toEqual(["review/a"]);
    expect((await gl("GET", "/projects/90/environments?states=gone")).status).toBe(400);
    expect((await gl("DELETE", `/projects/90/environments/${a?.id}`)).status).toBe(204);
    expect((await api.listEnvironments(90)).map((e) => e.name)).toEqual(["review/b", "Review/a"]);
    expect((await gl("DELETE", `/projects/90/environments/${a?.id}`)).status).toBe(404);

    // The control surface: stop and delete by name; deleting an available one is refused like GitLab does.
    expect((await post("/_sim/projects/90/environments/delete", { name: "review/b" })).status).toBe(409);
    expect((await post("/_sim/projects/90/environments/stop", { name: "review/b" })).json.state).toBe(
      "stopped",
    );
    expect(
      (
        await fetch(`${sim.url}/_sim/projects/90/environments/delete`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: "review/b" }),
        })
      ).status,
    ).toBe(204);
    // A deployment to a stopped environment makes it available again; to a new name, creates it.
    sim.stopEnvironment(90, "Review/a");
    expect(sim.deployEnvironment(90, "Review/a").state).toBe("available");
    expect(sim.deployEnvironment(90, "review/c").state).toBe("available");
    expect((await api.listEnvironments(90)).map((e) => e.name)).toEqual(["Review/a", "review/c"]);
  });
});

describe("the simulator is also the OIDC issuer", () => {
  it("serves GitLab's discovery paths and mints ID tokens whose sub follows the project's setting", async () => {
    const discovery = (await (await fetch(`${sim.url}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
      jwks_uri: string;
    };
    expect(discovery.issuer).toBe(sim.url);
    expect(discovery.jwks_uri).toBe(`${sim.url}/oauth/discovery/keys`);

    const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
    const minted = await post("/_sim/id-token", {
      projectId: 77,
      ref: "main",
      refType: "branch",
      audience: "api://AzureADTokenExchange",
    });
    const { payload } = await jwtVerify(String(minted.json.token), jwks, {
      issuer: sim.url,
      audience: "api://AzureADTokenExchange",
    });
    expect(payload.sub).toBe("project_path:grp/sub/app2:ref_type:branch:ref:main");

    // After the bot switches the project to project_id subjects, new tokens follow.
    const api = createGitLabApi({ url: sim.url, token: TOKEN });
    sim.addMember(77, 1, 40);
    await api.setSubClaimComponents(77, ["project_id", "ref_type", "ref"]);
    const token = await sim.mintIdToken({
      projectId: 77,
      ref: "v1",
      refType: "tag",
      audience: "api://AzureADTokenExchange",
    });
    const verified = await jwtVerify(token, jwks, { issuer: sim.url });
    expect(verified.payload.sub).toBe("project_id:77:ref_type:tag:ref:v1");
  });
});
