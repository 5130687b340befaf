import { z } from "zod";
import { intentSchema, triggerSchema } from "../gitlab/intents.ts";
import { onboardResultSchema } from "../onboarding/result-schema.ts";

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

/**
 * A report back to GitLab, separate from the Entra work so that a GitLab outage retries only this. Every
 * part is idempotent (read, then write only what differs), so the whole job can be retried.
 */
export const reportJobSchema = z.object({
  trigger: triggerSchema,
  project: z.object({ id: z.number().int().positive(), path: z.string() }),
  /** The Entra outcome the report describes (absent for help, refusals, doctor). */
  result: onboardResultSchema.optional(),
  // No sub-claim step here: the project's ci_id_token_sub_claim_components is set before any Entra write, in
  // one place (onboarding/subject-components.ts); a `subClaim` field of an older job is ignored.
  /** Upsert env-scoped AZURE_CLIENT_ID / AZURE_TENANT_ID. */
  ciVariables: z.boolean().default(false),
  /** Create or update the project's onboarding issue. */
  issue: z.boolean().default(false),
  /**
   * The project may be unreachable (pending deletion archives it; a 404 project has no issues): a permanent
   * GitLab refusal ends the report quietly instead of failing the job.
   */
  bestEffort: z.boolean().default(false),
  /** Answer a slash command in its issue; `body` absent = render from `result`. */
  reply: z
    .object({
      issueIid: z.number().int().positive(),
      noteId: z.number().int().positive(),
      body: z.string().optional(),
      react: z.union([z.literal("thumbsup"), z.literal("eyes"), z.literal(false)]).default("thumbsup"),
      /**
       * Answer with an internal note: the command came from an internal note or a confidential issue. The
       * events worker decides it (from GitLab); the reporter only obeys, and keeps one status note per
       * visibility so that an internal answer never lands in, or turns into, a public note.
       */
      internal: z.boolean().default(false),
    })
    .optional(),
  /** A short answer to a command written in a merge-request comment (commands are not run there). */
  mergeRequestReply: z
    .object({
      mergeRequestIid: z.number().int().positive(),
      body: z.string(),
      internal: z.boolean().default(false),
    })
    .optional(),
});
export type ReportJob = z.input<typeof reportJobSchema>;
export type ParsedReportJob = z.infer<typeof reportJobSchema>;
