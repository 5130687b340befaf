import { z } from "zod";

/*
 * The fields of GitLab REST responses that the bot reads. Only what we use is declared; zod objects are
 * non-strict by default, so GitLab's many extra fields pass through untouched (and are dropped).
 */

export const userSchema = z.object({
  id: z.number().int(),
  username: z.string(),
  name: z.string().optional(),
});

export const projectSchema = z.object({
  id: z.number().int(),
  path_with_namespace: z.string(),
  web_url: z.string(),
  namespace: z.object({ id: z.number().int(), full_path: z.string() }).optional(),
  /** Absent on GitLab < 17.10 and for tokens that may not see ci_* settings. */
  ci_id_token_sub_claim_components: z.array(z.string()).nullish(),
  /**
   * Set while the project waits out its deletion delay (doc/api/projects.md, "Get a single project": both are
   * dates such as "2020-04-03"; older versions send only `marked_for_deletion_at`). null otherwise.
   */
  marked_for_deletion_at: z.string().nullish(),
  marked_for_deletion_on: z.string().nullish(),
});

export const memberSchema = z.object({
  id: z.number().int(),
  username: z.string().optional(),
  access_level: z.number().int(),
  /** "active", "awaiting" (pending seat), "blocked", ...; absent on old versions. */
  state: z.string().optional(),
});

export const issueSchema = z.object({
  id: z.number().int(),
  iid: z.number().int(),
  project_id: z.number().int(),
  title: z.string(),
  description: z.string().nullish(),
  state: z.string(),
  web_url: z.string(),
  author: z.object({ id: z.number().int(), username: z.string().optional() }).nullish(),
  labels: z.array(z.string()).default([]),
  /** doc/api/issues.md; absent from some older responses, where it means "not confidential". */
  confidential: z.boolean().nullish(),
});

/**
 * doc/api/notes.md ("Get single issue note" and the list example): `internal` (since 15.0; `confidential` is its
 * deprecated alias, still sent), `noteable_type` and `noteable_iid` say which issue the note belongs to.
 */
export const noteSchema = z.object({
  id: z.number().int(),
  body: z.string(),
  author: z.object({ id: z.number().int(), username: z.string().optional() }),
  system: z.boolean().nullish(),
  internal: z.boolean().nullish(),
  confidential: z.boolean().nullish(),
  noteable_type: z.string().nullish(),
  noteable_iid: z.number().int().nullish(),
});

export const awardEmojiSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  user: z.object({ id: z.number().int() }).optional(),
});

export const variableSchema = z.object({
  key: z.string(),
  /** null for masked_and_hidden variables. */
  value: z.string().nullable(),
  environment_scope: z.string().default("*"),
  masked: z.boolean().default(false),
  protected: z.boolean().default(false),
  raw: z.boolean().optional(),
  variable_type: z.string().optional(),
});

export const environmentSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  slug: z.string().optional(),
  state: z.string().optional(),
  tier: z.string().nullish(),
  external_url: z.string().nullish(),
});
