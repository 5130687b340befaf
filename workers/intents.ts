import type { Job } from "bullmq";
import type { Logger } from "../src/logging.ts";
import type { EventJob } from "../src/queue/jobs.ts";
import { createJobContext } from "./handlers/context.ts";
import { dispatch } from "./handlers/index.ts";
import type { WorkerRuntime } from "./runtime.ts";

/**
 * Routes one intent to its handler (workers/handlers/), with one context object for the job. Throws retryable
 * errors (BullMQ retries); permanent ones end in a report or a refusal.
 */
export function handleIntent(rt: WorkerRuntime, data: EventJob, job: Job, log: Logger) {
  return dispatch(createJobContext(rt, data, job, log));
}
