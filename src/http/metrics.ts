import { Hono } from "hono";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics. One registry per process: the api and the worker each expose what they did,
 * and Prometheus sums across instances. Label values must stay low-cardinality (no project ids/paths).
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Anything with BullMQ's `getJobCounts` (a `Queue`); structural so tests and callers need no cast. */
export interface CountableQueue {
  readonly name: string;
  getJobCounts(): Promise<Record<string, number>>;
  isPaused?(): Promise<boolean>;
}

const gaugeQueues = new Set<CountableQueue>();

export const metrics = {
  webhooksTotal: new Counter({
    name: "geb_webhooks_total",
    help: "GitLab webhooks received, by event and outcome (accepted, ignored, rejected, duplicate, ...).",
    labelNames: ["event", "outcome"] as const,
    registers: [registry],
  }),
  intakeDurationSeconds: new Histogram({
    name: "geb_intake_duration_seconds",
    help: "Time from request to response on the webhook intake (verify, parse, enqueue).",
    // The intake must answer in milliseconds; GitLab times out at 10 s.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
  jobs: new Gauge({
    name: "geb_jobs",
    help: "Jobs per queue and state, read from Redis at scrape time.",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const results = await Promise.allSettled(
        [...gaugeQueues].map(async (q) => ({ q, counts: await q.getJobCounts() })),
      );
      for (const r of results) {
        // A Redis hiccup must not fail the whole scrape (process metrics stay visible); the missing
        // series is itself the signal, alongside /readyz.
        if (r.status !== "fulfilled") continue;
        for (const [state, count] of Object.entries(r.value.counts)) {
          this.set({ queue: r.value.q.name, state }, count);
        }
      }
    },
  }),
  /** Not in the original list: makes the admin kill switch (queue pause) visible to alerting. */
  queuePaused: new Gauge({
    name: "geb_queue_paused",
    help: "1 when the queue is paused (kill switch in the queue UI), else 0; read at scrape time.",
    labelNames: ["queue"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const results = await Promise.allSettled(
        [...gaugeQueues].map(async (q) => ({ q, paused: q.isPaused ? await q.isPaused() : undefined })),
      );
      for (const r of results) {
        if (r.status === "fulfilled" && r.value.paused !== undefined) {
          this.set({ queue: r.value.q.name }, r.value.paused ? 1 : 0);
        }
      }
    },
  }),
  jobDurationSeconds: new Histogram({
    name: "geb_job_duration_seconds",
    help: "Job processing time, by queue, job name and outcome (completed, failed).",
    labelNames: ["queue", "name", "outcome"] as const,
    // Jobs make several Graph/GitLab calls and may wait on rate limits.
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  }),
  graphRequestsTotal: new Counter({
    name: "geb_graph_requests_total",
    help: "Microsoft Graph requests, by operation and HTTP status (or 'error' for network failures).",
    labelNames: ["operation", "status"] as const,
    registers: [registry],
  }),
  gitlabRequestsTotal: new Counter({
    name: "geb_gitlab_requests_total",
    help: "GitLab API requests, by operation and HTTP status (or 'error' for network failures).",
    labelNames: ["operation", "status"] as const,
    registers: [registry],
  }),
  throttledTotal: new Counter({
    name: "geb_throttled_total",
    help: "Responses that asked us to back off (429/503 with Retry-After), by service (graph, gitlab, entra).",
    labelNames: ["service"] as const,
    registers: [registry],
  }),
  driftFoundTotal: new Counter({
    name: "geb_drift_found_total",
    help: "Differences found between desired and actual state by drift checks, by object kind.",
    labelNames: ["kind"] as const,
    registers: [registry],
  }),
  deliveriesRefusedTotal: new Counter({
    name: "geb_deliveries_refused_total",
    help: "Deliveries and commands refused as out of bounds or contradicted by GitLab's API, by stage (intake, worker) and reason.",
    labelNames: ["stage", "reason"] as const,
    registers: [registry],
  }),
  ownershipCollisionsTotal: new Counter({
    name: "geb_ownership_collisions_total",
    help: "App registrations tagged like the bot's that the bot does not own (never adopted), by where they were found.",
    labelNames: ["where"] as const,
    registers: [registry],
  }),
  driftRepairedTotal: new Counter({
    name: "geb_drift_repaired_total",
    help: "Drift differences repaired, by object kind.",
    labelNames: ["kind"] as const,
    registers: [registry],
  }),
};

/**
 * Makes `geb_jobs` report these queues on every scrape. Returns a function that stops reporting them
 * (for shutdown and tests).
 */
export function registerQueueGauges(queues: readonly CountableQueue[]): () => void {
  for (const q of queues) gaugeQueues.add(q);
  return () => {
    for (const q of queues) gaugeQueues.delete(q);
  };
}

/** `GET /metrics` in Prometheus text format. Mount with `app.route("/", metricsRoute())`. */
export function metricsRoute(): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    const body = await registry.metrics();
    return c.body(body, 200, { "Content-Type": registry.contentType, "Cache-Control": "no-store" });
  });
  return app;
}
