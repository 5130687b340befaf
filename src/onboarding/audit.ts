import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { z } from "zod";
import { actorSchema, projectRefSchema } from "../gitlab/intents.ts";
import { changeSchema } from "./schemas.ts";

/**
 * The audit trail: one record per change the bot made, planned or failed to make in Entra or GitLab.
 * Stored in one Redis stream that is never trimmed (no MAXLEN): compliance needs every record, and a
 * record is a few hundred bytes, so years of changes fit comfortably.
 */

const auditTriggerSchema = z.strictObject({
  /** The GitLab event kind, e.g. "System Hook/project_create", or "drift" for scheduled repair. */
  event: z.string().min(1).max(200),
  eventId: z.string().min(1).max(200),
  actor: actorSchema.optional(),
});

const recordBody = {
  time: z.iso.datetime({ offset: true }),
  trigger: auditTriggerSchema,
  /** Absent only for a refused delivery that named no project (e.g. a group hook sending a group_rename). */
  project: projectRefSchema.optional(),
  /** Absent for project-wide changes (e.g. the onboarding issue). */
  environment: z.string().min(1).max(255).optional(),
  change: changeSchema,
  /** "intended": written before the Entra writes it announces, so a crash cannot lose the record of them. */
  outcome: z.enum(["ok", "failed", "planned", "refused", "intended"]),
  message: z.string().max(4000).optional(),
  requestId: z.string().max(200).optional(),
  /** Paths of values replaced because they looked like credentials (the record is kept, the secret is not). */
  redacted: z.array(z.string().max(200)).max(50).optional(),
};

export const auditRecordInputSchema = z.strictObject({
  ...recordBody,
  /** Defaults to the time of append. */
  time: recordBody.time.optional(),
});
export type AuditRecordInput = z.infer<typeof auditRecordInputSchema>;

export const auditRecordSchema = z.strictObject({
  /** Redis stream id: orders records and serves as cursor. */
  id: z.string().regex(/^\d+-\d+$/),
  ...recordBody,
});
export type AuditRecord = z.infer<typeof auditRecordSchema>;

export interface AuditQuery {
  project?: number;
  /** e.g. "refused": refused deliveries and commands. */
  outcome?: AuditRecord["outcome"];
  /** ISO date-time or stream id; inclusive. Compared with the time the record was appended. */
  since?: string;
  /** 1..500, default 50. */
  limit?: number;
  /** nextCursor of the previous page (exclusive). */
  cursor?: string;
}

export interface AuditPage {
  records: AuditRecord[];
  /** Present when more records may follow; pass it back as `cursor`. */
  nextCursor?: string;
}

export class AuditValidationError extends Error {
  readonly code = "AUDIT_RECORD_INVALID";
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`audit record rejected: ${issues.join("; ")}`);
    this.name = "AuditValidationError";
    this.issues = issues;
  }
}

const STREAM_ID = /^\d+-\d+$/;
const FORBIDDEN_KEY = /token|secret|password/i;
/** Credential formats that must never reach the trail even inside free text. */
const SECRET_VALUE_PATTERNS: [RegExp, string][] = [
  [/\bgl(?:pat|dt|rt|ptt|ft|imt|agent|oas|cbt|soat|ffct|wt)-[A-Za-z0-9_-]{10,}/, "a GitLab token"],
  [/\bwhsec_[A-Za-z0-9+/=]{8,}/, "a webhook signing token"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/, "a JWT"],
  [/\bBearer\s+[A-Za-z0-9._~+/-]{16,}/i, "a bearer credential"],
];

/** Longest string each field may hold; longer values are cut rather than the record refused. */
const MAX_LENGTH: Record<string, number> = {
  message: 4000,
  "change.detail": 4000,
  "change.target": 1000,
  environment: 255,
  "trigger.event": 200,
  "trigger.eventId": 200,
};

/**
 * A copy of the raw input with every credential-shaped value replaced in place ("[REDACTED: a JWT]") and every
 * secret-named field emptied, plus the paths it touched. An audit record is never refused for what a user
 * chose as a name (a username "glpat-…", an environment "review/eyJ….eyJ….x"): losing the record of an Entra
 * write is worse than an imprecise name in it.
 */
function redactSecrets(value: unknown, path: string, touched: string[]): unknown {
  if (typeof value === "string") {
    let out = value;
    for (const [re, what] of SECRET_VALUE_PATTERNS) {
      const global = new RegExp(re.source, `${re.flags.replace("g", "")}g`);
      if (global.test(out)) {
        out = out.replace(global, `[REDACTED: ${what}]`);
        touched.push(path || "value");
      }
    }
    const max = MAX_LENGTH[path];
    return max !== undefined && out.length > max ? `${out.slice(0, max - 1)}…` : out;
  }
  if (Array.isArray(value)) return value.map((v, i) => redactSecrets(v, `${path}[${i}]`, touched));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      if (FORBIDDEN_KEY.test(k)) {
        touched.push(p);
        continue;
      }
      out[k] = redactSecrets(v, p, touched);
    }
    return out;
  }
  return value;
}

/** Converts `since` (ISO or stream id) to an inclusive XRANGE start. */
function sinceToStart(since: string): string {
  if (STREAM_ID.test(since)) return since;
  const ms = Date.parse(since);
  if (Number.isNaN(ms))
    throw new AuditValidationError([`since "${since}" is neither an ISO date-time nor a stream id`]);
  return `${Math.max(ms, 0)}-0`;
}

const SCAN_BATCH = 200;
/** Upper bound of entries one filtered query examines, so a rare project cannot make a request scan everything. */
const MAX_SCAN_PER_QUERY = 10_000;

export class AuditLog {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #logger: Logger | undefined;
  readonly #maxScan: number;

  /** `maxScanPerQuery` bounds the entries one filtered `query` reads (default 10,000). */
  constructor(redis: Redis, opts: { key: string; logger?: Logger; maxScanPerQuery?: number }) {
    this.#redis = redis;
    this.#key = opts.key;
    this.#logger = opts.logger;
    this.#maxScan = Math.max(opts.maxScanPerQuery ?? MAX_SCAN_PER_QUERY, SCAN_BATCH);
  }

  /**
   * Redacts, validates, stores and logs one record; returns its stream id. Credential-shaped values are
   * redacted (listed in `redacted`), never a reason to lose the record. Throws AuditValidationError only for
   * a record of the wrong shape, which is a bug in the caller.
   */
  async append(rec: AuditRecordInput): Promise<string> {
    const touched: string[] = [];
    const clean = redactSecrets(rec, "", touched) as AuditRecordInput;
    if (touched.length) clean.redacted = [...new Set([...(clean.redacted ?? []), ...touched])].slice(0, 50);
    const parsed = auditRecordInputSchema.safeParse(clean);
    if (!parsed.success) {
      throw new AuditValidationError(
        parsed.error.issues.map((i) => `${i.path.join(".") || "record"}: ${i.message}`),
      );
    }
    const body = { ...parsed.data, time: parsed.data.time ?? new Date().toISOString() };
    // One JSON field keeps the stored shape identical to the API shape; `project` is duplicated as a plain
    // field so that redis-cli users can eyeball the stream.
    const id = await this.#redis.xadd(
      this.#key,
      "*",
      "project",
      body.project ? String(body.project.id) : "-",
      "record",
      JSON.stringify(body),
    );
    if (!id) throw new Error(`XADD to ${this.#key} returned no id`);
    this.#logger?.info({ audit: true, auditId: id, ...body }, "audit");
    return id;
  }

  async query(q: AuditQuery = {}): Promise<AuditPage> {
    const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
    if (q.cursor !== undefined && !STREAM_ID.test(q.cursor)) {
      throw new AuditValidationError([`cursor "${q.cursor}" is not a valid cursor`]);
    }
    let start = q.cursor ? `(${q.cursor}` : q.since ? sinceToStart(q.since) : "-";
    if (q.cursor && q.since) {
      // A cursor older than `since` must not leak records before `since`.
      const sinceStart = sinceToStart(q.since);
      if (compareIds(sinceStart, q.cursor) > 0) start = sinceStart;
    }
    const records: AuditRecord[] = [];
    let scanned = 0;
    let lastScanned: string | undefined;
    for (;;) {
      const batch = await this.#redis.xrange(this.#key, start, "+", "COUNT", SCAN_BATCH);
      for (const [id, fields] of batch) {
        lastScanned = id;
        scanned++;
        const rec = this.#decode(id, fields);
        if (!rec || !matches(rec, q)) continue;
        if (records.length === limit) {
          // A further match exists: the page is full and the next one starts after the last returned record.
          return { records, nextCursor: records[records.length - 1]?.id };
        }
        records.push(rec);
      }
      if (batch.length < SCAN_BATCH) return { records };
      if (scanned >= this.#maxScan && lastScanned) {
        // Hand back what we have; the client continues from where the scan stopped.
        // Every scanned entry after the last returned record failed the filter, so resuming there skips nothing.
        return { records, nextCursor: lastScanned };
      }
      start = `(${lastScanned}`;
    }
  }

  /** Every record in stream (append) order, optionally filtered; streams in batches so memory stays flat. */
  async *exportAll(
    filter: { project?: number; outcome?: AuditRecord["outcome"]; since?: string } = {},
  ): AsyncGenerator<AuditRecord> {
    let start = filter.since ? sinceToStart(filter.since) : "-";
    for (;;) {
      const batch = await this.#redis.xrange(this.#key, start, "+", "COUNT", 500);
      for (const [id, fields] of batch) {
        const rec = this.#decode(id, fields);
        if (rec && matches(rec, filter)) yield rec;
      }
      const last = batch[batch.length - 1];
      if (!last || batch.length < 500) return;
      start = `(${last[0]}`;
    }
  }

  #decode(id: string, fields: string[]): AuditRecord | undefined {
    const idx = fields.indexOf("record");
    const raw = idx >= 0 && idx % 2 === 0 ? fields[idx + 1] : undefined;
    let json: unknown;
    try {
      json = raw === undefined ? undefined : JSON.parse(raw);
    } catch {
      json = undefined;
    }
    const parsed = auditRecordSchema.safeParse({ ...(json as object), id });
    if (!parsed.success) {
      // Never silently lose an audit entry: it stays in Redis and the operator is told which one is unreadable.
      this.#logger?.error(
        { auditId: id, key: this.#key, issues: parsed.error.issues.map((i) => i.message) },
        "unreadable audit record skipped",
      );
      return undefined;
    }
    return parsed.data;
  }
}

function matches(rec: AuditRecord, f: { project?: number; outcome?: AuditRecord["outcome"] }): boolean {
  return (
    (f.project === undefined || rec.project?.id === f.project) &&
    (f.outcome === undefined || rec.outcome === f.outcome)
  );
}

function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split("-").map(BigInt);
  const [bm = 0n, bs = 0n] = b.split("-").map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}
