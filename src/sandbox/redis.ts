import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/** True when a Redis at `url` answers PING (one try, no reconnects). */
export async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  r.on("error", () => {});
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no free port"))));
    });
  });
}

export interface SandboxRedis {
  url: string;
  /** True when the sandbox started its own redis-server (stopped by `stop`). */
  owned: boolean;
  stop(): Promise<void>;
}

/**
 * The Redis the sandbox uses: REDIS_URL (default 127.0.0.1:6379) when something answers there, else a private
 * redis-server from PATH with its data in a temporary folder, else an error that says how to get one.
 */
export async function sandboxRedis(preferred: string): Promise<SandboxRedis> {
  if (await answers(preferred)) return { url: preferred, owned: false, stop: async () => {} };
  if (spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status !== 0) {
    throw new Error(
      `no Redis answers at ${preferred} and redis-server is not on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL.`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "geb-sandbox-redis-"));
  const server = await spawnRedisServer({ port: await freePort(), dir, appendonly: false });
  return {
    url: server.url,
    owned: true,
    stop: async () => {
      await server.stop("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisServerProcess {
  url: string;
  child: ChildProcess;
  /** Ends the process (SIGKILL is how Redis disappears in an outage) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * A private redis-server on 127.0.0.1 (sandbox and tests): noeviction, no RDB snapshots, AOF as asked, data in
 * `dir`. Resolves once `ready` (default: PING answers) holds, e.g. a cluster-mode node that has its slots.
 */
export async function spawnRedisServer(opts: {
  port: number;
  dir: string;
  appendonly: boolean;
  extraArgs?: string[];
  ready?: (url: string) => Promise<boolean>;
}): Promise<RedisServerProcess> {
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(opts.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      opts.dir,
      "--save",
      "",
      "--appendonly",
      opts.appendonly ? "yes" : "no",
      "--maxmemory-policy",
      "noeviction",
      ...(opts.extraArgs ?? []),
    ],
    { stdio: "ignore" },
  );
  const url = `redis://127.0.0.1:${opts.port}`;
  const stop = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill(signal);
    });
  };
  const ready = opts.ready ?? answers;
  for (let i = 0; i < 200; i++) {
    if (await ready(url)) return { url, child, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`redis-server on port ${opts.port} did not become ready`);
}

/** Deletes every key under `prefix:` (the sandbox's own namespace; never used on a production Redis). */
export async function clearPrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await r.del(...keys);
  } while (cursor !== "0");
  await r.quit();
}
