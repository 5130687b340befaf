import { createHash, randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import type { Intent, Trigger } from "../gitlab/intents.ts";
import { DEDUPE_TTL_MS, type EventJob } from "./jobs.ts";

export type EnqueueResult = { jobId: string; duplicate: boolean };

/**
 * Adds an intent to the events queue, at most once per delivery key. The key goes through BullMQ's
 * deduplication (checked and set atomically in the add script), so 20 concurrent deliveries of one event
 * make one job. A duplicate comes back with the first job's id, which is how we tell it apart.
 */
export async function enqueueIntent(
  queue: Queue,
  intent: Intent,
  trigger: Trigger,
  dedupeKey: string | undefined,
): Promise<EnqueueResult> {
  const jobId = randomUUID();
  const data: EventJob = { intent, trigger };
  const job = await queue.add(intent.type, data, {
    jobId,
    ...(dedupeKey
      ? { deduplication: { id: createHash("sha256").update(dedupeKey).digest("hex"), ttl: DEDUPE_TTL_MS } }
      : {}),
  });
  const id = job.id ?? jobId;
  return { jobId: id, duplicate: id !== jobId };
}
