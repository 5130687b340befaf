import { z } from "zod";

/**
 * Intents: what a GitLab event asks the bot to do, independent of GitLab's wire format.
 * They are the job data of the events queue, so they carry no secrets and only what the worker needs.
 */
export const projectRefSchema = z.object({
  id: z.number().int().positive(),
  /** path_with_namespace as GitLab reported it in the event (case preserved). */
  path: z.string().min(1),
});
export type ProjectRef = z.infer<typeof projectRefSchema>;

export const actorSchema = z.object({ id: z.number().int(), username: z.string() });
export type Actor = z.infer<typeof actorSchema>;

/**
 * Which credential authenticated a delivery, i.e. what it may speak for (see the trust model in the README):
 * - instance: an instance-wide secret (GITLAB_WEBHOOK_SECRETS / GITLAB_WEBHOOK_SIGNING_TOKENS), the system hook;
 * - namespace: a group hook secret bound to a namespace full path (GITLAB_GROUP_WEBHOOK_*): it speaks only for
 *   projects whose path, as GitLab's API reports it, lies under that namespace;
 * - internal: the bot's own scheduled work (drift repair), never a delivery.
 */
export const deliverySourceSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("instance") }),
  z.object({ kind: z.literal("namespace"), namespace: z.string().min(1) }),
  z.object({ kind: z.literal("internal") }),
]);
export type DeliverySource = z.infer<typeof deliverySourceSchema>;

export const triggerSchema = z.object({
  /** The GitLab event, e.g. "System Hook/project_create", "Note Hook". */
  event: z.string(),
  /** The signed webhook-id, else Idempotency-Key, else X-Gitlab-Event-UUID, else a generated id. */
  eventId: z.string(),
  receivedAt: z.string(),
  actor: actorSchema.optional(),
  /** Required: a job that does not say who vouched for it is refused (fail closed). */
  source: deliverySourceSchema,
  /** Whether a Standard Webhooks signature authenticated the delivery. */
  signed: z.boolean().default(false),
});
export type Trigger = z.infer<typeof triggerSchema>;

export const intentSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("project.created"),
    project: projectRefSchema,
    source: z.enum(["system-hook", "group-hook"]),
  }),
  z.object({ type: z.literal("project.destroyed"), project: projectRefSchema }),
  z.object({
    type: z.literal("project.moved"),
    project: projectRefSchema,
    oldPath: z.string().min(1),
    how: z.enum(["rename", "transfer"]),
  }),
  z.object({
    type: z.literal("namespace.renamed"),
    kind: z.enum(["group", "user"]),
    namespaceId: z.number().int(),
    oldPath: z.string().min(1),
    newPath: z.string().min(1),
  }),
  z.object({
    type: z.literal("command"),
    project: projectRefSchema,
    issueIid: z.number().int().positive(),
    noteId: z.number().int().positive(),
    author: actorSchema,
    /** The first `/entra ...` line, trimmed (for `doctor`, with the lines below it); parsed by the worker. */
    line: z.string().max(4000),
    confidential: z.boolean(),
  }),
  z.object({
    /** An `/entra` command written in a merge-request comment: answered with a pointer, never run. */
    type: z.literal("mergeRequest.comment"),
    project: projectRefSchema,
    mergeRequestIid: z.number().int().positive(),
    noteId: z.number().int().positive(),
    author: actorSchema,
    confidential: z.boolean(),
  }),
  z.object({
    type: z.literal("environment.seen"),
    project: projectRefSchema,
    /** Distinct environments named by the event (a pipeline can name several). */
    environments: z.array(z.object({ name: z.string().min(1), tier: z.string().optional() })).min(1),
    ref: z.string().optional(),
    source: z.enum(["deployment", "pipeline", "job"]),
  }),
]);
export type Intent = z.infer<typeof intentSchema>;
export type IntentType = Intent["type"];
