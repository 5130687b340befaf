import type { z } from "zod";
import { inScope, type Policy } from "../config/policy.ts";
import { stripJwtSignatures } from "../doctor/input.ts";
import { findCommandLine, MAX_COMMAND_LENGTH } from "./commands.ts";
import {
  deploymentEvent,
  groupProjectEvent,
  jobEvent,
  noteEvent,
  pipelineEvent,
  systemGroupRenameEvent,
  systemProjectEvent,
  systemProjectMoveEvent,
  systemUserRenameEvent,
} from "./events.ts";
import type { Actor, Intent, ProjectRef } from "./intents.ts";
import { mergeRequestCommand } from "./merge-request-command.ts";

/** Marker the bot puts in every note it writes; a note carrying it is never treated as a command. */
export const BOT_MARKER = "<!-- gitlab-entra-bot";

/** X-Gitlab-Event values the intake acts on; every other event is acknowledged and ignored. */
export const HANDLED_EVENTS = [
  "System Hook",
  "Project Hook",
  "Note Hook",
  "Confidential Note Hook",
  "Deployment Hook",
  "Pipeline Hook",
  "Job Hook",
] as const;

export interface Issue {
  path: string;
  message: string;
}

export type Normalised =
  | { kind: "intent"; intent: Intent; actor?: Actor }
  | { kind: "ignored"; reason: string }
  | { kind: "invalid"; reason: string; issues: Issue[] };

const MAX_ISSUES = 5;

function invalid(event: string, error: z.ZodError): Normalised {
  return {
    kind: "invalid",
    reason: `body does not match a GitLab ${event} payload`,
    issues: error.issues.slice(0, MAX_ISSUES).map((i) => ({
      path: i.path.length ? i.path.map(String).join(".") : "(root)",
      message: i.message,
    })),
  };
}

function ignored(reason: string): Normalised {
  return { kind: "ignored", reason };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function scoped(policy: Policy, project: ProjectRef, intent: Intent, actor?: Actor): Normalised {
  if (!inScope(policy, project.path)) {
    return ignored(`project ${project.path} is outside the policy scope`);
  }
  return actor ? { kind: "intent", intent, actor } : { kind: "intent", intent };
}

function systemHook(body: Record<string, unknown>, policy: Policy): Normalised {
  const name = body.event_name;
  if (typeof name !== "string") {
    return {
      kind: "invalid",
      reason: "System Hook body has no event_name",
      issues: [{ path: "event_name", message: "required string" }],
    };
  }
  switch (name) {
    case "project_create":
    case "project_destroy": {
      const r = systemProjectEvent.safeParse(body);
      if (!r.success) return invalid(`System Hook ${name}`, r.error);
      const project = { id: r.data.project_id, path: r.data.path_with_namespace };
      const intent: Intent =
        name === "project_create"
          ? { type: "project.created", project, source: "system-hook" }
          : { type: "project.destroyed", project };
      // A destroyed project is offboarded even if the scope changed since: stale FICs are a takeover risk.
      return name === "project_destroy" ? { kind: "intent", intent } : scoped(policy, project, intent);
    }
    case "project_rename":
    case "project_transfer": {
      const r = systemProjectMoveEvent.safeParse(body);
      if (!r.success) return invalid(`System Hook ${name}`, r.error);
      const project = { id: r.data.project_id, path: r.data.path_with_namespace };
      // Not scope-filtered: a project moving out of scope must still have its subjects updated or removed.
      return {
        kind: "intent",
        intent: {
          type: "project.moved",
          project,
          oldPath: r.data.old_path_with_namespace,
          how: name === "project_rename" ? "rename" : "transfer",
        },
      };
    }
    case "group_rename": {
      const r = systemGroupRenameEvent.safeParse(body);
      if (!r.success) return invalid("System Hook group_rename", r.error);
      return {
        kind: "intent",
        intent: {
          type: "namespace.renamed",
          kind: "group",
          namespaceId: r.data.group_id,
          oldPath: r.data.old_full_path,
          newPath: r.data.full_path,
        },
      };
    }
    case "user_rename": {
      const r = systemUserRenameEvent.safeParse(body);
      if (!r.success) return invalid("System Hook user_rename", r.error);
      return {
        kind: "intent",
        intent: {
          type: "namespace.renamed",
          kind: "user",
          namespaceId: r.data.user_id,
          oldPath: r.data.old_username,
          newPath: r.data.username,
        },
      };
    }
    default:
      return ignored(`System Hook event ${name} is not one the bot acts on`);
  }
}

function groupProjectHook(body: Record<string, unknown>, policy: Policy): Normalised {
  const name = body.event_name;
  if (name !== "project_create" && name !== "project_destroy") {
    return typeof name === "string"
      ? ignored(`Project Hook event ${name} is not one the bot acts on`)
      : {
          kind: "invalid",
          reason: "Project Hook body has no event_name",
          issues: [{ path: "event_name", message: "required string" }],
        };
  }
  const r = groupProjectEvent.safeParse(body);
  if (!r.success) return invalid(`Project Hook ${name}`, r.error);
  const project = { id: r.data.project_id, path: r.data.path_with_namespace };
  if (name === "project_destroy") return { kind: "intent", intent: { type: "project.destroyed", project } };
  return scoped(policy, project, { type: "project.created", project, source: "group-hook" });
}

function noteHook(body: Record<string, unknown>, policy: Policy, confidentialHook: boolean): Normalised {
  const r = noteEvent.safeParse(body);
  if (!r.success) return invalid(confidentialHook ? "Confidential Note Hook" : "Note Hook", r.error);
  const { object_attributes: note, issue, user } = r.data;
  if (note.noteable_type === "MergeRequest") {
    const mr = mergeRequestCommand(body, policy, confidentialHook, BOT_MARKER);
    return "intent" in mr
      ? { kind: "intent", intent: mr.intent, actor: mr.intent.author }
      : ignored(mr.ignored);
  }
  if (note.noteable_type !== "Issue" || !issue)
    return ignored(`comments on ${note.noteable_type} are not commands`);
  if (note.system === true) return ignored("system notes are not commands");
  // Edits fire Note Hook too (GitLab 16.11+); acting on them would run a command twice.
  if ((note.action ?? "create") !== "create")
    return ignored(`note action ${note.action} is not a new comment`);
  if (note.note.includes(BOT_MARKER)) return ignored("note written by the bot");
  // The first `/entra` line outside code fences; for `/entra doctor` also the pasted lines below it. A pasted
  // ID token loses its signature here, so job data never holds a usable credential.
  const found = findCommandLine(note.note);
  if (found === null) return ignored("comment has no /entra command");
  const line = stripJwtSignatures(found);
  const project = { id: r.data.project.id, path: r.data.project.path_with_namespace };
  const actor = { id: user.id, username: user.username };
  return scoped(
    policy,
    project,
    {
      type: "command",
      project,
      issueIid: issue.iid,
      noteId: note.id,
      author: actor,
      line: line.slice(0, MAX_COMMAND_LENGTH),
      confidential: confidentialHook || issue.confidential === true,
    },
    actor,
  );
}

function environmentSeen(
  project: ProjectRef,
  environments: Array<{ name: string; tier?: string | null | undefined }>,
  source: "deployment" | "pipeline" | "job",
  policy: Policy,
  ref?: string | null,
  actor?: Actor,
): Normalised {
  const distinct = new Map<string, { name: string; tier?: string }>();
  for (const e of environments) {
    if (!distinct.has(e.name))
      distinct.set(e.name, e.tier ? { name: e.name, tier: e.tier } : { name: e.name });
  }
  if (distinct.size === 0) return ignored(`${source} event names no environment`);
  return scoped(
    policy,
    project,
    {
      type: "environment.seen",
      project,
      environments: [...distinct.values()],
      source,
      ...(ref ? { ref } : {}),
    },
    actor,
  );
}

/**
 * Turns a verified delivery into an intent, or says why it is ignored or invalid. System Hooks dispatch on
 * `event_name` (their header is always "System Hook"); everything else on the X-Gitlab-Event header, and the
 * body must then match that event.
 */
export function normalise(eventHeader: string, body: unknown, policy: Policy): Normalised {
  if (!isObject(body)) {
    return {
      kind: "invalid",
      reason: "body must be a JSON object",
      issues: [{ path: "(root)", message: "expected object" }],
    };
  }
  switch (eventHeader) {
    case "System Hook":
      return systemHook(body, policy);
    case "Project Hook":
      return groupProjectHook(body, policy);
    case "Note Hook":
    case "Confidential Note Hook":
      return noteHook(body, policy, eventHeader === "Confidential Note Hook");
    case "Deployment Hook": {
      const r = deploymentEvent.safeParse(body);
      if (!r.success) return invalid(eventHeader, r.error);
      const d = r.data;
      return environmentSeen(
        { id: d.project.id, path: d.project.path_with_namespace },
        [{ name: d.environment, tier: d.environment_tier }],
        "deployment",
        policy,
        d.ref,
        d.user ? { id: d.user.id, username: d.user.username } : undefined,
      );
    }
    case "Pipeline Hook": {
      const r = pipelineEvent.safeParse(body);
      if (!r.success) return invalid(eventHeader, r.error);
      const p = r.data;
      const envs = (p.builds ?? []).flatMap((b) =>
        b.environment ? [{ name: b.environment.name, tier: b.environment.deployment_tier }] : [],
      );
      return environmentSeen(
        { id: p.project.id, path: p.project.path_with_namespace },
        envs,
        "pipeline",
        policy,
        p.object_attributes.ref,
        p.user ? { id: p.user.id, username: p.user.username } : undefined,
      );
    }
    case "Job Hook": {
      const r = jobEvent.safeParse(body);
      if (!r.success) return invalid(eventHeader, r.error);
      const j = r.data;
      return environmentSeen(
        { id: j.project.id, path: j.project.path_with_namespace },
        j.environment ? [{ name: j.environment.name, tier: j.environment.deployment_tier }] : [],
        "job",
        policy,
        j.ref,
        j.user ? { id: j.user.id, username: j.user.username } : undefined,
      );
    }
    default:
      return ignored(`event "${eventHeader}" is not one the bot acts on`);
  }
}
