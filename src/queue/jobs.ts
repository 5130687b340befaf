import { z } from "zod";
import { intentSchema, triggerSchema } from "../gitlab/intents.ts";

/** Data of a job on the events queue. Parsed again by the worker: Redis is a boundary too. */
export const eventJobSchema = z.object({ intent: intentSchema, trigger: triggerSchema });
export type EventJob = z.infer<typeof eventJobSchema>;

/** How long a delivery's Idempotency-Key is remembered. GitLab keeps recent events for resend for 2 days. */
export const DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;

/**
 * Defaults for every job: enough attempts to ride out a Graph or GitLab outage of about an hour
 * (2 s doubling, jittered, 10 attempts) and retention long enough for ops to inspect and retry.
 */
export const DEFAULT_JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: "exponential", delay: 2_000, jitter: 0.5 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 50_000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 100_000 },
} as const;
