import type { z } from "zod";
import { inScope, type Policy } from "../config/policy.ts";
import { stripJwtSignatures } from "../doctor/input.ts";
import { mayOnboardOnFirstSight } from "../policy/rules.ts";
import { findCommandLine, MAX_COMMAND_LENGTH } from "./commands.ts";
import {
  actorOf,
  noteEvent,
  projectLifecycleEvent,
  projectScopedEvent,
  systemGroupRenameEvent,
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

/**
 * What a delivery asks for, or why it asks for nothing. There is no "invalid": GitLab counts every 4xx as a
 * failed delivery and disables the hook after a few, which would also silence the events that do matter.
 * `incomplete` marks an event that mattered but lacked a field the bot needs (worth a warning).
 */
export type Normalised =
  | { kind: "intent"; intent: Intent; actor?: Actor }
  | { kind: "ignored"; reason: string; incomplete?: boolean };

type Body = Record<string, unknown>;

function ignored(reason: string): Normalised {
  return { kind: "ignored", reason };
}

/** A value from the payload, quoted and cut short, for a reason string. */
function quote(v: unknown): string {
  return JSON.stringify(String(v).slice(0, 64));
}

const MAX_ISSUES = 3;

/** Environments one Deployment, Pipeline or Job event may carry into job data (see environmentHook). */
export const MAX_ENVIRONMENTS_PER_EVENT = 50;

/** A relevant event without a field the bot needs: acknowledged, not acted on, and said why. */
function incomplete(event: string, error: z.ZodError): Normalised {
  const fields = error.issues
    .slice(0, MAX_ISSUES)
    .map((i) => `${i.path.length ? i.path.map(String).join(".") : "(root)"} (${i.message})`)
    .join(", ");
  return { kind: "ignored", incomplete: true, reason: `${event} lacks what the bot needs: ${fields}` };
}

function isObject(v: unknown): v is Body {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function scoped(policy: Policy, project: ProjectRef, intent: Intent, actor?: Actor): Normalised {
  if (!inScope(policy, project.path)) {
    return ignored(`project ${project.path} is outside the policy scope`);
  }
  return actor ? { kind: "intent", intent, actor } : { kind: "intent", intent };
}

function systemHook(body: Body, policy: Policy): Normalised {
  const name = body.event_name;
  if (typeof name !== "string") {
    // Merge request, push and tag events reach system hooks with object_kind and no event_name.
    return typeof body.object_kind === "string"
      ? ignored(`System Hook ${quote(body.object_kind)} events are not ones the bot acts on`)
      : ignored("System Hook without event_name is not one the bot acts on");
  }
  switch (name) {
    case "project_create":
    case "project_destroy": {
      const r = projectLifecycleEvent.safeParse(body);
      if (!r.success) return incomplete(`System Hook ${name}`, r.error);
      const project = { id: r.data.project_id, path: r.data.path_with_namespace };
      // A destroyed project is offboarded even if the scope changed since: stale FICs are a takeover risk.
      if (name === "project_destroy")
        return { kind: "intent", intent: { type: "project.destroyed", project } };
      return scoped(policy, project, { type: "project.created", project, source: "system-hook" });
    }
    case "project_rename":
    case "project_transfer": {
      const r = systemProjectMoveEvent.safeParse(body);
      if (!r.success) return incomplete(`System Hook ${name}`, r.error);
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
      if (!r.success) return incomplete("System Hook group_rename", r.error);
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
      if (!r.success) return incomplete("System Hook user_rename", r.error);
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
      return ignored(`System Hook event ${quote(name)} is not one the bot acts on`);
  }
}

function groupProjectHook(body: Body, policy: Policy): Normalised {
  const name = body.event_name;
  if (name !== "project_create" && name !== "project_destroy") {
    return ignored(
      typeof name === "string"
        ? `Project Hook event ${quote(name)} is not one the bot acts on`
        : "Project Hook without event_name is not one the bot acts on",
    );
  }
  const r = projectLifecycleEvent.safeParse(body);
  if (!r.success) return incomplete(`Project Hook ${name}`, r.error);
  const project = { id: r.data.project_id, path: r.data.path_with_namespace };
  if (name === "project_destroy") return { kind: "intent", intent: { type: "project.destroyed", project } };
  return scoped(policy, project, { type: "project.created", project, source: "group-hook" });
}

function noteHook(body: Body, policy: Policy, confidentialHook: boolean): Normalised {
  const event = confidentialHook ? "Confidential Note Hook" : "Note Hook";
  // Relevance first, from plain reads: most comments are not commands, and none of them is judged.
  const note = isObject(body.object_attributes) ? body.object_attributes : {};
  if (note.noteable_type === "MergeRequest") {
    const mr = mergeRequestCommand(body, policy, confidentialHook, BOT_MARKER);
    return "intent" in mr
      ? { kind: "intent", intent: mr.intent, actor: mr.intent.author }
      : ignored(mr.ignored);
  }
  if (note.noteable_type !== "Issue") {
    return ignored(
      `comments on ${typeof note.noteable_type === "string" ? quote(note.noteable_type) : "anything but an issue"} are not commands`,
    );
  }
  if (note.system === true) return ignored("system notes are not commands");
  // Edits fire Note Hook too (GitLab 16.11+); acting on them would run a command twice.
  const action = note.action ?? "create";
  if (action !== "create") return ignored(`note action ${quote(action)} is not a new comment`);
  if (typeof note.note !== "string") return ignored("comment has no text");
  if (note.note.includes(BOT_MARKER)) return ignored("note written by the bot");
  // The first `/entra` line of the author's own text; for `/entra doctor` also the pasted lines below it. A
  // pasted ID token loses its signature here, so job data never holds a usable credential.
  const found = findCommandLine(note.note);
  if (found === null) return ignored("comment has no /entra command");

  const r = noteEvent.safeParse(body);
  if (!r.success) return incomplete(`${event} with an /entra command`, r.error);
  const actor = actorOf(body.user);
  if (!actor) {
    return {
      kind: "ignored",
      incomplete: true,
      reason: `${event} with an /entra command has no user with id and username: the command cannot be authorised`,
    };
  }
  const { project: p, issue, object_attributes } = r.data;
  const project = { id: p.id, path: p.path_with_namespace };
  return scoped(
    policy,
    project,
    {
      type: "command",
      project,
      issueIid: issue.iid,
      noteId: object_attributes.id,
      author: actor,
      line: stripJwtSignatures(found).slice(0, MAX_COMMAND_LENGTH),
      confidential: confidentialHook || issue.confidential === true,
    },
    actor,
  );
}

type Seen = { name: string; tier?: string };

function environmentOf(v: unknown): Seen | undefined {
  if (!isObject(v)) return undefined;
  const name = text(v.name);
  if (!name) return undefined;
  const tier = text(v.deployment_tier);
  return tier ? { name, tier } : { name };
}

/**
 * Deployment, Pipeline and Job Hooks: relevant only when they name an environment; the project is read
 * after that. Job Hooks of older GitLab versions have no `project` object (only `project_id` and
 * `project_name`, which is the display name, not the path): they are ignored with that reason, since
 * Deployment and Pipeline Hooks carry the same first sight with the path.
 */
function environmentHook(
  event: string,
  body: Body,
  policy: Policy,
  source: "deployment" | "pipeline" | "job",
): Normalised {
  let named: Seen[];
  let ref: string | undefined;
  if (source === "deployment") {
    const name = text(body.environment);
    const tier = text(body.environment_tier);
    named = name ? [tier ? { name, tier } : { name }] : [];
    ref = text(body.ref);
  } else if (source === "pipeline") {
    const builds = Array.isArray(body.builds) ? body.builds : [];
    named = builds.flatMap((b) => {
      const e = isObject(b) ? environmentOf(b.environment) : undefined;
      return e ? [e] : [];
    });
    ref = isObject(body.object_attributes) ? text(body.object_attributes.ref) : undefined;
  } else {
    const e = environmentOf(body.environment);
    named = e ? [e] : [];
    ref = text(body.ref);
  }
  const distinct = new Map<string, Seen>();
  for (const e of named) if (!distinct.has(e.name)) distinct.set(e.name, e);
  if (distinct.size === 0) return ignored(`${source} event names no environment`);
  // A pipeline's jobs (and so the environments it names) are whatever its author pushed: thousands of
  // environment names would make job data, GitLab calls and first-sight records grow without bound. The
  // environments some rule could onboard on first sight go first, and at most MAX_ENVIRONMENTS_PER_EVENT
  // are kept: more could never be onboarded by one event (maxIdentitiesPerProject).
  const environments = [...distinct.values()]
    .map((e, i) => ({ e, i, first: mayOnboardOnFirstSight(policy, e.name, e.tier) }))
    .sort((a, b) => Number(b.first) - Number(a.first) || a.i - b.i)
    .slice(0, Math.max(MAX_ENVIRONMENTS_PER_EVENT, policy.maxIdentitiesPerProject))
    .map(({ e }) => e);

  const r = projectScopedEvent.safeParse(body);
  if (!r.success) return incomplete(`${event} naming an environment`, r.error);
  const project = { id: r.data.project.id, path: r.data.project.path_with_namespace };
  return scoped(
    policy,
    project,
    {
      type: "environment.seen",
      project,
      environments,
      source,
      ...(ref ? { ref } : {}),
    },
    actorOf(body.user),
  );
}

/**
 * Turns a verified delivery into an intent, or says why it is ignored. System Hooks dispatch on `event_name`
 * (their header is always "System Hook"); everything else on the X-Gitlab-Event header.
 */
export function normalise(eventHeader: string, body: unknown, policy: Policy): Normalised {
  if (!isObject(body)) return ignored("body is not a JSON object");
  switch (eventHeader) {
    case "System Hook":
      return systemHook(body, policy);
    case "Project Hook":
      return groupProjectHook(body, policy);
    case "Note Hook":
    case "Confidential Note Hook":
      return noteHook(body, policy, eventHeader === "Confidential Note Hook");
    case "Deployment Hook":
      return environmentHook(eventHeader, body, policy, "deployment");
    case "Pipeline Hook":
      return environmentHook(eventHeader, body, policy, "pipeline");
    case "Job Hook":
      return environmentHook(eventHeader, body, policy, "job");
    case "":
      return ignored("no X-Gitlab-Event header");
    default:
      return ignored(`event ${quote(eventHeader)} is not one the bot acts on`);
  }
}
