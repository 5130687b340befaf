import { Worker } from "bullmq";
import type { Config } from "../src/config/env.ts";
import type { Logger } from "../src/logging.ts";
import { createWorkerConnection } from "../src/queue/connection.ts";
import { QUEUES } from "../src/queue/names.ts";
import { createEventsProcessor, type IntentHandler } from "./events-processor.ts";

export interface RunningWorkers {
  workers: Worker[];
  /** Stops taking jobs, waits for running ones to finish, closes Redis. */
  close(): Promise<void>;
}

export function startWorkers(
  config: Pick<Config, "redisUrl" | "queuePrefix" | "workerConcurrency">,
  logger: Logger,
  handle: IntentHandler,
): RunningWorkers {
  const connection = createWorkerConnection(config.redisUrl);
  const events = new Worker(QUEUES.events, createEventsProcessor(logger, handle), {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
  });
  for (const w of [events]) {
    w.on("failed", (job, err) =>
      logger.warn(
        { queue: w.name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message },
        "job failed",
      ),
    );
    w.on("error", (err) => logger.error({ queue: w.name, err: err.message }, "worker error"));
  }
  return {
    workers: [events],
    close: async () => {
      await events.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
