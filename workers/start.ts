import { type Job, type Processor, type Queue, Worker } from "bullmq";
import type { Config } from "../src/config/env.ts";
import type { Policy } from "../src/config/policy.ts";
import type { GraphApi } from "../src/entra/graph.ts";
import type { GitLabApi } from "../src/gitlab/api.ts";
import { metrics } from "../src/http/metrics.ts";
import type { Logger } from "../src/logging.ts";
import { createWorkerConnection } from "../src/queue/connection.ts";
import { QUEUES } from "../src/queue/names.ts";
import { createQueues } from "../src/queue/queues.ts";
import { annotateJob, bullmqTelemetry } from "../src/telemetry/hooks.ts";
import { DRIFT_SCHEDULER_ID, repairDrift } from "./drift.ts";
import { createEventsProcessor, type IntentHandler } from "./events-processor.ts";
import { settleFailure } from "./failure.ts";
import { handleIntent } from "./intents.ts";
import { handleReport } from "./reports.ts";
import { createWorkerRuntime, type WorkerRuntime } from "./runtime.ts";

export interface RunningWorkers {
  workers: Worker[];
  runtime?: WorkerRuntime;
  /** Stops taking jobs, waits for running ones to finish, closes Redis. */
  close(): Promise<void>;
}

export interface StartWorkersOptions {
  config: Config;
  policy: Policy;
  logger: Logger;
  /** Replaces the intent handler (tests of the queue mechanics, without GitLab or Entra). */
  handler?: IntentHandler;
  /** Clients built by the caller instead of from config (tests against simulators with injected clients). */
  graph?: GraphApi;
  gitlab?: GitLabApi;
}

/** Wraps a processor so failures go through the one retry policy and durations reach the metrics. */
function guarded(queue: Queue, fn: Processor, throttleBaseMs?: number): Processor {
  return async (job: Job, token?: string) => {
    annotateJob(job.data);
    try {
      return await fn(job, token);
    } catch (err) {
      return settleFailure(err, queue, job, throttleBaseMs);
    }
  };
}

export function startWorkers(opts: StartWorkersOptions): RunningWorkers {
  const { config, policy, logger } = opts;
  const connection = createWorkerConnection(config.redisUrl, {}, config.redisSentinel);
  connection.on("error", (err) => logger.debug({ err: err.message }, "worker redis connection error"));
  const queues = createQueues(
    connection,
    config.queuePrefix,
    (queue, err) => logger.debug({ queue, err: err.message }, "queue connection error"),
    config.jobs?.backoffMs,
  );
  const runtime = opts.handler
    ? undefined
    : createWorkerRuntime({
        config,
        policy,
        logger,
        redis: connection,
        queues,
        ...(opts.graph ? { graph: opts.graph } : {}),
        ...(opts.gitlab ? { gitlab: opts.gitlab } : {}),
      });
  const intentHandler: IntentHandler =
    opts.handler ?? ((data, job, log) => handleIntent(runtime as WorkerRuntime, data, job, log));

  const common = {
    connection,
    prefix: config.queuePrefix,
    // A limiter must be configured for queue.rateLimit (Retry-After) to hold jobs back; this one never binds.
    limiter: { max: 100_000, duration: 1_000 },
    // Tracing (OTEL_*): a consumer span per job, child of the span that enqueued it. Off: {}.
    ...bullmqTelemetry(),
    // Stalled-job recovery: a job whose worker died is picked up again after its lock expires.
    ...(config.jobs
      ? { stalledInterval: config.jobs.stalledIntervalMs, lockDuration: config.jobs.lockDurationMs }
      : {}),
  };
  const workers: Worker[] = [
    new Worker(
      QUEUES.events,
      guarded(queues.events, createEventsProcessor(logger, intentHandler), config.jobs?.backoffMs),
      {
        ...common,
        concurrency: config.workerConcurrency,
      },
    ),
  ];
  if (runtime) {
    workers.push(
      new Worker(
        QUEUES.reports,
        guarded(
          queues.reports,
          (job) => handleReport(runtime, job, logger.child({ jobId: job.id, queue: QUEUES.reports })),
          config.jobs?.backoffMs,
        ),
        { ...common, concurrency: config.workerConcurrency },
      ),
      new Worker(
        QUEUES.maintenance,
        guarded(
          queues.maintenance,
          (job) => repairDrift(runtime, job, logger.child({ jobId: job.id, queue: QUEUES.maintenance })),
          config.jobs?.backoffMs,
        ),
        { ...common, concurrency: 1 },
      ),
    );
    if (config.driftIntervalSeconds > 0) {
      // One scheduler for all workers: BullMQ creates one job per interval however many processes upsert it.
      void queues.maintenance
        .upsertJobScheduler(
          DRIFT_SCHEDULER_ID,
          { every: config.driftIntervalSeconds * 1000 },
          { name: DRIFT_SCHEDULER_ID },
        )
        .catch((err: Error) => logger.error({ err: err.message }, "could not schedule drift repair"));
    } else {
      void queues.maintenance.removeJobScheduler(DRIFT_SCHEDULER_ID).catch(() => {});
    }
  }
  for (const w of workers) {
    const observe = (job: Job | undefined, outcome: string) => {
      if (job?.processedOn && job.finishedOn) {
        metrics.jobDurationSeconds.observe(
          { queue: w.name, name: job.name, outcome },
          (job.finishedOn - job.processedOn) / 1000,
        );
      }
    };
    w.on("completed", (job) => observe(job, "completed"));
    w.on("failed", (job, err) => {
      observe(job, "failed");
      logger.warn(
        { queue: w.name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message },
        "job failed",
      );
    });
    w.on("error", (err) => logger.error({ queue: w.name, err: err.message }, "worker error"));
  }
  return {
    workers,
    ...(runtime ? { runtime } : {}),
    close: async () => {
      await Promise.all(workers.map((w) => w.close()));
      await queues.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
