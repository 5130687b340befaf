import { Gitlab } from "@gitbeaker/rest";
import type { z } from "zod";
import { createSingleShotRequesterFn } from "./api-requester.ts";
import {
  awardEmojiSchema,
  environmentSchema,
  issueSchema,
  memberSchema,
  noteSchema,
  projectSchema,
  userSchema,
  variableSchema,
} from "./api-schemas.ts";
import { describeGitLabMessage, GitLabError, isGitLabError } from "./errors.ts";

/*
 * The bot's only door to GitLab's REST API. Everything else in the code base talks to `GitLabApi`, never to
 * gitbeaker, so replacing gitbeaker (its types lag GitLab; `main` changed Projects.edit's body shape) touches
 * this file and api-requester.ts only. Every response is parsed with zod; every failure is a GitLabError.
 */

export type ProjectId = number | string;

export interface GitLabUser {
  id: number;
  username: string;
  name?: string;
}

export interface GitLabProject {
  id: number;
  pathWithNamespace: string;
  webUrl: string;
  namespace?: { id: number; fullPath: string };
  /** undefined when this GitLab (or this token's role) does not expose the setting. */
  ciIdTokenSubClaimComponents?: string[];
  /** When the project waits out its deletion delay: GitLab's `marked_for_deletion_on` (or `_at`). */
  markedForDeletionOn?: string;
}

export type SubClaimUpdate =
  | { status: "unchanged" | "updated"; components: string[] }
  /** GitLab refused the components (older versions require project_path first) or ignores the setting. */
  | { status: "unsupported"; reason: string };

export interface GitLabIssue {
  id: number;
  iid: number;
  projectId: number;
  title: string;
  description: string;
  state: string;
  webUrl: string;
  authorId?: number;
  labels: string[];
  confidential: boolean;
}

export interface GitLabNote {
  id: number;
  body: string;
  authorId: number;
  authorUsername?: string;
  system: boolean;
  /** Internal note (visible to project members with Reporter or more only). */
  internal: boolean;
  /** Which object the note is on, when GitLab says ("Issue", and that issue's iid). */
  noteableType?: string;
  noteableIid?: number;
}

export interface GitLabVariable {
  key: string;
  value: string | null;
  environmentScope: string;
  masked: boolean;
  protected: boolean;
}

export interface VariableInput {
  key: string;
  value: string;
  environmentScope: string;
  masked?: boolean;
  protected?: boolean;
  description?: string;
}

export interface VariableUpsert {
  op: "created" | "updated" | "unchanged";
  variable: GitLabVariable;
}

export interface GitLabEnvironment {
  id: number;
  name: string;
  slug?: string;
  state?: string;
  tier?: string;
  externalUrl?: string;
}

export interface FindIssuesQuery {
  search?: string;
  /** Where `search` looks: GitLab's `in` parameter, e.g. "description" or "title,description". */
  searchIn?: string;
  labels?: string[];
  authorId?: number;
  state?: "opened" | "closed" | "all";
}

export interface GitLabApi {
  /** The user the token belongs to (the bot); memoised after the first success. */
  currentUser(): Promise<GitLabUser>;
  getProject(id: ProjectId): Promise<GitLabProject>;
  /**
   * One page (one request) of the projects the bot is a member of, by ascending id after `idAfter`
   * (`GET /projects?membership=true&order_by=id&sort=asc&id_after=`): drift's bulk sweep reads paths this way
   * instead of one `GET /projects/:id` per project. `last` is true when GitLab has no more.
   */
  listProjectsPage(opts: {
    idAfter: number;
    perPage: number;
  }): Promise<{ projects: GitLabProject[]; last: boolean }>;
  /**
   * `GET /projects/:url-encoded-path`: whoever holds the path now (GitLab follows the redirect a rename leaves
   * behind until the old path is taken), or null on 404.
   */
  findProjectByPath(path: string): Promise<GitLabProject | null>;
  /** Sets `ci_id_token_sub_claim_components`; feature-detects GitLab versions that refuse the value. */
  setSubClaimComponents(projectId: ProjectId, components: readonly string[]): Promise<SubClaimUpdate>;
  /** Effective (inherited + invited) access level, or null when the user is not a member. */
  memberAccessLevel(projectId: ProjectId, userId: number): Promise<number | null>;
  createIssue(
    projectId: ProjectId,
    input: { title: string; description: string; labels?: string[]; confidential?: boolean },
  ): Promise<GitLabIssue>;
  editIssue(
    projectId: ProjectId,
    issueIid: number,
    input: { title?: string; description?: string },
  ): Promise<GitLabIssue>;
  findIssues(projectId: ProjectId, query: FindIssuesQuery): Promise<GitLabIssue[]>;
  getIssue(projectId: ProjectId, issueIid: number): Promise<GitLabIssue>;
  /** `GET /projects/:id/issues/:issue_iid/notes/:note_id`: 404 when the note is not on that issue. */
  getIssueNote(projectId: ProjectId, issueIid: number, noteId: number): Promise<GitLabNote>;
  listIssueNotes(projectId: ProjectId, issueIid: number): Promise<GitLabNote[]>;
  createIssueNote(
    projectId: ProjectId,
    issueIid: number,
    body: string,
    opts?: { internal?: boolean },
  ): Promise<GitLabNote>;
  editIssueNote(projectId: ProjectId, issueIid: number, noteId: number, body: string): Promise<GitLabNote>;
  listMergeRequestNotes(projectId: ProjectId, mergeRequestIid: number): Promise<GitLabNote[]>;
  createMergeRequestNote(
    projectId: ProjectId,
    mergeRequestIid: number,
    body: string,
    opts?: { internal?: boolean },
  ): Promise<GitLabNote>;
  /** "already" when this user had already awarded that emoji (GitLab refuses duplicates). */
  awardEmojiOnNote(
    projectId: ProjectId,
    issueIid: number,
    noteId: number,
    name: "thumbsup" | "eyes" | "x" | "white_check_mark",
  ): Promise<"awarded" | "already">;
  getVariable(projectId: ProjectId, key: string, environmentScope: string): Promise<GitLabVariable | null>;
  /** Reads first: an identical variable is left alone; otherwise creates, or updates in its scope. */
  upsertVariable(projectId: ProjectId, input: VariableInput): Promise<VariableUpsert>;
  listEnvironments(
    projectId: ProjectId,
    opts?: { states?: "available" | "stopping" | "stopped" },
  ): Promise<GitLabEnvironment[]>;
  /** A user as GitLab knows them now (usernames can change; ids cannot). null when there is none. */
  getUser(userId: number): Promise<GitLabUser | null>;
  /**
   * The user's effective access level in a group (GET /groups/:id/members/all/:user_id: direct, inherited
   * from ancestor groups and invited), or null when not a member or the group does not exist.
   */
  groupMemberAccessLevel(groupPath: string, userId: number): Promise<number | null>;
}

export interface GitLabApiOptions {
  /** GitLab base URL, e.g. https://gitlab.example.com (no /api/v4). */
  url: string;
  token: string;
  /** Per-request timeout; a timeout is a retryable GitLabError. Default 30 s. */
  timeoutMs?: number;
}

const LIST_LIMIT = { perPage: 100, maxPages: 20 } as const;
/**
 * The most items one list call returns (pages stop there). A list this long may be cut short, so what it
 * does not hold is no evidence of absence (the environment cleanup then removes nothing as "deleted").
 */
export const LIST_MAX_ITEMS = LIST_LIMIT.perPage * LIST_LIMIT.maxPages;

function parse<S extends z.ZodType>(schema: S, data: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const first = result.error.issues[0];
  throw new GitLabError({
    code: "bad_response",
    retryable: false,
    message: `GitLab returned an unexpected ${what}: ${first ? `${first.path.join(".") || "(root)"} ${first.message}` : "invalid"}; is GITLAB_URL a GitLab instance and is its version supported?`,
  });
}

function toIssue(raw: unknown): GitLabIssue {
  const i = parse(issueSchema, raw, "issue");
  return {
    id: i.id,
    iid: i.iid,
    projectId: i.project_id,
    title: i.title,
    description: i.description ?? "",
    state: i.state,
    webUrl: i.web_url,
    authorId: i.author?.id,
    labels: i.labels,
    confidential: i.confidential === true,
  };
}

function toNote(raw: unknown): GitLabNote {
  const n = parse(noteSchema, raw, "note");
  return {
    id: n.id,
    body: n.body,
    authorId: n.author.id,
    ...(n.author.username !== undefined ? { authorUsername: n.author.username } : {}),
    system: n.system === true,
    // `confidential` is the deprecated name of the same flag; either one set means internal.
    internal: n.internal === true || n.confidential === true,
    ...(n.noteable_type ? { noteableType: n.noteable_type } : {}),
    ...(typeof n.noteable_iid === "number" ? { noteableIid: n.noteable_iid } : {}),
  };
}

function toVariable(raw: unknown): GitLabVariable {
  const v = parse(variableSchema, raw, "CI/CD variable");
  return {
    key: v.key,
    value: v.value,
    environmentScope: v.environment_scope,
    masked: v.masked,
    protected: v.protected,
  };
}

function toProject(raw: unknown): GitLabProject {
  const p = parse(projectSchema, raw, "project");
  return {
    id: p.id,
    pathWithNamespace: p.path_with_namespace,
    webUrl: p.web_url,
    namespace: p.namespace ? { id: p.namespace.id, fullPath: p.namespace.full_path } : undefined,
    ciIdTokenSubClaimComponents: p.ci_id_token_sub_claim_components ?? undefined,
    markedForDeletionOn: p.marked_for_deletion_on ?? p.marked_for_deletion_at ?? undefined,
  };
}

function asArray(raw: unknown, what: string): unknown[] {
  if (Array.isArray(raw)) return raw;
  throw new GitLabError({
    code: "bad_response",
    retryable: false,
    message: `GitLab returned an unexpected ${what}: expected a list`,
  });
}

function messageText(err: GitLabError): string {
  return describeGitLabMessage(err.gitlabMessage);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function createGitLabApi(options: GitLabApiOptions): GitLabApi {
  const host = options.url.replace(/\/+$/, "");
  const gl = new Gitlab({
    host,
    token: options.token,
    queryTimeout: options.timeoutMs ?? 30_000,
    requesterFn: createSingleShotRequesterFn({ secrets: [options.token] }),
  });

  let me: Promise<GitLabUser> | undefined;

  const getVariable: GitLabApi["getVariable"] = async (projectId, key, environmentScope) => {
    try {
      const raw: unknown = await gl.ProjectVariables.show(projectId, key, {
        filter: { environment_scope: environmentScope },
      });
      return toVariable(raw);
    } catch (err) {
      if (isGitLabError(err) && err.status === 404) return null;
      throw err;
    }
  };

  const editVariable = async (projectId: ProjectId, input: VariableInput): Promise<GitLabVariable> => {
    const raw: unknown = await gl.ProjectVariables.edit(projectId, input.key, input.value, {
      // Required when the key exists in several scopes (GitLab: "There are multiple variables with provided
      // parameters. Please use 'filter[environment_scope]'"); gitbeaker sends it in the JSON body.
      filter: { environment_scope: input.environmentScope },
      masked: input.masked ?? false,
      protected: input.protected ?? false,
      ...(input.description !== undefined ? { description: input.description } : {}),
    });
    return toVariable(raw);
  };

  return {
    currentUser() {
      if (!me) {
        me = gl.Users.showCurrentUser().then((raw: unknown) => parse(userSchema, raw, "user"));
        me.catch(() => {
          me = undefined;
        });
      }
      return me;
    },

    async getProject(id) {
      return toProject(await gl.Projects.show(id));
    },

    async listProjectsPage({ idAfter, perPage }) {
      const per = Math.min(100, Math.max(1, Math.trunc(perPage)));
      // membership=true: without it a non-admin token lists every public and internal project of the instance.
      const raw: unknown = await gl.Projects.all({
        membership: true,
        orderBy: "id",
        sort: "asc",
        idAfter,
        perPage: per,
        maxPages: 1,
      });
      const projects = asArray(raw, "project list").map(toProject);
      return { projects, last: projects.length < per };
    },

    async findProjectByPath(path) {
      try {
        // gitbeaker URL-encodes the path segment (group%2Fproject), as doc/api/rest says a path id must be.
        return toProject(await gl.Projects.show(path));
      } catch (err) {
        if (isGitLabError(err) && err.status === 404) return null;
        throw err;
      }
    },

    async setSubClaimComponents(projectId, components) {
      const wanted = [...components];
      const before = toProject(await gl.Projects.show(projectId));
      if (before.ciIdTokenSubClaimComponents && sameList(before.ciIdTokenSubClaimComponents, wanted)) {
        return { status: "unchanged", components: wanted };
      }
      let raw: unknown;
      try {
        // Not in gitbeaker 43.8.0's EditProjectOptions; 43.8.0 spreads options into the body, so the cast is
        // the documented workaround (reference/gitlab.md §8). decamelize turns the key into
        // ci_id_token_sub_claim_components.
        raw = await gl.Projects.edit(projectId, {
          ciIdTokenSubClaimComponents: wanted,
        } as Parameters<typeof gl.Projects.edit>[1]);
      } catch (err) {
        // 400 naming the sub claim: a version that wants project_path first (MR 182257); 400 "at least one
        // parameter must be provided": older than 17.10, which does not know the attribute (reference/gitlab.md
        // §8b). A 403 (bot below Maintainer) is thrown: callers decide what it means for them.
        if (
          isGitLabError(err) &&
          err.status === 400 &&
          /sub.?claim|at least one parameter/i.test(messageText(err))
        ) {
          return {
            status: "unsupported",
            reason: `GitLab refused the sub-claim components: ${messageText(err)}`,
          };
        }
        // PUT /projects/:id needs Maintainer (authorize_admin_project); a lower role gets 403.
        if (isGitLabError(err) && err.status === 403) {
          return {
            status: "unsupported",
            reason:
              "GitLab answered 403 Forbidden to PUT /projects/:id: the bot user needs the Maintainer role in the project to set ci_id_token_sub_claim_components",
          };
        }
        throw err;
      }
      const after = toProject(raw).ciIdTokenSubClaimComponents;
      if (after === undefined) {
        return {
          status: "unsupported",
          reason:
            "GitLab did not report ci_id_token_sub_claim_components after the update (GitLab older than 17.10 ignores it, or the bot user is not an Owner)",
        };
      }
      if (!sameList(after, wanted)) {
        return {
          status: "unsupported",
          reason: `GitLab kept the sub-claim components [${after.join(", ")}] instead of [${wanted.join(", ")}]`,
        };
      }
      return { status: "updated", components: wanted };
    },

    async memberAccessLevel(projectId, userId) {
      try {
        const raw: unknown = await gl.ProjectMembers.show(projectId, userId, { includeInherited: true });
        return parse(memberSchema, raw, "member").access_level;
      } catch (err) {
        // "404 Not found" = not a member; "404 Project Not Found" = the bot cannot see the project, which the
        // caller must hear about rather than read as "user has no access".
        if (isGitLabError(err) && err.status === 404 && !/project not found/i.test(messageText(err)))
          return null;
        throw err;
      }
    },

    async createIssue(projectId, input) {
      const raw: unknown = await gl.Issues.create(projectId, input.title, {
        description: input.description,
        ...(input.labels?.length ? { labels: input.labels.join(",") } : {}),
        ...(input.confidential !== undefined ? { confidential: input.confidential } : {}),
      });
      return toIssue(raw);
    },

    async editIssue(projectId, issueIid, input) {
      return toIssue(await gl.Issues.edit(projectId, issueIid, input));
    },

    async findIssues(projectId, query) {
      const raw: unknown = await gl.Issues.all({
        projectId,
        ...LIST_LIMIT,
        ...(query.search !== undefined ? { search: query.search } : {}),
        ...(query.searchIn !== undefined ? { in: query.searchIn } : {}),
        ...(query.labels?.length ? { labels: query.labels.join(",") } : {}),
        ...(query.authorId !== undefined ? { authorId: query.authorId } : {}),
        state: query.state ?? "all",
      });
      return asArray(raw, "issue list").map(toIssue);
    },

    async getIssue(projectId, issueIid) {
      return toIssue(await gl.Issues.show(issueIid, { projectId }));
    },

    async getIssueNote(projectId, issueIid, noteId) {
      return toNote(await gl.IssueNotes.show(projectId, issueIid, noteId));
    },

    async listIssueNotes(projectId, issueIid) {
      const raw: unknown = await gl.IssueNotes.all(projectId, issueIid, {
        ...LIST_LIMIT,
        sort: "asc",
        orderBy: "created_at",
      });
      return asArray(raw, "note list").map(toNote);
    },

    async createIssueNote(projectId, issueIid, body, opts) {
      const raw: unknown = await gl.IssueNotes.create(
        projectId,
        issueIid,
        body,
        opts?.internal ? { internal: true } : {},
      );
      return toNote(raw);
    },

    async editIssueNote(projectId, issueIid, noteId, body) {
      return toNote(await gl.IssueNotes.edit(projectId, issueIid, noteId, { body }));
    },

    async listMergeRequestNotes(projectId, mergeRequestIid) {
      const raw: unknown = await gl.MergeRequestNotes.all(projectId, mergeRequestIid, {
        ...LIST_LIMIT,
        sort: "asc",
        orderBy: "created_at",
      });
      return asArray(raw, "note list").map(toNote);
    },

    async createMergeRequestNote(projectId, mergeRequestIid, body, opts) {
      const raw: unknown = await gl.MergeRequestNotes.create(
        projectId,
        mergeRequestIid,
        body,
        opts?.internal ? { internal: true } : {},
      );
      return toNote(raw);
    },

    async awardEmojiOnNote(projectId, issueIid, noteId, name) {
      try {
        const raw: unknown = await gl.IssueNoteAwardEmojis.award(projectId, issueIid, noteId, name);
        parse(awardEmojiSchema, raw, "award emoji");
        return "awarded";
      } catch (err) {
        // GitLab answers a duplicate award with 404 "Award Emoji Name has already been taken" (lib/api/award_emoji.rb
        // wraps the service error in not_found!); accept 400/404/409 with that text as success.
        if (isGitLabError(err) && /already been taken/i.test(messageText(err))) return "already";
        throw err;
      }
    },

    getVariable,

    async upsertVariable(projectId, input) {
      const existing = await getVariable(projectId, input.key, input.environmentScope);
      if (existing) {
        const same =
          existing.value === input.value &&
          existing.masked === (input.masked ?? false) &&
          existing.protected === (input.protected ?? false);
        if (same) return { op: "unchanged", variable: existing };
        return { op: "updated", variable: await editVariable(projectId, input) };
      }
      try {
        const raw: unknown = await gl.ProjectVariables.create(projectId, input.key, input.value, {
          environmentScope: input.environmentScope,
          masked: input.masked ?? false,
          protected: input.protected ?? false,
          ...(input.description !== undefined ? { description: input.description } : {}),
        });
        return { op: "created", variable: toVariable(raw) };
      } catch (err) {
        // A concurrent writer (or a retried job whose first create landed) got there first.
        if (isGitLabError(err) && err.status === 400 && /already been taken/i.test(messageText(err))) {
          return { op: "updated", variable: await editVariable(projectId, input) };
        }
        throw err;
      }
    },

    async getUser(userId) {
      try {
        return parse(userSchema, await gl.Users.show(userId), "user");
      } catch (err) {
        if (isGitLabError(err) && err.status === 404) return null;
        throw err;
      }
    },

    async groupMemberAccessLevel(groupPath, userId) {
      try {
        const raw: unknown = await gl.GroupMembers.show(groupPath, userId, { includeInherited: true });
        const member = parse(memberSchema, raw, "group member");
        // Blocked or pending members keep their row but cannot act.
        return member.state === undefined || member.state === "active" ? member.access_level : null;
      } catch (err) {
        // 404 "Not found" (not a member) and "Group Not Found" (no such group, or invisible to the bot) alike.
        if (isGitLabError(err) && err.status === 404) return null;
        throw err;
      }
    },

    async listEnvironments(projectId, opts) {
      const raw: unknown = await gl.Environments.all(projectId, {
        ...LIST_LIMIT,
        ...(opts?.states ? { states: opts.states } : {}),
      });
      return asArray(raw, "environment list").map((e) => {
        const env = parse(environmentSchema, e, "environment");
        return {
          id: env.id,
          name: env.name,
          slug: env.slug,
          state: env.state,
          tier: env.tier ?? undefined,
          externalUrl: env.external_url ?? undefined,
        };
      });
    },
  };
}
