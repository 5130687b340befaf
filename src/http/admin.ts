import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Queue } from "bullmq";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { secureHeaders } from "hono/secure-headers";
import type { Logger } from "pino";
import { z } from "zod";
import { type AuditLog, AuditValidationError } from "../onboarding/audit.ts";
import { type AdminRole, authenticate } from "./admin-auth.ts";
import { ADMIN_CSP } from "./admin-csp.ts";

export interface AdminRoutesOptions {
  queues: Queue[];
  /** Full access: retry, clean, pause/resume (the kill switch), promote, add. */
  adminToken?: string;
  /** Read-only access to the same pages and the audit trail. */
  viewerToken?: string;
  /** Where the admin surface lives, e.g. "/admin". */
  basePath: string;
  audit: AuditLog;
  logger?: Logger;
  /**
   * The service's public origin (PUBLIC_URL), which a browser puts in `Origin`. Absent: the request's own
   * host (scheme ignored, as TLS may end at a proxy); set it when a proxy rewrites Host.
   */
  publicOrigin?: string;
}

const SAFE_METHODS = new Set(["GET", "HEAD"]);
const REALM = "gitlab-entra-bot admin";

const auditQuerySchema = z.object({
  project: z.coerce.number().int().positive().optional(),
  outcome: z.enum(["ok", "failed", "planned", "refused", "intended"]).optional(),
  since: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
  cursor: z.string().min(1).max(64).optional(),
});

/**
 * The admin surface: Bull Board at `${basePath}/queues` and the audit trail at `${basePath}/audit`.
 * Every path under basePath (pages, API, static assets, unknown paths) needs a token. Routes carry their
 * full path, so mount the result at the root: `app.route("/", createAdminRoutes({ basePath: "/admin", ... }))`.
 *
 * - No token configured: every path under basePath answers 503 with a message saying how to enable it.
 * - Admin token: the full board. Viewer token: a separate read-only board instance, and any non-GET is
 *   refused with 403 before it reaches Bull Board.
 * - Unsafe methods need proof of same origin and a JSON body (see unsafeRequestProblem): the browser replays
 *   cached Basic credentials on cross-site form posts, so the token alone does not stop CSRF.
 * - Bull Board's routes that forge or rewrite work (add a job, edit its data, ...) are refused for everyone
 *   (FORBIDDEN_BOARD_WRITES): a hand-made job is the same primitive as a forged webhook.
 */
export function createAdminRoutes(opts: AdminRoutesOptions): Hono {
  const base = normaliseBasePath(opts.basePath);
  const { adminToken, viewerToken } = opts;
  if (adminToken && viewerToken && adminToken === viewerToken) {
    throw new Error("ADMIN_VIEWER_TOKEN must differ from ADMIN_TOKEN: otherwise viewers get full access");
  }
  const enabled = Boolean(adminToken || viewerToken);
  const app = new Hono();

  const headers = secureHeaders({ contentSecurityPolicy: ADMIN_CSP, crossOriginEmbedderPolicy: false });
  const guard: MiddlewareHandler = async (c, next) => {
    if (!enabled) {
      return c.json(
        {
          error: "admin_disabled",
          message:
            "The admin interface is disabled: set ADMIN_TOKEN (full access) and/or ADMIN_VIEWER_TOKEN (read-only) to enable it.",
        },
        503,
      );
    }
    const role = authenticate(c.req.header("authorization"), { adminToken, viewerToken });
    if (!role) {
      c.header("WWW-Authenticate", `Basic realm="${REALM}", charset="UTF-8"`);
      c.header("WWW-Authenticate", `Bearer realm="${REALM}"`, { append: true });
      return c.json(
        {
          error: "unauthorized",
          message: "Send Authorization: Bearer <token>, or Basic auth with the token as password.",
        },
        401,
      );
    }
    const unsafe = !SAFE_METHODS.has(c.req.method);
    if (unsafe && role !== "admin") {
      opts.logger?.warn({ method: c.req.method, path: c.req.path }, "admin: viewer attempted a write");
      return c.json({ error: "forbidden", message: "The viewer token is read-only." }, 403);
    }
    if (unsafe) {
      const refusal = unsafeRequestProblem(c, opts.publicOrigin);
      if (refusal) {
        opts.logger?.warn({ method: c.req.method, path: c.req.path, refusal }, "admin: write refused");
        return c.json({ error: "forbidden", message: refusal }, 403);
      }
    }
    if (unsafe) {
      opts.logger?.info({ method: c.req.method, path: c.req.path, role }, "admin action");
    }
    await next();
    // Admin pages and data are per-user and sensitive; static assets are hashed and safe to keep privately.
    if (!c.res.headers.has("Cache-Control")) {
      c.res.headers.set("Cache-Control", isStatic(c, base) ? "private, max-age=86400" : "no-store");
    }
    return;
  };
  // Hono's `/x/*` also matches `/x`, so one registration covers basePath itself and everything under it.
  app.use(`${base}/*`, headers, guard);

  const adminBoard = enabled && adminToken ? createBoard(opts.queues, `${base}/queues`, false) : undefined;
  const viewerBoard = enabled ? createBoard(opts.queues, `${base}/queues`, true) : undefined;

  const dispatch = (c: Context) => {
    const role = authenticate(c.req.header("authorization"), { adminToken, viewerToken });
    const board = role === "admin" ? adminBoard : viewerBoard;
    if (!board) return c.notFound();
    return board.fetch(c.req.raw);
  };
  app.all(`${base}/queues`, dispatch);
  app.all(`${base}/queues/*`, dispatch);

  app.get(`${base}/audit`, async (c) => {
    const parsed = auditQuerySchema.safeParse(c.req.query());
    if (!parsed.success) {
      return c.json(
        {
          error: "bad_request",
          issues: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`),
        },
        400,
      );
    }
    try {
      return c.json(await opts.audit.query(parsed.data));
    } catch (e) {
      if (e instanceof AuditValidationError) return c.json({ error: "bad_request", issues: e.issues }, 400);
      throw e;
    }
  });

  app.get(base, (c) =>
    c.json({ queues: `${base}/queues`, audit: `${base}/audit?project=&outcome=&since=&limit=&cursor=` }),
  );
  app.all(`${base}/*`, (c) => c.json({ error: "not_found" }, 404));
  return app;
}

/** One Bull Board instance, already routed under its full path so the request can be handed over as is. */
function createBoard(queues: Queue[], path: string, readOnly: boolean): Hono {
  const adapter = new HonoAdapter(serveStatic);
  adapter.setBasePath(path);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: readOnly, allowRetries: !readOnly })),
    serverAdapter: adapter,
    options: {
      uiConfig: {
        boardTitle: readOnly ? "gitlab-entra-bot (read-only)" : "gitlab-entra-bot",
        hideDocsLink: true,
      },
    },
  });
  // The adapter's Hono comes from hono's CommonJS build; it is only ever called through fetch().
  return new Hono().route(path, adapter.registerPlugin() as unknown as Hono);
}

function normaliseBasePath(p: string): string {
  const trimmed = p.replace(/\/+$/, "");
  if (!/^\/[A-Za-z0-9._~\-/]*$/.test(trimmed) || trimmed === "") {
    throw new Error(`admin basePath must be an absolute path such as "/admin", got "${p}"`);
  }
  return trimmed;
}

function isStatic(c: Context, base: string): boolean {
  return c.req.method === "GET" && c.req.path.startsWith(`${base}/queues/static/`) && c.res.status === 200;
}

/**
 * Proof that an unsafe request comes from the admin pages themselves: `Sec-Fetch-Site: same-origin`, or an
 * `Origin` equal to the service's own. Either present and saying otherwise refuses; both missing refuses too
 * (scripts send `Origin: <PUBLIC_URL>`). A body must be JSON: an HTML form can only send form or text types.
 */
function unsafeRequestProblem(c: Context, publicOrigin: string | undefined): string | undefined {
  const site = c.req.header("sec-fetch-site");
  const origin = c.req.header("origin");
  if (site !== undefined && site !== "same-origin") {
    return `Cross-site requests may not change anything (Sec-Fetch-Site: ${site.slice(0, 32)}).`;
  }
  if (origin !== undefined && !sameOrigin(origin, c.req.url, publicOrigin)) {
    return "Requests from another origin may not change anything (Origin does not match this service).";
  }
  if (site === undefined && origin === undefined) {
    return "Changes need proof of same origin: send Origin (this service's URL, PUBLIC_URL) or come from the admin pages.";
  }
  // A declared type must be JSON (every HTML form declares one); without one, there must be no body.
  const declared = c.req.header("content-type");
  const type = declared?.split(";")[0]?.trim().toLowerCase();
  const length = c.req.header("content-length");
  const hasBody = (length !== undefined && length !== "0") || c.req.header("transfer-encoding") !== undefined;
  if (declared !== undefined ? type !== "application/json" : hasBody) {
    return "Changes with a body need Content-Type: application/json.";
  }
  if (FORBIDDEN_BOARD_WRITES.some((re) => re.test(c.req.path))) {
    return "Adding jobs and editing job data, delay, priority, schedulers or queue limits are switched off: jobs come only from verified webhooks and the bot's own schedule.";
  }
  return undefined;
}

function sameOrigin(origin: string, requestUrl: string, publicOrigin: string | undefined): boolean {
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  if (publicOrigin) return o.origin === publicOrigin;
  return o.host.toLowerCase() === new URL(requestUrl).host.toLowerCase();
}

/**
 * Bull Board API routes (relative to the board) that create or rewrite work. Retry, promote, clean, pause and
 * resume stay; so do empty and obliterate, which only remove.
 */
const FORBIDDEN_BOARD_WRITES = [
  /\/queues\/api\/queues\/[^/]+\/add$/,
  /\/queues\/api\/queues\/[^/]+\/[^/]+\/update-data$/,
  /\/queues\/api\/queues\/[^/]+\/[^/]+\/(?:delay|priority)$/,
  /\/queues\/api\/queues\/[^/]+\/job-schedulers\//,
  /\/queues\/api\/queues\/[^/]+\/(?:concurrency|rate-limit)$/,
  /\/queues\/api\/metrics\/history\/purge$/,
];

export type { AdminRole };
