import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseExportArgs } from "../../src/cli/audit-export.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const run = promisify(execFile);
const prefix = uniquePrefix("auditcli");
let redis: Redis;
const ids: string[] = [];

async function cli(args: string[]) {
  return run(process.execPath, ["src/cli/audit-export.ts", ...args], {
    env: { ...process.env, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix },
  });
}

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  const log = new AuditLog(redis, { key: `${prefix}:audit` });
  for (let i = 0; i < 6; i++) {
    ids.push(
      await log.append({
        trigger: { event: "Note Hook", eventId: `e${i}` },
        project: { id: i % 2 ? 2 : 1, path: i % 2 ? "g/two" : "g/one" },
        environment: "staging",
        change: { op: "add", kind: "groupMembership", target: "group-x" },
        outcome: i === 5 ? "failed" : "ok",
      }),
    );
  }
});
afterAll(async () => {
  await deletePrefix(prefix);
  await redis.quit();
});

describe("audit-export CLI", () => {
  it("prints every record as one JSON line, oldest first", async () => {
    const { stdout, stderr } = await cli([]);
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(ids);
    expect(lines[5]).toMatchObject({ outcome: "failed", project: { id: 2, path: "g/two" } });
    expect(stderr).toContain("exported 6 audit record(s)");
  });

  it("filters by --project and --since", async () => {
    const { stdout } = await cli(["--project", "2", "--since", ids[2] ?? ""]);
    const got = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).id);
    expect(got).toEqual([ids[3], ids[5]]);
  });

  it("rejects bad arguments with exit code 2", async () => {
    await expect(cli(["--project", "abc"])).rejects.toMatchObject({ code: 2 });
    expect(() => parseExportArgs(["--since", "not a date"])).toThrow(/--since/);
    expect(() => parseExportArgs(["--bogus"])).toThrow();
    expect(parseExportArgs(["--project", "12", "--since", "2024-01-01T00:00:00Z"])).toEqual({
      project: 12,
      since: "2024-01-01T00:00:00Z",
    });
  });
});
