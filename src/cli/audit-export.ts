/**
 * Prints the audit trail as JSON lines on stdout, oldest first, for archiving or feeding a SIEM:
 *   node src/cli/audit-export.ts [--project N] [--since ISO|stream-id]
 * Reads REDIS_URL (default redis://127.0.0.1:6379) and QUEUE_PREFIX (default geb); the stream is
 * `${QUEUE_PREFIX}:audit`. Diagnostics go to stderr so stdout stays machine-readable.
 */
import { once } from "node:events";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { AuditLog } from "../onboarding/audit.ts";

const USAGE = "usage: node src/cli/audit-export.ts [--project N] [--since ISO|stream-id]";

export interface ExportArgs {
  project?: number;
  since?: string;
}

export function parseExportArgs(argv: string[]): ExportArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      project: { type: "string" },
      since: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) throw new UsageError(USAGE);
  const out: ExportArgs = {};
  if (values.project !== undefined) {
    const n = Number(values.project);
    if (!Number.isInteger(n) || n <= 0)
      throw new UsageError(`--project must be a positive integer\n${USAGE}`);
    out.project = n;
  }
  if (values.since !== undefined) {
    if (!/^\d+-\d+$/.test(values.since) && Number.isNaN(Date.parse(values.since))) {
      throw new UsageError(`--since must be an ISO date-time or a stream id\n${USAGE}`);
    }
    out.since = values.since;
  }
  return out;
}

class UsageError extends Error {}

async function main(): Promise<number> {
  let args: ExportArgs;
  try {
    args = parseExportArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
  const prefix = process.env.QUEUE_PREFIX || "geb";
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const log = new AuditLog(redis, { key: `${prefix}:audit` });
    let count = 0;
    for await (const rec of log.exportAll(args)) {
      // Respect back-pressure so exporting a large trail into a slow pipe does not buffer it all in memory.
      if (!process.stdout.write(`${JSON.stringify(rec)}\n`)) await once(process.stdout, "drain");
      count++;
    }
    process.stderr.write(`exported ${count} audit record(s) from ${prefix}:audit\n`);
    return 0;
  } catch (e) {
    // The URL may carry a password: name the key, not the URL.
    process.stderr.write(`audit export failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}

if (import.meta.main) {
  process.exitCode = await main();
}
