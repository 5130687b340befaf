import { z } from "zod";

/**
 * Zod schemas for the GitLab webhook payloads the bot acts on. Only the fields we read are declared;
 * objects are loose so that GitLab adding fields never breaks intake.
 */
const id = z.number().int().positive();
const path = z.string().min(1).max(2048);

const user = z.looseObject({ id: z.number().int(), username: z.string() });
const project = z.looseObject({ id, path_with_namespace: path });

export const systemProjectEvent = z.looseObject({
  event_name: z.enum(["project_create", "project_destroy", "project_update"]),
  project_id: id,
  path_with_namespace: path,
});

export const systemProjectMoveEvent = z.looseObject({
  event_name: z.enum(["project_rename", "project_transfer"]),
  project_id: id,
  path_with_namespace: path,
  old_path_with_namespace: path,
});

export const systemGroupRenameEvent = z.looseObject({
  event_name: z.literal("group_rename"),
  group_id: id,
  full_path: path,
  old_full_path: path,
});

export const systemUserRenameEvent = z.looseObject({
  event_name: z.literal("user_rename"),
  user_id: id,
  username: path,
  old_username: path,
});

/** Group webhook "Project events" (GitLab 17.6+): only create and destroy. */
export const groupProjectEvent = z.looseObject({
  event_name: z.enum(["project_create", "project_destroy"]),
  project_id: id,
  path_with_namespace: path,
});

export const noteEvent = z.looseObject({
  object_kind: z.literal("note"),
  user,
  project,
  object_attributes: z.looseObject({
    id,
    note: z.string(),
    noteable_type: z.string(),
    system: z.boolean().optional(),
    action: z.string().optional(),
  }),
  issue: z.looseObject({ iid: id, confidential: z.boolean().optional() }).optional(),
});

export const deploymentEvent = z.looseObject({
  object_kind: z.literal("deployment"),
  status: z.string(),
  environment: z.string().min(1),
  environment_tier: z.string().nullish(),
  project,
  user: user.optional(),
  ref: z.string().optional(),
});

const environmentObject = z.looseObject({
  name: z.string().min(1),
  action: z.string().nullish(),
  deployment_tier: z.string().nullish(),
});

export const pipelineEvent = z.looseObject({
  object_kind: z.literal("pipeline"),
  object_attributes: z.looseObject({ ref: z.string().nullish(), tag: z.boolean().nullish() }),
  project,
  user: user.optional(),
  builds: z.array(z.looseObject({ environment: environmentObject.nullish() })).nullish(),
});

export const jobEvent = z.looseObject({
  object_kind: z.literal("build"),
  ref: z.string().nullish(),
  tag: z.boolean().nullish(),
  project_id: id,
  project,
  user: user.optional(),
  environment: environmentObject.nullish(),
});
