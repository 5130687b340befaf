import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, type AuditRecordInput, AuditValidationError } from "../../src/onboarding/audit.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const prefix = uniquePrefix("audit");
let redis: Redis;
let n = 0;

function rec(projectId: number, over: Partial<AuditRecordInput> = {}): AuditRecordInput {
  n++;
  return {
    trigger: {
      event: "System Hook/project_create",
      eventId: `evt-${n}`,
      actor: { id: 7, username: "alice" },
    },
    project: { id: projectId, path: `group/p${projectId}` },
    environment: "production",
    change: { op: "create", kind: "federatedIdentityCredential", target: `fic-${n}`, objectId: `obj-${n}` },
    outcome: "ok",
    requestId: `req-${n}`,
    ...over,
  };
}

function newLog(name: string, logger?: pino.Logger): AuditLog {
  return new AuditLog(redis, { key: `${prefix}:${name}`, ...(logger ? { logger } : {}) });
}

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await deletePrefix(prefix);
  await redis.quit();
});

describe("AuditLog", () => {
  it("appends a record, returns its stream id, reads it back validated and logs one audit line", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const log = newLog("basic", logger);
    const input = rec(1, { message: "created FIC", time: "2024-05-01T10:00:00.000Z" });
    const id = await log.append(input);
    expect(id).toMatch(/^\d+-\d+$/);
    const page = await log.query();
    expect(page.nextCursor).toBeUndefined();
    expect(page.records).toEqual([{ id, ...input }]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ audit: true, auditId: id, project: input.project, outcome: "ok" });
  });

  it("defaults time to the append time", async () => {
    const log = newLog("time");
    const before = Date.now();
    await log.append(rec(1));
    const [r] = (await log.query()).records;
    expect(r).toBeDefined();
    expect(Date.parse(r?.time ?? "")).toBeGreaterThanOrEqual(before - 1000);
  });

  it("paginates with a cursor, without gaps or repeats, and filters by project", async () => {
    const log = newLog("pages");
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push(await log.append(rec(i % 2 === 0 ? 10 : 11)));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await log.query({ limit: 3, ...(cursor ? { cursor } : {}) });
      pages++;
      seen.push(...page.records.map((r) => r.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);

    const p10 = await log.query({ project: 10, limit: 2 });
    expect(p10.records.map((r) => r.project?.id)).toEqual([10, 10]);
    const rest = await log.query({ project: 10, limit: 10, cursor: p10.nextCursor ?? "" });
    expect(rest.records.map((r) => r.id)).toEqual([ids[4], ids[6]]);
    expect(rest.nextCursor).toBeUndefined();
    expect((await log.query({ project: 999 })).records).toEqual([]);
  });

  it("filters by since, given as ISO time or as a stream id (inclusive)", async () => {
    const log = newLog("since");
    const first = await log.append(rec(1));
    // The next entry must fall in a later millisecond than the first (stream ids are <ms>-<seq>).
    const firstMs = Number(first.split("-")[0]);
    while (Date.now() <= firstMs) await new Promise((r) => setImmediate(r));
    const second = await log.append(rec(1));
    const third = await log.append(rec(1));
    const byId = await log.query({ since: second });
    expect(byId.records.map((r) => r.id)).toEqual([second, third]);
    const secondMs = Number(second.split("-")[0]);
    const byIso = await log.query({ since: new Date(secondMs).toISOString() });
    expect(byIso.records.map((r) => r.id)).toEqual([second, third]);
    const future = await log.query({ since: new Date(Date.now() + 60_000).toISOString() });
    expect(future.records).toEqual([]);
    expect(first).not.toBe(second);
    await expect(log.query({ since: "yesterday-ish" })).rejects.toBeInstanceOf(AuditValidationError);
  });

  it("bounds the scan of a filtered query and hands back a cursor that skips nothing", async () => {
    const log = new AuditLog(redis, { key: `${prefix}:scan`, maxScanPerQuery: 200 });
    for (let i = 0; i < 449; i++) await log.append(rec(1));
    const rare = await log.append(rec(2));
    const pages: { records: string[]; nextCursor?: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await log.query({ project: 2, limit: 10, ...(cursor ? { cursor } : {}) });
      pages.push({
        records: page.records.map((r) => r.id),
        ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
      });
      cursor = page.nextCursor;
    } while (cursor);
    // 450 entries, 200 per request: two empty pages that still carry a cursor, then the match.
    expect(pages.map((p) => p.records)).toEqual([[], [], [rare]]);
  });

  it("exports every record in append order, with filters", async () => {
    const log = newLog("export");
    const ids: string[] = [];
    // More than one export batch (500) to prove batches join in order.
    const pipeline = [];
    for (let i = 0; i < 520; i++) pipeline.push(rec(i % 3 === 0 ? 5 : 6));
    for (const r of pipeline) ids.push(await log.append(r));
    const all: string[] = [];
    for await (const r of log.exportAll()) all.push(r.id);
    expect(all).toEqual(ids);
    const only5: number[] = [];
    for await (const r of log.exportAll({ project: 5 })) only5.push(r.project?.id ?? 0);
    expect(only5).toHaveLength(174);
    expect(new Set(only5)).toEqual(new Set([5]));
    const fromId = ids[510] ?? "";
    const tail: string[] = [];
    for await (const r of log.exportAll({ since: fromId })) tail.push(r.id);
    expect(tail).toEqual(ids.slice(510));
  });

  it("never trims the stream", async () => {
    const log = newLog("notrim");
    for (let i = 0; i < 1200; i++) await log.append(rec(1));
    expect(await redis.xlen(`${prefix}:notrim`)).toBe(1200);
    const info = (await redis.call("XINFO", "STREAM", `${prefix}:notrim`)) as unknown[];
    const firstEntry = info[info.indexOf("first-entry") + 1] as [string, string[]];
    const [oldest] = await redis.xrange(`${prefix}:notrim`, "-", "+", "COUNT", 1);
    expect(firstEntry[0]).toBe(oldest?.[0]);
    let count = 0;
    for await (const _ of log.exportAll()) count++;
    expect(count).toBe(1200);
  });

  it("redacts secret-like fields and values instead of losing the record; still rejects a wrong shape", async () => {
    const log = newLog("secrets");
    const withToken = { ...rec(1), token: "x" } as unknown as AuditRecordInput;
    const nested = rec(1);
    (nested.change as Record<string, unknown>).clientSecret = "abc";
    const pw = {
      ...rec(1),
      trigger: { event: "e", eventId: "1", password: "p" },
    } as unknown as AuditRecordInput;
    const jwtEnv = "review/eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4In0.x";
    const tokenUser = "glpat-abcdefghij1234567890";
    for (const r of [
      withToken,
      nested,
      pw,
      rec(1, { message: `used ${tokenUser} to call the API` }),
      rec(1, {
        environment: jwtEnv,
        trigger: { event: "Note Hook", eventId: "e-1", actor: { id: 5, username: tokenUser } },
      }),
    ]) {
      await log.append(r);
    }
    const { records } = await log.query();
    expect(records).toHaveLength(5);
    const stored = JSON.stringify(records);
    for (const secret of ["abcdefghij1234567890", "eyJzdWIiOiJ4eHh4eHh4In0", '"x"', '"abc"', '"p"'])
      expect(stored).not.toContain(secret);
    expect(records.map((r) => r.redacted)).toEqual([
      ["token"],
      ["change.clientSecret"],
      ["trigger.password"],
      ["message"],
      ["trigger.actor.username", "environment"],
    ]);
    expect(records[4]?.environment).toBe("review/[REDACTED: a JWT]");
    expect(records[4]?.trigger.actor?.username).toBe("[REDACTED: a GitLab token]");

    await expect(log.append({ ...rec(1), extra: 1 } as unknown as AuditRecordInput)).rejects.toThrow(
      /audit record rejected/,
    );
    await expect(log.append(rec(1, { outcome: "maybe" as "ok" }))).rejects.toBeInstanceOf(
      AuditValidationError,
    );
    expect(await redis.xlen(`${prefix}:secrets`)).toBe(5);
  });

  it("skips (and reports) a corrupt stream entry instead of failing the whole query", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const log = newLog("corrupt", logger);
    const good1 = await log.append(rec(1));
    const bad = await redis.xadd(`${prefix}:corrupt`, "*", "record", "{not json");
    const good2 = await log.append(rec(1));
    const page = await log.query();
    expect(page.records.map((r) => r.id)).toEqual([good1, good2]);
    expect(lines.some((l) => l.auditId === bad && l.level === 50)).toBe(true);
  });
});
