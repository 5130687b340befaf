import { z } from "zod";
import { fixtureJson } from "../helpers/fixtures.ts";

/**
 * A documented request shape: what GitLab's or Microsoft's documents say a request looks like. The contract
 * test (test/contract/requests.test.ts) matches every request the bot sends to the simulators against these,
 * the way Renovate's platform specs pin each request; a request no shape covers fails the test.
 *
 * Adding one is a few lines in graph-requests.ts or gitlab-requests.ts:
 *   { id, method, path: "/v1.0/groups/{id}", query: { $select: "optional" }, body: z.strictObject({...}),
 *     source: "<doc page the shape comes from>", fixtures: ["graph/<documented example>.json"] }
 */
export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestShape {
  /** Unique and readable, e.g. "graph: upsert FIC". */
  id: string;
  method: Method;
  /**
   * Path after the API root (Graph: including /v1.0 or /beta; GitLab: after /api/v4). `{name}` stands for one
   * path segment or OData key value (no "/", "(", ")" or "'"); everything else is literal.
   */
  path: string;
  /** Query parameters the documents allow: "required" or "optional", or a pattern the value must match. */
  query?: Record<string, "required" | "optional" | RegExp>;
  /** Headers that must be present with this value (lower-case names), e.g. Prefer: create-if-missing. */
  headers?: Record<string, string>;
  /** The body's schema (strict objects: unknown fields fail); absent = the request has no body. */
  body?: z.ZodType;
  /** The document the shape comes from. */
  source: string;
  /** Documented example bodies in test/fixtures/reference that `body` must accept (keeps the shape honest). */
  fixtures?: string[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Raw query string without "?". */
  query: string;
  body?: unknown;
  headers?: Record<string, string>;
}

function pathPattern(template: string): RegExp {
  const parts = template
    .split(/(\{[^}]+\})/)
    .map((p) => (p.startsWith("{") ? "[^/()']+" : p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${parts.join("")}$`);
}

/** Why `req` does not fit `shape` (empty: it fits). Only called for shapes whose method and path match. */
export function misfits(shape: RequestShape, req: RecordedRequest): string[] {
  const problems: string[] = [];
  const params = new URLSearchParams(req.query);
  const allowed = shape.query ?? {};
  for (const key of new Set(params.keys())) {
    const rule = allowed[key];
    if (rule === undefined) problems.push(`query parameter "${key}" is not in the documented shape`);
    else if (rule instanceof RegExp && !params.getAll(key).every((v) => rule.test(v)))
      problems.push(`query ${key}=${params.get(key)} does not match ${rule}`);
  }
  for (const [key, rule] of Object.entries(allowed)) {
    if (rule === "required" && !params.has(key))
      problems.push(`required query parameter "${key}" is missing`);
  }
  for (const [name, value] of Object.entries(shape.headers ?? {})) {
    if (req.headers?.[name] !== value) problems.push(`header ${name}: ${value} is missing`);
  }
  if (shape.body === undefined) {
    if (req.body !== undefined) problems.push("the documented request has no body");
  } else {
    const parsed = shape.body.safeParse(req.body);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(`body ${issue.path.join(".") || "(root)"}: ${issue.message}`);
      }
    }
  }
  return problems;
}

export function pathMatches(shape: RequestShape, req: RecordedRequest): boolean {
  return shape.method === req.method && pathPattern(shape.path).test(req.path);
}

/** The shapes a request fits, or the reasons it fits none (with how to add one). */
export function judge(
  catalogue: readonly RequestShape[],
  req: RecordedRequest,
  file: string,
): { fits: RequestShape[]; problem?: string } {
  const candidates = catalogue.filter((s) => pathMatches(s, req));
  const line = `${req.method} ${req.path}${req.query ? `?${req.query}` : ""}`;
  if (candidates.length === 0) {
    return {
      fits: [],
      problem: `${line}: no documented request shape covers this request. Add one to test/contract/${file} with the document it comes from: { id, method: "${req.method}", path: "${req.path}", query, body: z.strictObject({...}), source: "<doc page>", fixtures: ["<documented example in test/fixtures/reference, if any>"] }`,
    };
  }
  const results = candidates.map((s) => ({ s, why: misfits(s, req) }));
  const fits = results.filter((r) => r.why.length === 0).map((r) => r.s);
  if (fits.length > 0) return { fits };
  return {
    fits,
    problem: `${line} does not fit its documented shape: ${results
      .map((r) => `[${r.s.id} (${r.s.source})] ${r.why.join("; ")}`)
      .join(" | ")}; body was ${JSON.stringify(req.body)?.slice(0, 300)}`,
  };
}

/** Loads a shape's documented examples, for the catalogue's self-check. */
export function documentedExamples(shape: RequestShape): Array<{ fixture: string; body: unknown }> {
  return (shape.fixtures ?? []).map((fixture) => ({ fixture, body: fixtureJson(fixture) }));
}

/** Reusable pieces of documented bodies. */
export const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
export const nonEmpty = z.string().min(1);
