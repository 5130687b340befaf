import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { Redis } from "ioredis";
import { healthRoutes } from "./health.ts";
import { metricsRoute } from "./metrics.ts";

export interface WorkerHttp {
  url: string;
  close(): Promise<void>;
}

/**
 * A worker process's own small HTTP surface (WORKER_HTTP_PORT): /healthz (the event loop answers), /readyz
 * (Redis answers a PING) and /metrics (what this worker did: Graph and GitLab requests, job durations, 429s,
 * drift). Nothing else: a worker takes no webhooks and has no admin UI.
 */
export function workerHttpApp(redis: Redis): Hono {
  const app = new Hono();
  app.route("/", healthRoutes(redis));
  app.route("/", metricsRoute());
  app.notFound((c) => c.json({ error: "not_found" }, 404));
  return app;
}

export function serveWorkerHttp(opts: { redis: Redis; port: number; host: string }): Promise<WorkerHttp> {
  const app = workerHttpApp(opts.redis);
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: opts.port, hostname: opts.host }, (info: AddressInfo) => {
      const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${info.port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
    server.once("error", reject);
  });
}
