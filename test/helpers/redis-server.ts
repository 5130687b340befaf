import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { answers, freePort } from "../../src/sandbox/redis.ts";

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
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const ping = () => answers(url);
  const api: TestRedis = {
    url,
    port,
    dir,
    async start() {
      child = spawn(
        "redis-server",
        [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--dir",
          dir,
          "--appendonly",
          "yes",
          "--save",
          "",
          "--maxmemory-policy",
          "noeviction",
        ],
        { stdio: "ignore" },
      );
      for (let i = 0; i < 100; i++) {
        if (await ping()) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`redis-server on ${port} did not start`);
    },
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill("SIGKILL");
      });
    },
    async stop() {
      await api.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return api;
}
