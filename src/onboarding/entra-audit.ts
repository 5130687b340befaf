import type { Redis } from "ioredis";
import type { ProjectRef, Trigger } from "../gitlab/intents.ts";
import type { AuditLog } from "./audit.ts";
import { isWrite } from "./reconciler.ts";
import type { Change, EnvironmentOutcome } from "./types.ts";

/**
 * The audit protocol of every Entra write, per (event, project, environment):
 *
 * 1. BEFORE each write: its `intended` record (same Change shape as the outcome; onboarding records each one
 *    right before its write, offboarding and retirement all of their planned writes before the first), and an
 *    "open" marker in Redis for this (event, project, environment).
 * 2. AFTER the writes: one `ok` record per write made in this attempt, then ONE closing record (change op
 *    `observe`, kind `application`, target = the environment) with the outcome of the environment (`ok`,
 *    `failed`, `refused`); the marker is removed.
 *
 * A crash or a retryable failure between 1 and 2 leaves the intended records and the marker. The retry
 * (same event id: jobs keep their trigger) reads again: what attempt 1 already wrote is no longer a difference,
 * so it is neither intended nor recorded again, and because the marker is still there the retry writes the
 * closing record even when it finds nothing left to do. Reading the trail (/admin/audit, audit:export) for
 * one `trigger.eventId` + `environment`: every `intended` record is settled by the closing record that
 * follows it; an intended write without its own `ok` record was made by an earlier attempt (the closing
 * record says the identity is now as planned) or, if the closing outcome is `failed`, may not have been.
 */
export interface EntraWriteAudit {
  intended(project: ProjectRef, environment: string, changes: readonly Change[]): Promise<void>;
  settled(project: ProjectRef, outcome: EnvironmentOutcome): Promise<void>;
}

/** How long an unsettled intent is remembered (jobs retry for about an hour; failed jobs can be retried by hand). */
const OPEN_TTL_SECONDS = 30 * 24 * 3600;

export function createEntraWriteAudit(deps: {
  audit: AuditLog;
  redis: Redis;
  keyPrefix: string;
  trigger: Trigger;
  /** Also record what the outcome holds besides writes (refusals, observations). Default true. */
  findings?: boolean;
}): EntraWriteAudit {
  const { audit, redis, trigger } = deps;
  const auditTrigger = {
    event: trigger.event,
    eventId: trigger.eventId,
    ...(trigger.actor ? { actor: trigger.actor } : {}),
  };
  const openKey = (project: ProjectRef, environment: string) =>
    `${deps.keyPrefix}:audit:open:${trigger.eventId}:${project.id}:${environment}`;

  return {
    async intended(project, environment, changes) {
      if (changes.length === 0) return;
      // The marker first: a crash after it and before the records costs one closing record with no intent.
      await redis.set(openKey(project, environment), String(changes.length), "EX", OPEN_TTL_SECONDS);
      for (const change of changes) {
        await audit.append({ trigger: auditTrigger, project, environment, change, outcome: "intended" });
      }
    },

    async settled(project, outcome) {
      const environment = outcome.environment;
      const key = openKey(project, environment);
      const open = (await redis.get(key)) !== null;
      for (const change of outcome.changes) {
        if (!isWrite(change) && deps.findings === false) continue;
        // A refusal (an app tagged as this identity that the bot does not own alone) is recorded as refused.
        const result = change.op === "refuse" ? "refused" : "ok";
        await audit.append({ trigger: auditTrigger, project, environment, change, outcome: result });
      }
      if (!open) return;
      const result =
        outcome.status === "failed" ? "failed" : outcome.status === "refused" ? "refused" : ("ok" as const);
      await audit.append({
        trigger: auditTrigger,
        project,
        environment,
        change: {
          op: "observe",
          kind: "application",
          target: environment,
          ...(outcome.identity ? { objectId: outcome.identity.appObjectId } : {}),
          detail: `settles the intended writes of event ${trigger.eventId}: ${outcome.status}, ${outcome.changes.length} write(s) in this attempt`,
        },
        outcome: result,
        ...(outcome.message ? { message: outcome.message } : {}),
      });
      await redis.del(key);
    },
  };
}
