import { z } from "zod";
import type { Actor } from "./intents.ts";

/**
 * Zod schemas for what the bot reads from GitLab's webhook payloads, and nothing else: every other field may be
 * absent, null or of any type (objects are loose). They are applied only once an event is known to matter
 * (normalise.ts decides relevance first from a few plain reads), so an event the bot ignores is never judged
 * by them. A payload that matters but lacks one of these fields is acknowledged and ignored with a reason.
 */
const id = z.number().int().positive();
const path = z.string().min(1).max(2048);

const project = z.looseObject({ id, path_with_namespace: path });

/** System Hook project_create / project_destroy, and the group hook's Project Hook (GitLab 17.6+). */
export const projectLifecycleEvent = z.looseObject({ project_id: id, path_with_namespace: path });

export const systemProjectMoveEvent = z.looseObject({
  project_id: id,
  path_with_namespace: path,
  old_path_with_namespace: path,
});

export const systemGroupRenameEvent = z.looseObject({
  group_id: id,
  full_path: path,
  old_full_path: path,
});

export const systemUserRenameEvent = z.looseObject({
  user_id: id,
  username: path,
  old_username: path,
});

/** Read once the note is known to be a new, human comment on an issue holding an `/entra` line. */
export const noteEvent = z.looseObject({
  project,
  object_attributes: z.looseObject({ id }),
  issue: z.looseObject({ iid: id, confidential: z.boolean().nullish() }),
});

/** Deployment, Pipeline and Job Hooks, once they are known to name an environment. */
export const projectScopedEvent = z.looseObject({ project });

/**
 * The acting user, when the payload carries a usable one. Job and Pipeline Hooks send `user: null` for jobs
 * without a user, and GitLab's documented Job Hook example has a `user` without `username`.
 */
export function actorOf(user: unknown): Actor | undefined {
  if (typeof user !== "object" || user === null) return undefined;
  const { id: uid, username } = user as { id?: unknown; username?: unknown };
  if (typeof uid !== "number" || !Number.isInteger(uid) || typeof username !== "string" || username === "")
    return undefined;
  return { id: uid, username };
}
