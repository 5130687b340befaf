import { GraphFailure } from "./envelope.ts";

/** The subset of OData `$filter` the bot uses: `p eq 'x'`, `tags/any(t:t eq 'x')`, `startswith(p,'x')`, `and`. */
type Predicate = (entity: Record<string, unknown>) => boolean;

const STRING = "'((?:[^']|'')*)'";
type Build = (m: RegExpExecArray, caseless: readonly string[]) => { property: string; test: Predicate };
const CLAUSES: Array<{ re: RegExp; build: Build }> = [
  {
    re: new RegExp(`^(\\w+)/any\\((\\w+):\\s*\\2 eq ${STRING}\\)`),
    build: (m) => {
      const property = m[1] as string;
      const value = unquote(m[3] as string);
      return {
        property,
        test: (e) => Array.isArray(e[property]) && (e[property] as unknown[]).includes(value),
      };
    },
  },
  {
    re: new RegExp(`^startswith\\((\\w+),\\s*${STRING}\\)`),
    build: (m) => {
      const property = m[1] as string;
      const value = unquote(m[2] as string);
      return {
        property,
        test: (e) => typeof e[property] === "string" && (e[property] as string).startsWith(value),
      };
    },
  },
  {
    re: new RegExp(`^(\\w+) eq ${STRING}`),
    build: (m, caseless) => {
      const property = m[1] as string;
      const value = unquote(m[2] as string);
      if (!caseless.includes(property)) return { property, test: (e) => e[property] === value };
      // Directory string properties compare case-insensitively (a group named "SG-Team" answers
      // displayName eq 'sg-team'); callers that need exact names must compare themselves.
      const folded = value.toLowerCase();
      return {
        property,
        test: (e) => typeof e[property] === "string" && (e[property] as string).toLowerCase() === folded,
      };
    },
  },
];

function unquote(s: string): string {
  return s.replace(/''/g, "'");
}

/** Parses `$filter`; rejects properties the resource does not support filtering on, as Graph does. */
export function parseFilter(
  filter: string,
  filterable: readonly string[],
  resource: string,
  caseless: readonly string[] = [],
): Predicate {
  const predicates: Predicate[] = [];
  let rest = filter.trim();
  for (;;) {
    let matched = false;
    for (const clause of CLAUSES) {
      const m = clause.re.exec(rest);
      if (!m) continue;
      const { property, test } = clause.build(m, caseless);
      if (!filterable.includes(property)) {
        throw new GraphFailure(
          400,
          "Request_UnsupportedQuery",
          `Unsupported or invalid query filter clause specified for property '${property}' of resource '${resource}'.`,
        );
      }
      predicates.push(test);
      rest = rest.slice(m[0].length).trim();
      matched = true;
      break;
    }
    if (!matched) throw new GraphFailure(400, "BadRequest", `Invalid filter clause: ${filter}`);
    if (rest === "") break;
    if (!rest.startsWith("and "))
      throw new GraphFailure(400, "BadRequest", `Invalid filter clause: ${filter}`);
    rest = rest.slice(4).trim();
  }
  return (e) => predicates.every((p) => p(e));
}

/** Applies `$filter`, `$select` and `$top`/`$skiptoken` paging to a collection, Graph style. */
export function applyQuery(
  items: Array<Record<string, unknown>>,
  query: URLSearchParams,
  opts: {
    filterable: readonly string[];
    resource: string;
    typeName: string;
    nextLinkBase: string;
    /** Replication lag: entities this (stale) replica does not return although they match. */
    stale?: (entity: Record<string, unknown>) => boolean;
    /** Properties whose `eq` ignores case, as Graph's does for directory objects' names. */
    caseless?: readonly string[];
  },
): { value: Array<Record<string, unknown>>; nextLink?: string } {
  let result = items;
  const filter = query.get("$filter");
  if (filter) result = result.filter(parseFilter(filter, opts.filterable, opts.resource, opts.caseless));
  const stale = opts.stale;
  if (stale) result = result.filter((e) => !stale(e));
  const offset = Number(
    query.get("$skiptoken") ? Buffer.from(query.get("$skiptoken") ?? "", "base64url").toString() : 0,
  );
  const top = query.get("$top");
  const pageSize = top ? Number(top) : 100;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 999) {
    throw new GraphFailure(
      400,
      "Request_BadRequest",
      `Invalid page size specified: '${top}'. Must be between 1 and 999 inclusive.`,
    );
  }
  const page = result.slice(offset, offset + pageSize);
  let nextLink: string | undefined;
  if (offset + pageSize < result.length) {
    const next = new URLSearchParams(query);
    next.set("$skiptoken", Buffer.from(String(offset + pageSize)).toString("base64url"));
    nextLink = `${opts.nextLinkBase}?${next.toString()}`;
  }
  return { value: page.map((e) => select(e, query, opts.typeName)), ...(nextLink ? { nextLink } : {}) };
}

/** `$select=a,b`: only those properties (plus OData annotations); unknown names are a 400 as in Graph. */
export function select(
  entity: Record<string, unknown>,
  query: URLSearchParams,
  typeName: string,
): Record<string, unknown> {
  const raw = query.get("$select");
  if (!raw) return entity;
  const wanted = raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entity)) if (k.startsWith("@odata.")) out[k] = v;
  for (const name of wanted) {
    if (!(name in entity)) {
      throw new GraphFailure(
        400,
        "BadRequest",
        `Parsing OData Select and Expand failed: Could not find a property named '${name}' on type '${typeName}'.`,
      );
    }
    out[name] = entity[name];
  }
  return out;
}
