import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import type { IntentHandler } from "../workers/events-processor.ts";
import type { RunningWorkers, StartWorkersOptions } from "../workers/start.ts";
import type { Config } from "./config/env.ts";
import type { Policy } from "./config/policy.ts";
import { HANDLED_EVENTS } from "./gitlab/normalise.ts";
import { createApp } from "./http/app.ts";
import type { Logger } from "./logging.ts";
import { policyWarnings } from "./policy/rules.ts";
import { createProducerConnection } from "./queue/connection.ts";
import { createQueues, type Queues } from "./queue/queues.ts";
import { traceFetch } from "./telemetry/hooks.ts";

const KNOWN_EVENTS: ReadonlySet<string> = new Set(HANDLED_EVENTS);
/** Metric label for X-Gitlab-Event: a fixed set, so a caller cannot grow the series without bound. */
function eventLabel(event: string): string {
  return KNOWN_EVENTS.has(event) ? event : "other";
}

export interface Service {
  /** Base URL of the HTTP api, when this process runs it. */
  url?: string;
  /** Base URL of a worker-only process's health and metrics (WORKER_HTTP_PORT). */
  workerHttpUrl?: string;
  app?: Hono;
  queues: Queues;
  workers?: RunningWorkers;
  close(): Promise<void>;
}

export interface ServiceOptions {
  config: Config;
  policy: Policy;
  logger: Logger;
  handler?: IntentHandler;
  /** Clients built by the caller (tests against simulators); production builds them from config. */
  clients?: Pick<StartWorkersOptions, "graph" | "gitlab">;
}

/** Starts the api, the workers, or both, per config.role. */
export async function startService({
  config,
  policy,
  logger,
  handler,
  clients,
}: ServiceOptions): Promise<Service> {
  for (const warning of policyWarnings(policy)) logger.warn({ policy: config.policyFile }, warning);
  const redis = createProducerConnection(config.redisUrl, {}, config.redisSentinel);
  redis.on("error", (err) => logger.debug({ err: err.message }, "redis connection error"));
  const queues = createQueues(
    redis,
    config.queuePrefix,
    (queue, err) => logger.debug({ queue, err: err.message }, "queue connection error"),
    config.jobs?.backoffMs,
  );
  let server: ReturnType<typeof serve> | undefined;
  let url: string | undefined;
  let app: Hono | undefined;

  if (config.role !== "worker") {
    const { metrics, metricsRoute, registerQueueGauges } = await import("./http/metrics.ts");
    const { AuditLog } = await import("./onboarding/audit.ts");
    const { createRefusalRecorder } = await import("./http/refusals.ts");
    registerQueueGauges(queues.all());
    const audit = new AuditLog(redis, { key: `${config.queuePrefix}:audit`, logger });
    const extra: Hono[] = [metricsRoute()];
    if (config.admin.token || config.admin.viewerToken) {
      // Bull Board is loaded on the first admin request, not at start: an api that nobody opens the UI on
      // stays smaller (measured in bench:intake). The admin routes are absolute, so the request passes as is.
      let admin: Promise<Hono> | undefined;
      const loadAdmin = async (): Promise<Hono> => {
        const { createAdminRoutes } = await import("./http/admin.ts");
        return createAdminRoutes({
          queues: queues.all(),
          basePath: "/admin",
          audit,
          logger,
          ...(config.publicOrigin ? { publicOrigin: config.publicOrigin } : {}),
          ...(config.admin.token ? { adminToken: config.admin.token } : {}),
          ...(config.admin.viewerToken ? { viewerToken: config.admin.viewerToken } : {}),
        });
      };
      const { Hono } = await import("hono");
      const lazy = new Hono();
      const forward = async (c: { req: { raw: Request }; env: unknown }) => {
        admin ??= loadAdmin().catch((err: unknown) => {
          admin = undefined;
          throw err;
        });
        return (await admin).fetch(c.req.raw, c.env);
      };
      lazy.all("/admin", forward);
      lazy.all("/admin/*", forward);
      extra.push(lazy);
    } else {
      // Say why instead of a bare 404, without loading Bull Board for an admin UI nobody can open.
      const { Hono } = await import("hono");
      const disabled = new Hono();
      disabled.all("/admin/*", (c) =>
        c.json(
          {
            error: "admin_disabled",
            reason: "the admin UI is off: set ADMIN_TOKEN (and optionally ADMIN_VIEWER_TOKEN)",
          },
          503,
        ),
      );
      extra.push(disabled);
    }
    app = createApp({
      config,
      policy,
      queue: queues.events,
      redis,
      logger,
      extra,
      recordRefusal: createRefusalRecorder({ logger, audit, redis, keyPrefix: config.queuePrefix }),
      observe: (event, outcome, seconds) => {
        metrics.webhooksTotal.inc({ event: eventLabel(event), outcome });
        metrics.intakeDurationSeconds.observe(seconds);
      },
    });
    const created = app;
    const headersTimeout = config.http?.headersTimeoutMs ?? 10_000;
    const requestTimeout = config.http?.requestTimeoutMs ?? 15_000;
    await new Promise<void>((resolve) => {
      server = serve(
        {
          // A server span per webhook delivery when tracing is on; the handler itself otherwise.
          fetch: traceFetch(created.fetch),
          port: config.port,
          hostname: config.host,
          // GitLab gives up after 10 s; a slow-loris client must not hold a socket much longer than that.
          // Node checks these timeouts only every connectionsCheckingInterval (30 s by default), which let a
          // slow client hold a socket for up to 40 s: check every second (or sooner, for short test timeouts).
          serverOptions: {
            headersTimeout,
            requestTimeout,
            connectionsCheckingInterval: Math.min(1_000, Math.floor(headersTimeout / 2)),
          },
        },
        (info: AddressInfo) => {
          const host = info.family === "IPv6" ? `[${info.address}]` : info.address;
          url = `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${info.port}`;
          resolve();
        },
      );
    });
    logger.info({ url }, "api listening");
  }

  // Loaded only where needed: the api process stays small (Graph, MSAL and gitbeaker are worker-only).
  const workers =
    config.role !== "api"
      ? (await import("../workers/start.ts")).startWorkers({
          config,
          policy,
          logger,
          ...(handler ? { handler } : {}),
          ...clients,
        })
      : undefined;
  if (workers) logger.info({ concurrency: config.workerConcurrency }, "workers started");
  // Probes and /metrics for a worker-only process (the api already serves them on PORT).
  const workerHttp =
    config.role === "worker" && config.workerHttpPort !== undefined
      ? await (await import("./http/worker-http.ts")).serveWorkerHttp({
          redis,
          port: config.workerHttpPort,
          host: config.host,
        })
      : undefined;
  if (workerHttp) logger.info({ url: workerHttp.url }, "worker health and metrics listening");

  return {
    ...(url ? { url } : {}),
    ...(app ? { app } : {}),
    queues,
    ...(workers ? { workers } : {}),
    ...(workerHttp ? { workerHttpUrl: workerHttp.url } : {}),
    close: async () => {
      await workerHttp?.close();
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
      await workers?.close();
      await queues.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
