import { timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { z } from "zod";
import { listenHttps } from "./entra-sim/listen.ts";
import { createOidcIssuer, type OidcIssuer } from "./gitlab-oidc.ts";
import { apiRoutes, type SimEnv } from "./gitlab-sim/api-routes.ts";
import { presentProject } from "./gitlab-sim/present.ts";
import {
  addEnvironment,
  addProject,
  addProjects,
  createState,
  deleteEnvironment,
  deployToEnvironment,
  findProject,
  type NewProjectInput,
  now,
  type SimEnvironment,
  type SimGroup,
  type SimMergeRequest,
  type SimNote,
  type SimProject,
  type SimState,
  type SimUser,
  type SubClaimSupport,
  setMember,
  stopEnvironment,
} from "./gitlab-sim/state.ts";

export type {
  SimEnvironment,
  SimGroup,
  SimIssue,
  SimMergeRequest,
  SimNote,
  SimProject,
  SimState,
  SimUser,
  SubClaimSupport,
} from "./gitlab-sim/state.ts";

/**
 * A GitLab simulator over HTTPS: the REST endpoints the bot uses (/api/v4, GitLab's documented shapes and
 * errors), GitLab's OIDC discovery paths (its URL is the CI ID token issuer), fault injection and /_sim/
 * control endpoints for the sandbox and cross-process tests. Listens on 127.0.0.1 only.
 */

export interface ProjectSeed extends NewProjectInput {
  /** The bot's access level in this project; null = not a member. Default 40 (Maintainer). */
  botAccessLevel?: number | null;
}

export interface GitLabSimulatorOptions {
  /** PRIVATE-TOKEN (or Bearer token) of the bot user. */
  token: string;
  botUser: { id: number; username: string; name?: string };
  users?: SimUser[];
  projects?: ProjectSeed[];
  port?: number;
  /** Default for projects that do not say (see SubClaimSupport). Default "modern". */
  subClaimSupport?: SubClaimSupport;
  /** Serve this OIDC issuer; default a fresh one. false: no OIDC endpoints. */
  oidc?: OidcIssuer | false;
}

export interface FailNextOptions {
  retryAfterSeconds?: number;
  /** Only requests whose path (after /api/v4) contains this string. */
  pathIncludes?: string;
  method?: string;
}

/**
 * A rate-limit window of `forMs`, starting at the first matching request (as a limiter's window starts with the
 * request that exhausts it), during which matching requests are answered as GitLab answers:
 * - "rack-attack": Rack::Attack throttle (lib/gitlab/rack_attack.rb, gitlab-org/gitlab!50833): plain-text
 *   429 with Retry-After and RateLimit-Name/-Limit/-Observed/-Remaining/-Reset (Unix time)/-ResetTime;
 * - "ratelimit-only": the same without Retry-After (GitLab before gitlab-org/gitlab#287602 was fixed);
 * - "application": Gitlab::ApplicationRateLimiter (note and issue creation, …): `render_api_error!` JSON
 *   `{"message":{"error":"This endpoint has been requested too many times. Try again later."}}` and NO
 *   rate-limit header at all (lib/api/helpers/rate_limiter.rb).
 */
export interface RateLimitWindow {
  forMs: number;
  /** Set by the simulator at the first matching request. */
  untilMs?: number;
  kind: "rack-attack" | "ratelimit-only" | "application";
  pathIncludes?: string;
  method?: string;
}

export interface GitLabSimFaults {
  /** Every API request answers 503. */
  down: boolean;
  /** Added before every API response. */
  latencyMs: number;
  /** Requests per rolling minute before 429 with Retry-After; undefined = unlimited. */
  rateLimitPerMinute: number | undefined;
  /** Matching requests answer 429 (see RateLimitWindow) until the window ends. */
  rateLimitWindow: RateLimitWindow | undefined;
  /** The next `count` matching API requests answer `status` (with Retry-After when given). */
  failNext(count: number, status: number, opts?: FailNextOptions): void;
  /** Clears everything above. */
  clear(): void;
}

export interface SimRequestLog {
  method: string;
  /** Path after /api/v4, without query string. */
  path: string;
  status: number;
  /** Query string as sent (without "?"); absent when there is none. */
  query?: string;
  /** The body: parsed JSON, form fields, or text; undefined when none. */
  body?: unknown;
}

export interface GitLabSimStats {
  /** API requests received (/api/v4 only). */
  requests: number;
  /** API requests that were not GET/HEAD. */
  writes: number;
  /** Most recent requests, oldest first (bounded). */
  log: SimRequestLog[];
  reset(): void;
}

export interface MintForProject {
  projectId: number;
  ref: string;
  refType: "branch" | "tag";
  audience: string;
  environment?: { name: string; tier?: string; protected?: boolean };
  /** Whether the ref is protected in the project (a fork's merge-request pipeline's is not). Default false. */
  refProtected?: boolean;
  /** A merge-request pipeline from this fork (a project of this simulator), run in `projectId`. */
  mergeRequestFromForkId?: number;
  overrides?: Record<string, unknown>;
}

export interface GitLabSimulator {
  /** https://localhost:PORT: API base (without /api/v4) and OIDC issuer. */
  url: string;
  state: SimState;
  oidc: OidcIssuer | undefined;
  faults: GitLabSimFaults;
  stats: GitLabSimStats;
  botUser: SimUser;
  addUser(user: SimUser): SimUser;
  addProject(seed: ProjectSeed): SimProject;
  /** Many projects at once (benchmarks seed 10,000); the same as addProject for each, without its scans. */
  addProjects(seeds: readonly ProjectSeed[]): SimProject[];
  addMember(projectId: number, userId: number, accessLevel: number, opts?: { inherited?: boolean }): void;
  removeMember(projectId: number, userId: number): void;
  addEnvironment(projectId: number, env: string | { name: string; tier?: string }): SimEnvironment;
  /** What a deployment does: creates the environment, or makes a stopped one available again. */
  deployEnvironment(projectId: number, env: string | { name: string; tier?: string }): SimEnvironment;
  /** Stops the environment (state `stopped`), as the stop API or UI does. No event (GitLab sends none). */
  stopEnvironment(projectId: number, name: string): SimEnvironment;
  /**
   * Deletes the environment, as GitLab's API does: only a stopped one (throws otherwise, GitLab answers 403).
   * It is gone from the environments list. No event (GitLab has no environment-deleted webhook).
   */
  deleteEnvironment(projectId: number, name: string): void;
  /** A GitLab group with direct members (userId -> access level); ancestors' members are inherited. */
  addGroup(path: string, members?: Record<number, number>): SimGroup;
  renameProject(id: number, newPath: string): SimProject;
  /**
   * What GitLab does when a project is deleted with a deletion delay: marks it (marked_for_deletion_at/_on)
   * and renames it to `<path>-deletion_scheduled-<id>`, which frees the path at once. No event is sent.
   */
  scheduleDeletion(id: number): SimProject;
  /** The project is gone (deleted at once, or after its delay); GET /projects/:id answers 404. No event. */
  removeProject(id: number): void;
  /** A human's comment on an issue (what a Note Hook would then report); `internal` for an internal note. */
  addUserNote(
    projectId: number,
    issueIid: number,
    userId: number,
    body: string,
    opts?: { internal?: boolean; system?: boolean },
  ): SimNote;
  addMergeRequest(projectId: number, title: string, authorId: number): SimMergeRequest;
  addUserMergeRequestNote(
    projectId: number,
    mrIid: number,
    userId: number,
    body: string,
    opts?: { internal?: boolean },
  ): SimNote;
  project(id: number): SimProject | undefined;
  /** A CI ID token for a job of this project, `sub` built from the project's current sub-claim setting. */
  mintIdToken(opts: MintForProject): Promise<string>;
  close(): Promise<void>;
}

const projectSeedSchema = z.object({
  id: z.number().int().positive().optional(),
  path: z.string().regex(/^[\w.-]+(\/[\w.-]+)+$/, "must be group/project"),
  visibility: z.enum(["private", "internal", "public"]).optional(),
  subClaimSupport: z.enum(["modern", "legacy", "basic", "absent"]).optional(),
  subClaimComponents: z.array(z.string()).optional(),
  members: z.record(z.string(), z.number().int()).optional(),
  inheritedMembers: z.record(z.string(), z.number().int()).optional(),
  environments: z
    .array(z.union([z.string(), z.object({ name: z.string(), tier: z.string().optional() })]))
    .optional(),
  botAccessLevel: z.number().int().nullable().optional(),
});

const faultsSchema = z.object({
  down: z.boolean().optional(),
  latencyMs: z.number().int().min(0).max(60_000).optional(),
  rateLimitPerMinute: z.number().int().positive().nullable().optional(),
  /** Rate-limit window of forMs from the first matching request (see RateLimitWindow); null clears it. */
  rateLimitWindow: z
    .object({
      forMs: z.number().int().positive(),
      kind: z.enum(["rack-attack", "ratelimit-only", "application"]),
      pathIncludes: z.string().optional(),
      method: z.string().optional(),
    })
    .nullable()
    .optional(),
  failNext: z
    .object({
      count: z.number().int().positive(),
      status: z.number().int().min(400).max(599),
      retryAfterSeconds: z.number().int().min(0).optional(),
      pathIncludes: z.string().optional(),
      method: z.string().optional(),
    })
    .optional(),
  clear: z.boolean().optional(),
});

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startGitLabSimulator(options: GitLabSimulatorOptions): Promise<GitLabSimulator> {
  const state = createState();
  const bot: SimUser = {
    id: options.botUser.id,
    username: options.botUser.username,
    name: options.botUser.name ?? options.botUser.username,
    token: options.token,
  };
  state.users.push(bot, ...(options.users ?? []).filter((u) => u.id !== bot.id));
  const defaults = { subClaimSupport: options.subClaimSupport ?? "modern" };
  const oidc = options.oidc === false ? undefined : (options.oidc ?? (await createOidcIssuer()));
  let url = "";

  // ---- faults and stats
  type Pending = { remaining: number; status: number } & FailNextOptions;
  let pending: Pending[] = [];
  let windowStart = Date.now();
  let windowCount = 0;
  const faults: GitLabSimFaults = {
    down: false,
    latencyMs: 0,
    rateLimitPerMinute: undefined,
    rateLimitWindow: undefined,
    failNext(count, status, opts = {}) {
      pending.push({ remaining: count, status, ...opts });
    },
    clear() {
      this.down = false;
      this.latencyMs = 0;
      this.rateLimitPerMinute = undefined;
      this.rateLimitWindow = undefined;
      pending = [];
    },
  };
  const stats: GitLabSimStats = {
    requests: 0,
    writes: 0,
    log: [],
    reset() {
      this.requests = 0;
      this.writes = 0;
      this.log = [];
    },
  };

  // ---- handle operations (shared by the JS API and /_sim/)
  /** The bot's own membership as the seed says (default Maintainer). */
  const botMember = (project: SimProject, seed: ProjectSeed) => {
    const botLevel = seed.botAccessLevel === undefined ? 40 : seed.botAccessLevel;
    if (botLevel !== null && !project.members.some((m) => m.userId === bot.id))
      setMember(project, bot.id, botLevel, false);
  };
  const mustProject = (id: number): SimProject => {
    const p = findProject(state, String(id));
    if (!p) throw new Error(`no project ${id}`);
    return p;
  };
  // Environment names are case-sensitive in GitLab (unique index on project_id, name), so the match is exact.
  const mustEnvironment = (projectId: number, name: string): SimEnvironment => {
    const e = mustProject(projectId).environments.find((x) => x.name === name);
    if (!e) throw new Error(`no environment ${name} in project ${projectId}`);
    return e;
  };
  const handle = {
    addUser(user: SimUser): SimUser {
      state.users = state.users.filter((u) => u.id !== user.id);
      state.users.push(user);
      return user;
    },
    addProject(seed: ProjectSeed): SimProject {
      const project = addProject(state, seed, defaults);
      botMember(project, seed);
      return project;
    },
    addProjects(seeds: readonly ProjectSeed[]): SimProject[] {
      const projects = addProjects(state, seeds, defaults);
      projects.forEach((p, i) => {
        botMember(p, seeds[i] as ProjectSeed);
      });
      return projects;
    },
    addMember(projectId: number, userId: number, accessLevel: number, opts: { inherited?: boolean } = {}) {
      setMember(mustProject(projectId), userId, accessLevel, opts.inherited ?? false);
    },
    removeMember(projectId: number, userId: number) {
      const p = mustProject(projectId);
      p.members = p.members.filter((m) => m.userId !== userId);
    },
    addEnvironment(projectId: number, env: string | { name: string; tier?: string }) {
      return addEnvironment(state, mustProject(projectId), env);
    },
    deployEnvironment(projectId: number, env: string | { name: string; tier?: string }) {
      return deployToEnvironment(state, mustProject(projectId), env);
    },
    stopEnvironment(projectId: number, name: string) {
      return stopEnvironment(mustEnvironment(projectId, name));
    },
    deleteEnvironment(projectId: number, name: string) {
      if (deleteEnvironment(mustProject(projectId), mustEnvironment(projectId, name)) === "not-stopped")
        throw new Error(
          `environment ${name} of project ${projectId} is not stopped: GitLab refuses to delete it (403)`,
        );
    },
    addGroup(path: string, members: Record<number, number> = {}): SimGroup {
      state.groups = state.groups.filter((g) => g.path !== path);
      const group: SimGroup = {
        id: ++state.seq.namespace,
        path,
        members: Object.entries(members).map(([u, level]) => ({
          userId: Number(u),
          accessLevel: level,
          inherited: false,
        })),
      };
      state.groups.push(group);
      return group;
    },
    renameProject(id: number, newPath: string): SimProject {
      const p = mustProject(id);
      if (state.projects.some((x) => x.path.toLowerCase() === newPath.toLowerCase() && x !== p))
        throw new Error(`path ${newPath} is taken`);
      p.previousPaths.push(p.path);
      p.path = newPath;
      return p;
    },
    addMergeRequest(projectId: number, title: string, authorId: number): SimMergeRequest {
      const p = mustProject(projectId);
      const mr: SimMergeRequest = {
        id: ++state.seq.issue,
        iid: Math.max(0, ...p.mergeRequests.map((m) => m.iid)) + 1,
        title,
        authorId,
        notes: [],
      };
      p.mergeRequests.push(mr);
      return mr;
    },
    addUserMergeRequestNote(
      projectId: number,
      mrIid: number,
      userId: number,
      body: string,
      opts: { internal?: boolean } = {},
    ): SimNote {
      const mr = mustProject(projectId).mergeRequests.find((m) => m.iid === mrIid);
      if (!mr) throw new Error(`no merge request !${mrIid} in project ${projectId}`);
      const created = now();
      const note: SimNote = {
        id: ++state.seq.note,
        body,
        authorId: userId,
        system: false,
        internal: opts.internal ?? false,
        createdAt: created,
        updatedAt: created,
        awards: [],
      };
      mr.notes.push(note);
      return note;
    },
    scheduleDeletion(id: number): SimProject {
      const p = mustProject(id);
      const today = now().slice(0, 10);
      p.previousPaths.push(p.path);
      p.path = `${p.path}-deletion_scheduled-${p.id}`;
      p.markedForDeletionOn = today;
      return p;
    },
    removeProject(id: number): void {
      const p = mustProject(id);
      state.projects.splice(state.projects.indexOf(p), 1);
    },
    addUserNote(
      projectId: number,
      issueIid: number,
      userId: number,
      body: string,
      opts: { internal?: boolean; system?: boolean } = {},
    ): SimNote {
      const issue = mustProject(projectId).issues.find((i) => i.iid === issueIid);
      if (!issue) throw new Error(`no issue ${issueIid} in project ${projectId}`);
      const created = now();
      const note: SimNote = {
        id: ++state.seq.note,
        body,
        authorId: userId,
        system: opts.system ?? false,
        internal: opts.internal ?? false,
        createdAt: created,
        updatedAt: created,
        awards: [],
      };
      issue.notes.push(note);
      return note;
    },
    project(id: number) {
      return findProject(state, String(id));
    },
    async mintIdToken(opts: MintForProject): Promise<string> {
      if (!oidc) throw new Error("this simulator was started without an OIDC issuer");
      const p = mustProject(opts.projectId);
      const ref = (x: SimProject) => ({
        id: x.id,
        path: x.path,
        namespaceId: x.namespaceId,
        visibility: x.visibility,
      });
      const fork =
        opts.mergeRequestFromForkId === undefined ? undefined : mustProject(opts.mergeRequestFromForkId);
      return oidc.mint({
        issuer: url,
        audience: opts.audience,
        project: ref(p),
        ref: opts.ref,
        refType: opts.refType,
        // GitLab reads the setting of the project the token names (the fork, for a fork's MR pipeline).
        subClaimComponents: (fork ?? p).subClaimComponents,
        environment: opts.environment,
        ...(opts.refProtected !== undefined ? { refProtected: opts.refProtected } : {}),
        mergeRequestFromFork: fork ? ref(fork) : undefined,
        overrides: opts.overrides,
      });
    },
  };
  for (const seed of options.projects ?? []) handle.addProject(seed);

  // ---- HTTP
  const app = new Hono<SimEnv>();
  if (oidc) oidc.mount(app as unknown as Hono, () => url);

  app.use("/api/v4/*", async (c, next) => {
    const path = c.req.path.slice("/api/v4".length) || "/";
    const method = c.req.method;
    stats.requests += 1;
    if (method !== "GET" && method !== "HEAD") stats.writes += 1;
    const query = new URL(c.req.url).search.replace(/^\?/, "");
    const sent = method === "GET" || method === "HEAD" ? "" : await c.req.raw.clone().text();
    const record = (status: number) => {
      stats.log.push({
        method,
        path,
        status,
        ...(query ? { query } : {}),
        body: requestBody(sent, c.req.header("content-type")),
      });
      if (stats.log.length > 1000) stats.log.shift();
    };
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    if (faults.down) {
      record(503);
      return c.json({ message: "503 Service Unavailable" }, 503);
    }
    const fault = pending.find(
      (f) =>
        f.remaining > 0 &&
        (!f.pathIncludes || path.includes(f.pathIncludes)) &&
        (!f.method || f.method.toUpperCase() === method),
    );
    if (fault) {
      fault.remaining -= 1;
      pending = pending.filter((f) => f.remaining > 0);
      if (fault.retryAfterSeconds !== undefined) c.header("retry-after", String(fault.retryAfterSeconds));
      record(fault.status);
      if (fault.status === 429) return c.text("Retry later\n", 429);
      // Bodies of GitLab's own helpers (lib/api/helpers.rb: forbidden!, not_found!, …).
      const reason: Record<number, string> = {
        400: "400 Bad request",
        401: "401 Unauthorized",
        403: "403 Forbidden",
        404: "404 Not found",
        409: "409 Conflict",
        500: "500 Internal Server Error",
        502: "502 Bad Gateway",
        503: "503 Service Unavailable",
      };
      return c.json({ message: reason[fault.status] ?? `${fault.status} Error` }, fault.status as 500);
    }
    if (faults.rateLimitPerMinute !== undefined) {
      const t = Date.now();
      if (t - windowStart >= 60_000) {
        windowStart = t;
        windowCount = 0;
      }
      windowCount += 1;
      if (windowCount > faults.rateLimitPerMinute) {
        // Rack::Attack answers GitLab's throttles with plain text and these headers.
        const reset = Math.max(1, Math.ceil((windowStart + 60_000 - t) / 1000));
        c.header("retry-after", String(reset));
        c.header("ratelimit-limit", String(faults.rateLimitPerMinute));
        c.header("ratelimit-remaining", "0");
        record(429);
        return c.text("Retry later\n", 429);
      }
    }
    const w = faults.rateLimitWindow;
    const inWindow =
      w &&
      (!w.pathIncludes || path.includes(w.pathIncludes)) &&
      (!w.method || w.method.toUpperCase() === method);
    // The window opens with the first matching request.
    if (inWindow && w.untilMs === undefined) w.untilMs = Date.now() + w.forMs;
    if (inWindow && Date.now() < (w.untilMs ?? 0)) {
      record(429);
      if (w.kind === "application") {
        return c.json(
          { message: { error: "This endpoint has been requested too many times. Try again later." } },
          429,
        );
      }
      const resetSeconds = Math.ceil((w.untilMs ?? Date.now()) / 1000);
      if (w.kind === "rack-attack")
        c.header("retry-after", String(Math.max(1, resetSeconds - Math.floor(Date.now() / 1000))));
      c.header("ratelimit-name", "throttle_authenticated_api");
      c.header("ratelimit-limit", "60");
      c.header("ratelimit-observed", "61");
      c.header("ratelimit-remaining", "0");
      c.header("ratelimit-reset", String(resetSeconds));
      c.header("ratelimit-resettime", new Date(resetSeconds * 1000).toUTCString());
      return c.text("Retry later\n", 429);
    }
    const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    const presented = c.req.header("private-token") ?? bearer;
    const user = presented ? state.users.find((u) => u.token && sameSecret(u.token, presented)) : undefined;
    if (!user) {
      record(401);
      return c.json({ message: "401 Unauthorized" }, 401);
    }
    c.set("user", user);
    await next();
    record(c.res.status);
    return;
  });
  app.route(
    "/api/v4",
    apiRoutes(state, () => url),
  );
  app.all("/api/v4/*", (c) => c.json({ error: "404 Not Found" }, 404));

  // ---- control endpoints (unauthenticated; the server listens on 127.0.0.1 only)
  app.get("/_sim/state", (c) =>
    c.json({
      ...state,
      users: state.users.map(({ token: _token, ...u }) => u),
    }),
  );
  app.post("/_sim/faults", async (c) => {
    const parsed = faultsSchema.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    const f = parsed.data;
    if (f.clear) faults.clear();
    if (f.down !== undefined) faults.down = f.down;
    if (f.latencyMs !== undefined) faults.latencyMs = f.latencyMs;
    if (f.rateLimitPerMinute !== undefined) faults.rateLimitPerMinute = f.rateLimitPerMinute ?? undefined;
    if (f.rateLimitWindow !== undefined) faults.rateLimitWindow = f.rateLimitWindow ?? undefined;
    if (f.failNext) faults.failNext(f.failNext.count, f.failNext.status, f.failNext);
    return c.json({
      down: faults.down,
      latencyMs: faults.latencyMs,
      rateLimitPerMinute: faults.rateLimitPerMinute ?? null,
      pending,
    });
  });
  app.post("/_sim/stats/reset", (c) => {
    stats.reset();
    return c.json({ ok: true });
  });
  app.get("/_sim/stats", (c) => c.json({ requests: stats.requests, writes: stats.writes, log: stats.log }));
  app.post("/_sim/users", async (c) => {
    const parsed = z
      .object({
        id: z.number().int().positive(),
        username: z.string().min(1),
        name: z.string().optional(),
        token: z.string().optional(),
      })
      .safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    const u = handle.addUser({ ...parsed.data, name: parsed.data.name ?? parsed.data.username });
    return c.json({ id: u.id, username: u.username, name: u.name }, 201);
  });
  app.post("/_sim/projects", async (c) => {
    const parsed = projectSeedSchema.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    const { members, inheritedMembers, ...rest } = parsed.data;
    try {
      const p = handle.addProject({
        ...rest,
        members: members
          ? Object.fromEntries(Object.entries(members).map(([k, v]) => [Number(k), v]))
          : undefined,
        inheritedMembers: inheritedMembers
          ? Object.fromEntries(Object.entries(inheritedMembers).map(([k, v]) => [Number(k), v]))
          : undefined,
      });
      return c.json(presentProject(url, p, 50), 201);
    } catch (err) {
      return c.json({ error: (err as Error).message }, 409);
    }
  });
  const withProject = (id: string) => findProject(state, id);
  app.post("/_sim/projects/:id/rename", async (c) => {
    const parsed = z.object({ path: z.string().min(3) }).safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    const p = withProject(c.req.param("id"));
    if (!p) return c.json({ error: "no such project" }, 404);
    try {
      const old = p.path;
      handle.renameProject(p.id, parsed.data.path);
      return c.json({ id: p.id, path_with_namespace: p.path, old_path_with_namespace: old });
    } catch (err) {
      return c.json({ error: (err as Error).message }, 409);
    }
  });
  app.post("/_sim/projects/:id/schedule-deletion", (c) => {
    const p = withProject(c.req.param("id"));
    if (!p) return c.json({ error: "no such project" }, 404);
    handle.scheduleDeletion(p.id);
    return c.json({ id: p.id, path_with_namespace: p.path, marked_for_deletion_on: p.markedForDeletionOn });
  });
  app.delete("/_sim/projects/:id", (c) => {
    const p = withProject(c.req.param("id"));
    if (!p) return c.json({ error: "no such project" }, 404);
    handle.removeProject(p.id);
    return c.body(null, 204);
  });
  app.post("/_sim/projects/:id/members", async (c) => {
    const parsed = z
      .object({ userId: z.number().int(), accessLevel: z.number().int(), inherited: z.boolean().optional() })
      .safeParse(await c.req.json().catch(() => null));
    const p = withProject(c.req.param("id"));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    if (!p) return c.json({ error: "no such project" }, 404);
    handle.addMember(p.id, parsed.data.userId, parsed.data.accessLevel, { inherited: parsed.data.inherited });
    return c.json({ ok: true });
  });
  app.post("/_sim/projects/:id/environments", async (c) => {
    const parsed = z
      .object({ name: z.string().min(1), tier: z.string().optional() })
      .safeParse(await c.req.json().catch(() => null));
    const p = withProject(c.req.param("id"));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    if (!p) return c.json({ error: "no such project" }, 404);
    return c.json(handle.addEnvironment(p.id, parsed.data), 201);
  });
  app.post("/_sim/projects/:id/environments/:action{stop|delete}", async (c) => {
    const parsed = z.object({ name: z.string().min(1) }).safeParse(await c.req.json().catch(() => null));
    const p = withProject(c.req.param("id"));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    if (!p) return c.json({ error: "no such project" }, 404);
    try {
      if (c.req.param("action") === "stop") return c.json(handle.stopEnvironment(p.id, parsed.data.name));
      handle.deleteEnvironment(p.id, parsed.data.name);
      return c.body(null, 204);
    } catch (err) {
      return c.json({ error: (err as Error).message }, 409);
    }
  });
  app.post("/_sim/projects/:id/issues/:iid/notes", async (c) => {
    const parsed = z
      .object({ userId: z.number().int(), body: z.string().min(1) })
      .safeParse(await c.req.json().catch(() => null));
    const p = withProject(c.req.param("id"));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    if (!p) return c.json({ error: "no such project" }, 404);
    try {
      return c.json(
        handle.addUserNote(p.id, Number(c.req.param("iid")), parsed.data.userId, parsed.data.body),
        201,
      );
    } catch (err) {
      return c.json({ error: (err as Error).message }, 404);
    }
  });
  app.post("/_sim/id-token", async (c) => {
    const parsed = z
      .object({
        projectId: z.number().int(),
        ref: z.string().min(1),
        refType: z.enum(["branch", "tag"]),
        audience: z.string().min(1),
        environment: z
          .object({ name: z.string(), tier: z.string().optional(), protected: z.boolean().optional() })
          .optional(),
        refProtected: z.boolean().optional(),
        mergeRequestFromForkId: z.number().int().optional(),
      })
      .safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) return c.json({ error: parsed.error.issues }, 400);
    try {
      return c.json({ token: await handle.mintIdToken(parsed.data) });
    } catch (err) {
      return c.json({ error: (err as Error).message }, 404);
    }
  });

  const listener = await listenHttps(app as unknown as Hono, options.port ?? 0);
  url = listener.url;

  return {
    url,
    state,
    oidc,
    faults,
    stats,
    botUser: bot,
    ...handle,
    close: listener.close,
  };
}

/** What a request carried, as the contract tests compare it: JSON, form fields, or text. */
function requestBody(text: string, contentType: string | undefined): unknown {
  if (text === "") return undefined;
  if (contentType?.includes("application/x-www-form-urlencoded")) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
