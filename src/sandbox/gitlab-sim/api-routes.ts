import type { Context } from "hono";
import { Hono } from "hono";
import {
  presentAward,
  presentEnvironment,
  presentIssue,
  presentMember,
  presentMergeRequestNote,
  presentNote,
  presentProject,
  presentUser,
  presentVariable,
} from "./present.ts";
import {
  deleteEnvironment,
  findUser,
  groupMemberLevel,
  memberLevel,
  now,
  resolveProject,
  type SimIssue,
  type SimProject,
  type SimState,
  type SimUser,
  type SimVariable,
  stopEnvironment,
} from "./state.ts";

export type SimEnv = { Variables: { user: SimUser } };
type C = Context<SimEnv>;

const MASKABLE = /^[a-zA-Z0-9_+=/@:.~-]{8,}$/;
const VARIABLE_KEY = /^[a-zA-Z0-9_]{1,255}$/;
/** Components allowed by GitLab 17.10..18.6, then 18.7+ (environment-bound ones added). */
const BASIC_ALLOWED = ["project_path", "ref_type", "ref"];
const LEGACY_ALLOWED = [...BASIC_ALLOWED, "ref_protected", "environment_protected", "deployment_tier"];
const MODERN_ALLOWED = [...LEGACY_ALLOWED, "project_id"];
/**
 * `PUT /projects/:id` declares `at_least_one_of` over its update parameters (lib/api/projects.rb,
 * Helpers::ProjectsHelpers.update_params_at_least_one_of). GitLab before 17.10 does not know
 * ci_id_token_sub_claim_components, drops it as undeclared, and Grape answers 400 with this body (shape as
 * reported against GitLab's API: python-gitlab#296, terraform-provider-gitlab#776).
 */
const UPDATE_PARAMS_AT_LEAST_ONE_OF = [
  "allow_merge_on_skipped_pipeline",
  "analytics_access_level",
  "auto_devops_enabled",
  "ci_config_path",
  "default_branch",
  "description",
  "issues_access_level",
  "merge_method",
  "name",
  "path",
  "visibility",
  "wiki_access_level",
];

const notFound = (c: C, what = "404 Not found") => c.json({ message: what }, 404);
const forbidden = (c: C) => c.json({ message: "403 Forbidden" }, 403);
const badRequest = (c: C, message: unknown) => c.json({ message }, 400);

/** GitLab takes parameters from the query string, JSON bodies and form bodies alike (Grape). */
async function params(c: C): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const url = new URL(c.req.url);
  for (const [k, v] of url.searchParams) out[k] = v;
  if (c.req.method === "GET" || c.req.method === "DELETE") return out;
  const type = c.req.header("content-type") ?? "";
  if (type.includes("application/json")) {
    const body = (await c.req.json().catch(() => null)) as unknown;
    if (body && typeof body === "object" && !Array.isArray(body)) Object.assign(out, body);
  } else if (type.includes("form")) {
    Object.assign(out, await c.req.parseBody());
  }
  return out;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
}
function bool(v: unknown): boolean | undefined {
  if (typeof v === "boolean") return v;
  if (v === "true") return true;
  if (v === "false") return false;
  return undefined;
}
/** `filter[environment_scope]` from the query, or `{"filter":{"environment_scope":...}}` from a JSON body. */
function envScopeFilter(p: Record<string, unknown>): string | undefined {
  const direct = str(p["filter[environment_scope]"]);
  if (direct !== undefined) return direct;
  const f = p.filter;
  if (f && typeof f === "object") return str((f as Record<string, unknown>).environment_scope);
  return undefined;
}

/** Offset pagination with GitLab's headers (Link rel=next, X-Total, X-Next-Page...). */
function paginate<T>(c: C, items: T[]): T[] {
  const url = new URL(c.req.url);
  const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get("per_page") ?? 20) || 20));
  const page = Math.max(1, Number(url.searchParams.get("page") ?? 1) || 1);
  const totalPages = Math.max(1, Math.ceil(items.length / perPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);
  c.header("x-total", String(items.length));
  c.header("x-total-pages", String(totalPages));
  c.header("x-per-page", String(perPage));
  c.header("x-page", String(page));
  c.header("x-next-page", page < totalPages ? String(page + 1) : "");
  c.header("x-prev-page", page > 1 ? String(page - 1) : "");
  const link = (n: number, rel: string) => {
    const u = new URL(url);
    u.searchParams.set("page", String(n));
    u.searchParams.set("per_page", String(perPage));
    return `<${u.toString()}>; rel="${rel}"`;
  };
  const links = [link(1, "first"), link(totalPages, "last")];
  if (page < totalPages) links.unshift(link(page + 1, "next"));
  if (page > 1) links.unshift(link(page - 1, "prev"));
  c.header("link", links.join(", "));
  return slice;
}

export function apiRoutes(state: SimState, baseUrl: () => string): Hono<SimEnv> {
  const api = new Hono<SimEnv>();

  /** The project as the caller may see it, with their effective level; or the Response GitLab would send. */
  const access = (c: C, minLevel: number): { project: SimProject; level: number } | Response => {
    const project = resolveProject(state, c.req.param("id") ?? "");
    const user = c.get("user");
    if (!project) return notFound(c, "404 Project Not Found");
    const level = memberLevel(project, user.id, true);
    if (level === null && project.visibility === "private") return notFound(c, "404 Project Not Found");
    // Signed-in non-members of public/internal projects act with guest-like rights (comment, open issues).
    const effective = level ?? 10;
    if (effective < minLevel) return forbidden(c);
    return { project, level: effective };
  };

  const issueOf = (project: SimProject, iid: string | undefined): SimIssue | undefined =>
    project.issues.find((i) => i.iid === Number(iid));

  api.get("/user", (c) => {
    const u = c.get("user");
    return c.json({ ...presentUser(baseUrl(), u, u.id), email: `${u.username}@example.com`, bot: false });
  });

  /**
   * `GET /projects` (doc/api/projects.md "List all projects"): `membership=true` limits to the caller's
   * projects (inherited membership counts), otherwise every project the caller can see; `id_after` /
   * `id_before` filter by id; `order_by` (default created_at) and `sort` (default desc); offset pagination.
   */
  api.get("/projects", (c) => {
    const user = c.get("user");
    const q = new URL(c.req.url).searchParams;
    const idAfter = Number(q.get("id_after") ?? Number.NaN);
    const idBefore = Number(q.get("id_before") ?? Number.NaN);
    const membership = q.get("membership") === "true";
    const orderBy = q.get("order_by") ?? "created_at";
    if (!["id", "created_at", "name", "path", "updated_at", "last_activity_at"].includes(orderBy)) {
      return badRequest(c, "order_by does not have a valid value");
    }
    const desc = (q.get("sort") ?? "desc") !== "asc";
    const list = state.projects
      .filter((p) => {
        if (!Number.isNaN(idAfter) && p.id <= idAfter) return false;
        if (!Number.isNaN(idBefore) && p.id >= idBefore) return false;
        const level = memberLevel(p, user.id, true);
        return membership ? level !== null : level !== null || p.visibility !== "private";
      })
      .sort((a, b) => {
        const by =
          orderBy === "id"
            ? a.id - b.id
            : orderBy === "path" || orderBy === "name"
              ? a.path.localeCompare(b.path)
              : a.createdAt.localeCompare(b.createdAt) || a.id - b.id;
        return desc ? -by : by;
      });
    return c.json(paginate(c, list).map((p) => presentProject(baseUrl(), p, memberLevel(p, user.id, true))));
  });

  api.get("/projects/:id", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    return c.json(presentProject(baseUrl(), a.project, memberLevel(a.project, c.get("user").id, true)));
  });

  api.put("/projects/:id", async (c) => {
    const a = access(c, 40);
    if (a instanceof Response) return a;
    const p = await params(c);
    if (
      a.project.subClaimSupport === "absent" &&
      !Object.keys(p).some((k) => UPDATE_PARAMS_AT_LEAST_ONE_OF.includes(k))
    ) {
      return c.json(
        {
          error: `${UPDATE_PARAMS_AT_LEAST_ONE_OF.join(", ")} are missing, at least one parameter must be provided`,
        },
        400,
      );
    }
    const wanted = p.ci_id_token_sub_claim_components;
    if (wanted !== undefined && a.project.subClaimSupport !== "absent") {
      if (!Array.isArray(wanted) || !wanted.every((x) => typeof x === "string"))
        return badRequest(c, "ci_id_token_sub_claim_components is invalid");
      const list = wanted as string[];
      const errors: string[] = [];
      if (a.project.subClaimSupport === "legacy" || a.project.subClaimSupport === "basic") {
        const allowed = a.project.subClaimSupport === "basic" ? BASIC_ALLOWED : LEGACY_ALLOWED;
        if (list[0] !== "project_path")
          errors.push("project_path must be the first element of the sub claim");
        for (const x of list)
          if (!allowed.includes(x)) errors.push(`${x} is not an allowed sub claim component`);
      } else {
        if (list[0] !== "project_path" && list[0] !== "project_id")
          errors.push("project_path or project_id must be the first element of the sub claim");
        for (const x of list)
          if (!MODERN_ALLOWED.includes(x)) errors.push(`${x} is not an allowed sub claim component`);
      }
      if (errors.length) return badRequest(c, { "ci_cd_settings.id_token_sub_claim_components": errors });
      a.project.subClaimComponents = [...list];
    }
    return c.json(presentProject(baseUrl(), a.project, a.level));
  });

  // GET /users/:id (doc/api/users.md "Get a single user"): public fields for any signed-in user.
  api.get("/users/:id", (c) => {
    const id = Number(c.req.param("id"));
    const user = findUser(state, id);
    if (!user) return notFound(c, "404 User Not Found");
    return c.json(presentUser(baseUrl(), user, id));
  });

  // GET /groups/:id/members/all/:user_id (doc/api/members.md): direct, inherited and invited members.
  api.get("/groups/:id/members/all/:userId", (c) => {
    const path = c.req.param("id") ?? "";
    if (!state.groups.some((g) => g.path.toLowerCase() === path.toLowerCase()))
      return notFound(c, "404 Group Not Found");
    const userId = Number(c.req.param("userId"));
    const level = groupMemberLevel(state, path, userId);
    if (level === null) return notFound(c);
    return c.json({ ...presentMember(baseUrl(), state, userId, level), state: "active" });
  });

  api.get("/projects/:id/members/all/:userId", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const userId = Number(c.req.param("userId"));
    const level = memberLevel(a.project, userId, true);
    if (level === null) return notFound(c);
    return c.json(presentMember(baseUrl(), state, userId, level));
  });

  api.get("/projects/:id/members/:userId", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const userId = Number(c.req.param("userId"));
    const level = memberLevel(a.project, userId, false);
    if (level === null) return notFound(c);
    return c.json(presentMember(baseUrl(), state, userId, level));
  });

  // ---- issues
  api.get("/projects/:id/issues", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const q = new URL(c.req.url).searchParams;
    const search = q.get("search")?.toLowerCase();
    const fields = (q.get("in") ?? "title,description").split(",");
    const labels = (q.get("labels") ?? "").split(",").filter(Boolean);
    const author = q.get("author_id");
    const st = q.get("state") ?? "all";
    const list = a.project.issues
      .filter((i) => {
        if (st !== "all" && i.state !== st) return false;
        if (author && i.authorId !== Number(author)) return false;
        if (!labels.every((l) => i.labels.includes(l))) return false;
        if (search) {
          const hay = [
            fields.includes("title") ? i.title : "",
            fields.includes("description") ? i.description : "",
          ]
            .join("\n")
            .toLowerCase();
          if (!hay.includes(search)) return false;
        }
        return true;
      })
      .sort((x, y) => y.id - x.id);
    return c.json(paginate(c, list).map((i) => presentIssue(baseUrl(), state, a.project, i)));
  });

  api.get("/projects/:id/issues/:iid", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const issue = issueOf(a.project, c.req.param("iid"));
    if (!issue) return notFound(c, "404 Issue Not Found");
    return c.json(presentIssue(baseUrl(), state, a.project, issue));
  });

  api.post("/projects/:id/issues", async (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const p = await params(c);
    const title = str(p.title);
    if (!title) return badRequest(c, { title: ["can't be blank"] });
    const created = now();
    const iid = Math.max(0, ...a.project.issues.map((i) => i.iid)) + 1;
    const issue: SimIssue = {
      id: ++state.seq.issue,
      iid,
      projectId: a.project.id,
      title,
      description: str(p.description) ?? "",
      state: "opened",
      labels: (str(p.labels) ?? "").split(",").filter(Boolean),
      authorId: c.get("user").id,
      confidential: bool(p.confidential) ?? false,
      createdAt: created,
      updatedAt: created,
      notes: [],
    };
    a.project.issues.push(issue);
    return c.json(presentIssue(baseUrl(), state, a.project, issue), 201);
  });

  api.put("/projects/:id/issues/:iid", async (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const issue = issueOf(a.project, c.req.param("iid"));
    if (!issue) return notFound(c, "404 Issue Not Found");
    if (issue.authorId !== c.get("user").id && a.level < 20) return forbidden(c);
    const p = await params(c);
    const title = str(p.title);
    const description = str(p.description);
    if (title !== undefined) issue.title = title;
    if (description !== undefined) issue.description = description;
    const labels = str(p.labels);
    if (labels !== undefined) issue.labels = labels.split(",").filter(Boolean);
    const event = str(p.state_event);
    if (event === "close") issue.state = "closed";
    if (event === "reopen") issue.state = "opened";
    issue.updatedAt = now();
    return c.json(presentIssue(baseUrl(), state, a.project, issue));
  });

  // ---- notes
  api.get("/projects/:id/issues/:iid/notes", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const issue = issueOf(a.project, c.req.param("iid"));
    if (!issue) return notFound(c, "404 Issue Not Found");
    const q = new URL(c.req.url).searchParams;
    const asc = q.get("sort") === "asc";
    const notes = [...issue.notes].sort((x, y) => (asc ? x.id - y.id : y.id - x.id));
    return c.json(paginate(c, notes).map((n) => presentNote(baseUrl(), state, a.project, issue, n)));
  });

  api.post("/projects/:id/issues/:iid/notes", async (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const issue = issueOf(a.project, c.req.param("iid"));
    if (!issue) return notFound(c, "404 Issue Not Found");
    const p = await params(c);
    const body = str(p.body);
    if (!body) return badRequest(c, "400 Bad request - body is missing");
    if (body.length > 1_000_000)
      return badRequest(c, { note: ["is too long (maximum is 1000000 characters)"] });
    const created = now();
    const note = {
      id: ++state.seq.note,
      body,
      authorId: c.get("user").id,
      system: false,
      internal: bool(p.internal) ?? false,
      createdAt: created,
      updatedAt: created,
      awards: [],
    };
    issue.notes.push(note);
    return c.json(presentNote(baseUrl(), state, a.project, issue, note), 201);
  });

  // doc/api/notes.md "Get single issue note": the note is looked up among that issue's notes only
  // (`noteable.notes.find(note_id)` in lib/api/notes.rb), so a note of another issue is a 404.
  api.get("/projects/:id/issues/:iid/notes/:noteId", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const issue = issueOf(a.project, c.req.param("iid"));
    if (!issue) return notFound(c, "404 Issue Not Found");
    const note = issue.notes.find((n) => n.id === Number(c.req.param("noteId")));
    if (!note) return notFound(c, "404 Note Not Found");
    // Internal notes are visible from Reporter up (doc/user/discussions "internal notes").
    if (note.internal && a.level < 20) return notFound(c, "404 Note Not Found");
    return c.json(presentNote(baseUrl(), state, a.project, issue, note));
  });

  api.put("/projects/:id/issues/:iid/notes/:noteId", async (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const issue = issueOf(a.project, c.req.param("iid"));
    const note = issue?.notes.find((n) => n.id === Number(c.req.param("noteId")));
    if (!issue || !note) return notFound(c, "404 Note Not Found");
    if (note.authorId !== c.get("user").id) return forbidden(c);
    const body = str((await params(c)).body);
    if (!body) return badRequest(c, "400 Bad request - body is missing");
    note.body = body;
    note.updatedAt = now();
    return c.json(presentNote(baseUrl(), state, a.project, issue, note));
  });

  // ---- merge request notes (doc/api/notes.md, "Merge requests")
  const mergeRequestOf = (project: SimProject, iid: string | undefined) =>
    project.mergeRequests.find((m) => m.iid === Number(iid));

  api.get("/projects/:id/merge_requests/:iid/notes", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const mr = mergeRequestOf(a.project, c.req.param("iid"));
    if (!mr) return notFound(c, "404 Merge Request Not Found");
    const asc = new URL(c.req.url).searchParams.get("sort") === "asc";
    const notes = [...mr.notes].sort((x, y) => (asc ? x.id - y.id : y.id - x.id));
    return c.json(paginate(c, notes).map((n) => presentMergeRequestNote(baseUrl(), state, a.project, mr, n)));
  });

  api.post("/projects/:id/merge_requests/:iid/notes", async (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const mr = mergeRequestOf(a.project, c.req.param("iid"));
    if (!mr) return notFound(c, "404 Merge Request Not Found");
    const p = await params(c);
    const body = str(p.body);
    if (!body) return badRequest(c, "400 Bad request - body is missing");
    const created = now();
    const note = {
      id: ++state.seq.note,
      body,
      authorId: c.get("user").id,
      system: false,
      internal: bool(p.internal) ?? false,
      createdAt: created,
      updatedAt: created,
      awards: [],
    };
    mr.notes.push(note);
    return c.json(presentMergeRequestNote(baseUrl(), state, a.project, mr, note), 201);
  });

  // ---- award emoji on notes
  const noteOf = (c: C, project: SimProject) => {
    const issue = issueOf(project, c.req.param("iid"));
    const note = issue?.notes.find((n) => n.id === Number(c.req.param("noteId")));
    return note;
  };

  api.get("/projects/:id/issues/:iid/notes/:noteId/award_emoji", (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const note = noteOf(c, a.project);
    if (!note) return notFound(c, "404 Note Not Found");
    return c.json(paginate(c, note.awards).map((aw) => presentAward(baseUrl(), state, note, aw)));
  });

  api.post("/projects/:id/issues/:iid/notes/:noteId/award_emoji", async (c) => {
    const a = access(c, 10);
    if (a instanceof Response) return a;
    const note = noteOf(c, a.project);
    if (!note) return notFound(c, "404 Note Not Found");
    const name = str((await params(c)).name);
    if (!name) return badRequest(c, "400 Bad request - name is missing");
    const user = c.get("user");
    // lib/api/award_emoji.rb: a failed AddService answers not_found!("Award Emoji #{message}").
    if (note.awards.some((aw) => aw.name === name && aw.userId === user.id))
      return notFound(c, "404 Award Emoji Name has already been taken Not Found");
    const award = { id: ++state.seq.award, name, userId: user.id, createdAt: now() };
    note.awards.push(award);
    return c.json(presentAward(baseUrl(), state, note, award), 201);
  });

  // ---- project CI/CD variables
  api.get("/projects/:id/variables", (c) => {
    const a = access(c, 40);
    if (a instanceof Response) return a;
    return c.json(paginate(c, a.project.variables).map(presentVariable));
  });

  /** GitLab's lookup: by key, narrowed by filter[environment_scope]; ambiguous keys are refused. */
  const lookup = (
    c: C,
    project: SimProject,
    key: string,
    scope: string | undefined,
  ): SimVariable | Response => {
    const matches = project.variables.filter(
      (v) => v.key === key && (scope === undefined || v.environmentScope === scope),
    );
    if (matches.length === 0) return notFound(c, "404 Variable Not Found");
    if (matches.length > 1)
      return c.json(
        {
          message:
            "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'",
        },
        409,
      );
    return matches[0] as SimVariable;
  };

  api.get("/projects/:id/variables/:key", async (c) => {
    const a = access(c, 40);
    if (a instanceof Response) return a;
    const v = lookup(c, a.project, c.req.param("key"), envScopeFilter(await params(c)));
    if (v instanceof Response) return v;
    return c.json(presentVariable(v));
  });

  const validateValue = (value: string, masked: boolean): Record<string, string[]> | null => {
    if (masked && !MASKABLE.test(value)) return { value: ["is invalid"] };
    return null;
  };

  api.post("/projects/:id/variables", async (c) => {
    const a = access(c, 40);
    if (a instanceof Response) return a;
    const p = await params(c);
    const key = str(p.key);
    const value = str(p.value);
    if (!key) return badRequest(c, "400 Bad request - key is missing");
    if (value === undefined) return badRequest(c, "400 Bad request - value is missing");
    if (!VARIABLE_KEY.test(key))
      return badRequest(c, {
        key: ["can contain only letters, digits and '_'."],
      });
    const scope = str(p.environment_scope) ?? "*";
    const masked = bool(p.masked) ?? false;
    const invalid = validateValue(value, masked);
    if (invalid) return badRequest(c, invalid);
    if (a.project.variables.some((v) => v.key === key && v.environmentScope === scope))
      return badRequest(c, { key: [`(${key}) has already been taken`] });
    const variable: SimVariable = {
      key,
      value,
      environmentScope: scope,
      masked,
      protected: bool(p.protected) ?? false,
      raw: bool(p.raw) ?? false,
      variableType: str(p.variable_type) === "file" ? "file" : "env_var",
      description: str(p.description) ?? null,
    };
    a.project.variables.push(variable);
    return c.json(presentVariable(variable), 201);
  });

  api.put("/projects/:id/variables/:key", async (c) => {
    const a = access(c, 40);
    if (a instanceof Response) return a;
    const p = await params(c);
    const v = lookup(c, a.project, c.req.param("key"), envScopeFilter(p));
    if (v instanceof Response) return v;
    const value = str(p.value) ?? v.value;
    const masked = bool(p.masked) ?? v.masked;
    const invalid = validateValue(value, masked);
    if (invalid) return badRequest(c, invalid);
    v.value = value;
    v.masked = masked;
    v.protected = bool(p.protected) ?? v.protected;
    v.raw = bool(p.raw) ?? v.raw;
    const newScope = str(p.environment_scope);
    if (newScope !== undefined) v.environmentScope = newScope;
    const description = str(p.description);
    if (description !== undefined) v.description = description;
    return c.json(presentVariable(v));
  });

  api.delete("/projects/:id/variables/:key", async (c) => {
    const a = access(c, 40);
    if (a instanceof Response) return a;
    const v = lookup(c, a.project, c.req.param("key"), envScopeFilter(await params(c)));
    if (v instanceof Response) return v;
    a.project.variables = a.project.variables.filter((x) => x !== v);
    return c.body(null, 204);
  });

  // ---- environments
  api.get("/projects/:id/environments", (c) => {
    const a = access(c, 20);
    if (a instanceof Response) return a;
    const q = new URL(c.req.url).searchParams;
    const name = q.get("name");
    const search = q.get("search");
    const states = q.get("states");
    if (name && search) return badRequest(c, "name, search are mutually exclusive");
    // lib/api/environments.rb: `states` is validated against Environment's states (400 otherwise).
    if (states !== null && !["available", "stopping", "stopped"].includes(states))
      return badRequest(c, "states does not have a valid value");
    if (search && search.length < 3) return badRequest(c, "search must be at least 3 characters");
    const list = a.project.environments.filter(
      (e) =>
        (!name || e.name === name) && (!search || e.name.includes(search)) && (!states || e.state === states),
    );
    return c.json(paginate(c, list).map(presentEnvironment));
  });
  /** An environment of the project by its id, as GitLab's `user_project.environments.find`. */
  const environmentOf = (project: SimProject, raw: string | undefined) =>
    project.environments.find((e) => String(e.id) === raw);
  api.post("/projects/:id/environments/:environmentId/stop", (c) => {
    // stop_environment: Developer and up (doc/user/permissions.md "Stop environments").
    const a = access(c, 30);
    if (a instanceof Response) return a;
    const env = environmentOf(a.project, c.req.param("environmentId"));
    if (!env) return notFound(c, "404 Environment Not Found");
    return c.json(presentEnvironment(stopEnvironment(env)));
  });
  api.delete("/projects/:id/environments/:environmentId", (c) => {
    const a = access(c, 30);
    if (a instanceof Response) return a;
    const env = environmentOf(a.project, c.req.param("environmentId"));
    if (!env) return notFound(c, "404 Environment Not Found");
    // Only a stopped environment may be deleted (destroy_environment needs the environment stopped).
    if (deleteEnvironment(a.project, env) === "not-stopped") return forbidden(c);
    return c.body(null, 204);
  });

  return api;
}
