import { Hono } from "hono";
import type { Redis } from "ioredis";

/** /healthz: the process is up. /readyz: Redis answers a PING within a second. */
export function healthRoutes(redis: Redis): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      if (redis.status !== "ready") throw new Error(`connection is ${redis.status}`);
      await Promise.race([
        redis.ping(),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error("PING timed out after 1 s")), 1_000).unref(),
        ),
      ]);
      return c.json({ status: "ready", redis: "ok", config: "loaded" });
    } catch (err) {
      return c.json({ status: "not_ready", redis: `unreachable: ${(err as Error).message}` }, 503);
    }
  });
  return app;
}
