import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { bullmqTelemetry } from "../telemetry/hooks.ts";
import { DEFAULT_JOB_OPTIONS } from "./jobs.ts";
import { QUEUES } from "./names.ts";

export interface Queues {
  events: Queue;
  reports: Queue;
  maintenance: Queue;
  all(): Queue[];
  close(): Promise<void>;
}

/**
 * The service's queues on one producer connection. `prefix` namespaces every key (for Redis Cluster use a
 * hash tag such as "{geb}" so that a queue's keys share a slot).
 */
export function createQueues(
  connection: Redis,
  prefix: string,
  onError?: (queue: string, err: Error) => void,
  /** First retry delay (JOB_BACKOFF_MS); default DEFAULT_JOB_OPTIONS' 2 s. */
  backoffMs?: number,
): Queues {
  const defaultJobOptions =
    backoffMs === undefined
      ? DEFAULT_JOB_OPTIONS
      : { ...DEFAULT_JOB_OPTIONS, backoff: { ...DEFAULT_JOB_OPTIONS.backoff, delay: backoffMs } };
  const make = (name: string) => {
    const queue = new Queue(name, {
      connection,
      prefix,
      defaultJobOptions,
      skipWaitingForReady: true,
      // Tracing (OTEL_*): a producer span per add, its context carried in the job's options. Off: {}.
      ...bullmqTelemetry(),
    });
    // Without a listener BullMQ prints every connection error with a stack trace; readiness reports them.
    queue.on("error", (err) => onError?.(name, err));
    return queue;
  };
  const events = make(QUEUES.events);
  const reports = make(QUEUES.reports);
  const maintenance = make(QUEUES.maintenance);
  return {
    events,
    reports,
    maintenance,
    all: () => [events, reports, maintenance],
    close: async () => {
      await Promise.all([events.close(), reports.close(), maintenance.close()]);
    },
  };
}
