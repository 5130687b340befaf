import { type Job, UnrecoverableError } from "bullmq";
import type { Logger } from "../src/logging.ts";
import { type EventJob, eventJobSchema } from "../src/queue/jobs.ts";

export type IntentHandler = (data: EventJob, job: Job, log: Logger) => Promise<unknown>;

/**
 * Processor for the events queue: re-validates the job data (Redis is a boundary: a job written by an
 * older or newer version must fail loudly, not half-work) and hands the intent to its handler.
 */
export function createEventsProcessor(logger: Logger, handle: IntentHandler) {
  return async (job: Job): Promise<unknown> => {
    const parsed = eventJobSchema.safeParse(job.data);
    if (!parsed.success) {
      const where = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
        .join("; ");
      throw new UnrecoverableError(`JOB_DATA_INVALID: job data does not match the intent schema (${where})`);
    }
    const { intent, trigger } = parsed.data;
    const log = logger.child({ jobId: job.id, gitlabEventId: trigger.eventId, intent: intent.type });
    log.info({ attempt: job.attemptsMade + 1 }, "processing intent");
    await job.log(`intent ${intent.type} from ${trigger.event} (event ${trigger.eventId})`);
    return handle(parsed.data, job, log);
  };
}
