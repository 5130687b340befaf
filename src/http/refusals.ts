import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Actor, ProjectRef } from "../gitlab/intents.ts";
import type { Logger } from "../logging.ts";
import type { AuditRecordInput } from "../onboarding/audit.ts";
import { REFUSAL_AUDIT_BUDGET, takeAuditBudget } from "../onboarding/audit-budget.ts";
import { sourceKey, sourceLabel, type WebhookSource } from "./delivery-auth.ts";
import { metrics } from "./metrics.ts";

/**
 * Deliveries refused at intake although a valid secret vouched for them: the secret's source may not say
 * this (a group hook secret sending a System Hook or naming a project outside its namespace), or a signing
 * source sent it unsigned or with a signature we cannot verify. Strangers without any valid secret get a
 * 401 and a log line only: auditing them would let anyone fill the audit trail, which is never trimmed.
 */
export type RefusalReason = "system_hook" | "outside_namespace" | "unsigned" | "bad_signature";

export interface Refusal {
  reason: RefusalReason;
  status: 401 | 403;
  message: string;
  source: WebhookSource;
  event: string;
  eventId: string;
  /** The project the payload names, as it names it (absent when it names none). */
  project?: ProjectRef;
  actor?: Actor;
  requestId?: string;
}

export type RecordRefusal = (r: Refusal) => Promise<void>;

/**
 * At most one audit record per (source, reason, project, event) and minute: a secret holder replaying a
 * refused delivery in a loop is counted and logged every time but cannot grow the audit stream without bound.
 */
const AUDIT_REPEAT_MS = 60_000;

export function createRefusalRecorder(opts: {
  logger: Logger;
  audit?: { append(rec: AuditRecordInput): Promise<string> };
  /** For the repeat limit; without it every refusal is audited. */
  redis?: Redis;
  keyPrefix?: string;
}): RecordRefusal {
  return async (r) => {
    metrics.deliveriesRefusedTotal.inc({ stage: "intake", reason: r.reason });
    opts.logger.warn(
      {
        reason: r.reason,
        source: sourceKey(r.source),
        gitlabEvent: r.event,
        project: r.project,
        reqId: r.requestId,
      },
      `delivery refused: ${r.message}`,
    );
    if (!opts.audit) return;
    try {
      if (opts.redis && opts.keyPrefix) {
        const id = createHash("sha256")
          .update(JSON.stringify([sourceKey(r.source), r.reason, r.project ?? null, r.event]))
          .digest("hex");
        const first = await opts.redis.set(
          `${opts.keyPrefix}:refusal-audited:${id}`,
          "1",
          "PX",
          AUDIT_REPEAT_MS,
          "NX",
        );
        if (first !== "OK") return;
        // Distinct refusals too: the project, path and event name are the sender's to vary.
        const budget = await takeAuditBudget(
          opts.redis,
          opts.keyPrefix,
          `intake:${sourceKey(r.source)}:${r.reason}`,
        );
        if (budget === "over") return;
        if (budget === "exhausted") {
          await opts.audit.append({
            trigger: {
              event: r.event.slice(0, 200) || "(none)",
              eventId: r.eventId.slice(0, 200) || "(none)",
            },
            change: {
              op: "refuse",
              kind: "delivery",
              target: sourceLabel(r.source),
              detail: r.reason,
            },
            outcome: "refused",
            message: `more than ${REFUSAL_AUDIT_BUDGET} deliveries of this source were refused (${r.reason}) within a minute: the rest of this minute's are counted in geb_deliveries_refused_total and logged, not recorded here one by one`,
          });
          return;
        }
      }
      await opts.audit.append({
        trigger: {
          event: r.event.slice(0, 200) || "(none)",
          eventId: r.eventId.slice(0, 200) || "(none)",
          ...(r.actor ? { actor: r.actor } : {}),
        },
        ...(r.project ? { project: { id: r.project.id, path: r.project.path.slice(0, 2048) } } : {}),
        change: {
          op: "refuse",
          kind: "delivery",
          target: sourceLabel(r.source),
          detail: r.reason,
        },
        outcome: "refused",
        message: r.message.slice(0, 4000),
        ...(r.requestId ? { requestId: r.requestId.slice(0, 200) } : {}),
      });
    } catch (err) {
      // The refusal stands (the answer is already decided); only its audit record is missing, and the log says so.
      opts.logger.error(
        { err: (err as Error).message, reason: r.reason },
        "could not audit a refused delivery",
      );
    }
  };
}
