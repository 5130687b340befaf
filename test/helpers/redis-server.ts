import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type RedisServerProcess, spawnRedisServer } from "../../src/sandbox/redis.ts";

export { freePort };

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  /** Starts (or restarts, keeping the AOF) the server and waits until it answers PING. */
  start(): Promise<void>;
  /** SIGKILL: the way Redis disappears in an outage. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** A private redis-server (AOF on) for tests that take Redis away; the shared one on 6379 stays untouched. */
export async function testRedisServer(): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "geb-redis-"));
  let server: RedisServerProcess | undefined;
  const api: TestRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async start() {
      // fsync every write: a kill right after a write must not lose it (no waiting for the 1 s fsync tick).
      server = await spawnRedisServer({
        port,
        dir,
        appendonly: true,
        extraArgs: ["--appendfsync", "always"],
      });
    },
    async kill() {
      await server?.stop("SIGKILL");
    },
    async stop() {
      await api.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return api;
}
