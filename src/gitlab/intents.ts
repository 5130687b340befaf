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

export const triggerSchema = z.object({
  /** The GitLab event, e.g. "System Hook/project_create", "Note Hook". */
  event: z.string(),
  /** Idempotency-Key, else X-Gitlab-Event-UUID, else a generated id. */
  eventId: z.string(),
  instance: z.string().optional(),
  receivedAt: z.string(),
  actor: actorSchema.optional(),
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
