import { randomUUID } from "node:crypto";
import type { SimProject, SimUser } from "./gitlab-sim/state.ts";
import type { GitLabSimulator } from "./gitlab-sim.ts";

/**
 * Plays GitLab's side of the conversation in the sandbox and in end-to-end tests: changes the GitLab simulator
 * as a user would, then delivers the webhook real GitLab sends for it, with the documented payload shape and
 * delivery headers (X-Gitlab-Event, X-Gitlab-Token, Idempotency-Key, X-Gitlab-Event-UUID, X-Gitlab-Instance).
 */
export interface Delivery {
  status: number;
  body: Record<string, unknown>;
  idempotencyKey: string;
}

export interface GitLabDriver {
  createProject(
    path: string,
    opts?: { members?: Record<number, number>; id?: number },
  ): Promise<{ project: SimProject; delivery: Delivery }>;
  /** `internal`: an internal note (delivered, like any note on a confidential issue, as Confidential Note Hook). */
  comment(
    projectId: number,
    issueIid: number,
    userId: number,
    text: string,
    opts?: { internal?: boolean },
  ): Promise<{ noteId: number; delivery: Delivery }>;
  commentOnMergeRequest(
    projectId: number,
    mrIid: number,
    userId: number,
    text: string,
    opts?: { internal?: boolean },
  ): Promise<{ noteId: number; delivery: Delivery }>;
  /**
   * A Note Hook that claims what the caller says (note id, author, text, issue) without changing GitLab:
   * what an attacker holding a webhook secret can send. GitLab's API keeps telling the truth.
   */
  forgeComment(
    projectId: number,
    issueIid: number,
    claim: { noteId: number; authorId: number; text: string; confidential?: boolean },
  ): Promise<Delivery>;
  /** The Note Hook (event header and body) GitLab would send for such a comment; nothing is sent. */
  notePayload(
    projectId: number,
    issueIid: number,
    claim: { noteId: number; authorId: number; text: string; confidential?: boolean },
  ): { event: string; payload: Record<string, unknown> };
  renameProject(projectId: number, newPath: string): Promise<Delivery>;
  transferProject(projectId: number, newPath: string): Promise<Delivery>;
  renameGroup(oldFullPath: string, newFullPath: string, groupId?: number): Promise<Delivery>;
  deleteProject(projectId: number): Promise<Delivery>;
  /**
   * A deployment: the environment is created in GitLab (or made available again when stopped), then the
   * Deployment Hook is delivered.
   */
  deploy(
    projectId: number,
    environment: string,
    opts?: { tier?: string; ref?: string; user?: number },
  ): Promise<Delivery>;
  /** Someone stops the environment (stop button, stop job or API): state `stopped`. GitLab sends no event. */
  stopEnvironment(projectId: number, environment: string): void;
  /** Someone deletes the (stopped) environment: gone from GitLab's list. GitLab sends no event. */
  deleteEnvironment(projectId: number, environment: string): void;
  /** Sends an arbitrary payload (tests of redelivery and hostile input). */
  send(event: string, payload: unknown, key?: string): Promise<Delivery>;
}

const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

export function createGitLabDriver(opts: {
  gitlab: GitLabSimulator;
  botUrl: () => string;
  secret: string;
}): GitLabDriver {
  const { gitlab } = opts;
  const project = (id: number) => {
    const p = gitlab.project(id);
    if (!p) throw new Error(`no project ${id} in the GitLab simulator`);
    return p;
  };
  const user = (id: number): SimUser => {
    const u = gitlab.state.users.find((x) => x.id === id);
    if (!u) throw new Error(`no user ${id} in the GitLab simulator`);
    return u;
  };
  const owner = (p: SimProject) => {
    const m = p.members.find((x) => x.accessLevel >= 50) ?? p.members[0];
    const u = m ? gitlab.state.users.find((x) => x.id === m.userId) : undefined;
    return { name: u?.name ?? "Owner", email: `${u?.username ?? "owner"}@example.com` };
  };
  const systemFields = (p: SimProject) => {
    const o = owner(p);
    return {
      created_at: p.createdAt,
      updated_at: stamp(),
      name: p.path.split("/").pop(),
      owner_email: o.email,
      owner_name: o.name,
      owners: [o],
      path: p.path.split("/").pop(),
      path_with_namespace: p.path,
      project_id: p.id,
      project_namespace_id: p.namespaceId,
      project_visibility: p.visibility,
    };
  };
  const projectObject = (p: SimProject) => ({
    id: p.id,
    name: p.path.split("/").pop(),
    web_url: `${gitlab.url}/${p.path}`,
    namespace: p.path.split("/").slice(0, -1).join("/"),
    visibility_level: p.visibility === "public" ? 20 : p.visibility === "internal" ? 10 : 0,
    path_with_namespace: p.path,
    default_branch: "main",
  });
  const userObject = (u: SimUser) => ({
    id: u.id,
    name: u.name,
    username: u.username,
    avatar_url: null,
    email: `${u.username}@example.com`,
  });

  async function send(event: string, payload: unknown, key = randomUUID()): Promise<Delivery> {
    const res = await fetch(`${opts.botUrl()}/webhooks/gitlab`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/19.1.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": opts.secret,
        "X-Gitlab-Instance": gitlab.url,
        "X-Gitlab-Event-UUID": randomUUID(),
        "X-Gitlab-Webhook-UUID": randomUUID(),
        "Idempotency-Key": key,
      },
      body: JSON.stringify(payload),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, idempotencyKey: key };
  }

  /** GitLab's Note Hook for a comment on an issue (doc/user/project/integrations/webhook_events.md). */
  type NoteClaim = {
    noteId: number;
    authorId: number;
    text: string;
    confidential?: boolean;
    internal?: boolean;
    createdAt: string;
  };
  function sendNote(projectId: number, issueIid: number, n: NoteClaim): Promise<Delivery> {
    const { event, payload } = notePayload(projectId, issueIid, n);
    return send(event, payload);
  }
  function notePayload(projectId: number, issueIid: number, n: NoteClaim) {
    const p = project(projectId);
    const issue = p.issues.find((i) => i.iid === issueIid);
    if (!issue) throw new Error(`no issue #${issueIid} in project ${projectId}`);
    const confidential = n.confidential ?? issue.confidential;
    const event = confidential ? "Confidential Note Hook" : "Note Hook";
    const payload: Record<string, unknown> = {
      object_kind: "note",
      event_type: confidential ? "confidential_note" : "note",
      user: userObject(user(n.authorId)),
      project_id: p.id,
      project: projectObject(p),
      object_attributes: {
        id: n.noteId,
        note: n.text,
        noteable_type: "Issue",
        author_id: n.authorId,
        created_at: n.createdAt,
        updated_at: n.createdAt,
        project_id: p.id,
        noteable_id: issue.id,
        system: false,
        internal: n.internal ?? false,
        action: "create",
        url: `${gitlab.url}/${p.path}/-/issues/${issue.iid}#note_${n.noteId}`,
      },
      issue: {
        id: issue.id,
        iid: issue.iid,
        title: issue.title,
        confidential: issue.confidential,
        state: issue.state,
      },
    };
    return { event, payload };
  }

  return {
    send,
    async createProject(path, o = {}) {
      const p = gitlab.addProject({
        path,
        ...(o.id ? { id: o.id } : {}),
        ...(o.members ? { members: o.members } : {}),
      });
      const delivery = await send("System Hook", { event_name: "project_create", ...systemFields(p) });
      return { project: p, delivery };
    },
    async commentOnMergeRequest(projectId, mrIid, userId, text, o = {}) {
      const p = project(projectId);
      const mr = p.mergeRequests.find((m) => m.iid === mrIid);
      if (!mr) throw new Error(`no merge request !${mrIid} in project ${projectId}`);
      const note = gitlab.addUserMergeRequestNote(projectId, mrIid, userId, text, o);
      // webhook_events.md "Comment on a merge request": noteable_type MergeRequest and a merge_request object.
      const delivery = await send(o.internal ? "Confidential Note Hook" : "Note Hook", {
        object_kind: "note",
        event_type: o.internal ? "confidential_note" : "note",
        user: userObject(user(userId)),
        project_id: p.id,
        project: projectObject(p),
        object_attributes: {
          id: note.id,
          note: text,
          noteable_type: "MergeRequest",
          author_id: userId,
          created_at: note.createdAt,
          updated_at: note.updatedAt,
          project_id: p.id,
          noteable_id: mr.id,
          system: false,
          internal: note.internal,
          action: "create",
          url: `${gitlab.url}/${p.path}/-/merge_requests/${mr.iid}#note_${note.id}`,
        },
        merge_request: { id: mr.id, iid: mr.iid, title: mr.title, state: "opened" },
      });
      return { noteId: note.id, delivery };
    },
    async comment(projectId, issueIid, userId, text, o = {}) {
      const issue = project(projectId).issues.find((i) => i.iid === issueIid);
      if (!issue) throw new Error(`no issue #${issueIid} in project ${projectId}`);
      const note = gitlab.addUserNote(projectId, issueIid, userId, text, o);
      const delivery = await sendNote(projectId, issueIid, {
        noteId: note.id,
        authorId: userId,
        text,
        confidential: issue.confidential || note.internal,
        internal: note.internal,
        createdAt: note.createdAt,
      });
      return { noteId: note.id, delivery };
    },
    forgeComment(projectId, issueIid, claim) {
      return sendNote(projectId, issueIid, { createdAt: stamp(), ...claim });
    },
    notePayload(projectId, issueIid, claim) {
      return notePayload(projectId, issueIid, { createdAt: stamp(), ...claim });
    },
    async renameProject(projectId, newPath) {
      const old = project(projectId).path;
      const p = gitlab.renameProject(projectId, newPath);
      return send("System Hook", {
        event_name: "project_rename",
        ...systemFields(p),
        old_path_with_namespace: old,
      });
    },
    async transferProject(projectId, newPath) {
      const old = project(projectId).path;
      const p = gitlab.renameProject(projectId, newPath);
      return send("System Hook", {
        event_name: "project_transfer",
        ...systemFields(p),
        old_path_with_namespace: old,
      });
    },
    async renameGroup(oldFullPath, newFullPath, groupId = 1000) {
      // GitLab renames every project below the group and sends one group_rename event, nothing per project.
      for (const p of [...gitlab.state.projects]) {
        if (p.path.startsWith(`${oldFullPath}/`))
          gitlab.renameProject(p.id, `${newFullPath}${p.path.slice(oldFullPath.length)}`);
      }
      return send("System Hook", {
        event_name: "group_rename",
        created_at: stamp(),
        updated_at: stamp(),
        name: newFullPath.split("/").pop(),
        path: newFullPath.split("/").pop(),
        full_path: newFullPath,
        group_id: groupId,
        old_path: oldFullPath.split("/").pop(),
        old_full_path: oldFullPath,
      });
    },
    async deleteProject(projectId) {
      const p = project(projectId);
      const payload = { event_name: "project_destroy", ...systemFields(p) };
      gitlab.state.projects.splice(gitlab.state.projects.indexOf(p), 1);
      return send("System Hook", payload);
    },
    stopEnvironment(projectId, environment) {
      gitlab.stopEnvironment(projectId, environment);
    },
    deleteEnvironment(projectId, environment) {
      gitlab.deleteEnvironment(projectId, environment);
    },
    async deploy(projectId, environment, o = {}) {
      const p = project(projectId);
      gitlab.deployEnvironment(projectId, o.tier ? { name: environment, tier: o.tier } : environment);
      const u = user(o.user ?? p.members[0]?.userId ?? gitlab.botUser.id);
      return send("Deployment Hook", {
        object_kind: "deployment",
        status: "running",
        status_changed_at: stamp(),
        deployment_id: Math.floor(Math.random() * 1e6),
        deployable_id: Math.floor(Math.random() * 1e6),
        deployable_url: `${gitlab.url}/${p.path}/-/jobs/1`,
        environment,
        environment_tier: o.tier ?? "other",
        environment_slug: environment.replace(/[^a-z0-9]+/gi, "-").toLowerCase(),
        environment_external_url: null,
        project: projectObject(p),
        short_sha: "279484c0",
        user: userObject(u),
        user_url: `${gitlab.url}/${u.username}`,
        commit_url: `${gitlab.url}/${p.path}/-/commit/279484c0`,
        commit_title: "Deploy",
      });
    },
  };
}
