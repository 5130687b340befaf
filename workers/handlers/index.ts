import type { Intent } from "../../src/gitlab/intents.ts";
import { onCommand } from "./command.ts";
import type { Handler, HandlerResult, IntentHandlers, JobContext } from "./context.ts";
import { onEnvironmentSeen } from "./environment-seen.ts";
import { onMergeRequestComment } from "./merge-request-comment.ts";
import { onNamespaceRenamed } from "./namespace-renamed.ts";
import { onProjectCreated } from "./project-created.ts";
import { onProjectDestroyed } from "./project-destroyed.ts";
import { onProjectMoved } from "./project-moved.ts";

/** Every intent type and its handler. The type makes a missing (or misspelt) intent type a compile error. */
export const intentHandlers: IntentHandlers = {
  "project.created": onProjectCreated,
  "project.destroyed": onProjectDestroyed,
  "project.moved": onProjectMoved,
  "namespace.renamed": onNamespaceRenamed,
  command: onCommand,
  "mergeRequest.comment": onMergeRequestComment,
  "environment.seen": onEnvironmentSeen,
};

/** Runs the handler for the context's intent type. */
export function dispatch(ctx: JobContext, handlers: IntentHandlers = intentHandlers): Promise<HandlerResult> {
  // The map is keyed by the intent's own type, so this handler takes exactly this intent; TypeScript cannot
  // correlate the two across the union, hence the one widening cast.
  const handler = handlers[ctx.intent.type] as Handler<Intent>;
  return handler(ctx);
}
