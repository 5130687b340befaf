import { randomUUID } from "node:crypto";
import type { ProjectRef } from "../../src/gitlab/intents.ts";
import { metrics } from "../../src/http/metrics.ts";
import { type AuditRecordInput, AuditValidationError } from "../../src/onboarding/audit.ts";
import {
  type BudgetVerdict,
  REFUSAL_AUDIT_BUDGET,
  takeAuditBudget,
} from "../../src/onboarding/audit-budget.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";
import type { ReportJob } from "../../src/queue/jobs.ts";
import type { WorkContext } from "./context.ts";

/**
 * Report jobs get an id derived from the event job, so a retried event job does not report twice; `part`
 * tells apart the reports of one event that concerns several projects (a group rename).
 */
export async function report(ctx: WorkContext, data: ReportJob, part?: string): Promise<string> {
  const jobId = `report-${ctx.job.id ?? randomUUID()}${part ? `-${part}` : ""}`;
  await ctx.rt.queues.reports.add("report", data, { jobId });
  return jobId;
}

/** One hash per project: environment name -> the event that first saw it. */
export function firstSeenKey(ctx: WorkContext, projectId: number): string {
  return `${ctx.rt.config.queuePrefix}:first-seen:${projectId}`;
}

export function summary(result: OnboardResult): Record<string, string> {
  return Object.fromEntries(
    result.environments.map((e) => [e.environment, `${e.status} (${e.changes.length} changes)`]),
  );
}

/** Audit fields are bounded; a hostile payload's path must not be able to push a record over them. */
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function auditedProject(project: ProjectRef): ProjectRef {
  return { id: project.id, path: clip(project.path, 500) };
}

/**
 * The worker declines a delivery: GitLab's API does not confirm what it says, or it speaks beyond the secret
 * that vouched for it. Nothing is written to Entra or GitLab; the refusal is logged, counted
 * (geb_deliveries_refused_total{stage="worker"}) and audited as {op:"refuse", kind:"delivery"}, "refused".
 */
export async function refuseDelivery(
  ctx: WorkContext,
  project: ProjectRef,
  reason: string,
  detail: string,
): Promise<{ refused: string }> {
  metrics.deliveriesRefusedTotal.inc({ stage: "worker", reason });
  ctx.log.warn({ reason, project: project.id, detail }, "delivery refused: GitLab's API does not confirm it");
  ctx.note(`refused (${reason}): ${detail}`);
  await appendDeliveryRecord(ctx, {
    trigger: auditTrigger(ctx),
    project: auditedProject(project),
    change: {
      op: "refuse",
      kind: "delivery",
      target: clip(ctx.trigger.event, 200),
      detail: clip(detail, 2000),
    },
    outcome: "refused",
    message: reason,
  });
  return { refused: reason };
}

/**
 * The delivery said something GitLab's API contradicts, and the worker carries on with GitLab's version
 * (a payload path that is not the project's path, a note author who did not write the note): logged and
 * audited as {op:"observe", kind:"delivery"}; the work that follows acts on the API's answer only.
 */
export async function observeDelivery(
  ctx: WorkContext,
  project: ProjectRef,
  reason: string,
  detail: string,
): Promise<void> {
  ctx.log.warn({ reason, project: project.id, detail }, "delivery contradicted by GitLab's API");
  ctx.note(`observed (${reason}): ${detail}`);
  await appendDeliveryRecord(ctx, {
    trigger: auditTrigger(ctx),
    project: auditedProject(project),
    change: {
      op: "observe",
      kind: "delivery",
      target: clip(ctx.trigger.event, 200),
      detail: clip(detail, 2000),
    },
    outcome: "ok",
    message: reason,
  });
}

function sourceName(ctx: WorkContext): string {
  const source = ctx.trigger.source;
  return source.kind === "namespace" ? `namespace:${source.namespace.toLowerCase()}` : source.kind;
}

/**
 * One unit of the audit budget of the delivery's source for records of this kind (audit-budget.ts): what a
 * delivery the worker refuses names is the sender's to vary, so such records are bounded per source.
 */
export function deliveryAuditBudget(ctx: WorkContext, kind: string): Promise<BudgetVerdict> {
  return takeAuditBudget(ctx.rt.redis, ctx.rt.config.queuePrefix, `worker:${sourceName(ctx)}:${kind}`);
}

/**
 * A hostile payload can carry text the audit trail refuses (a token-shaped path): the record is still written,
 * without the payload's words, so a forged delivery can neither hide nor make the job fail and retry.
 */
async function appendDeliveryRecord(ctx: WorkContext, rec: AuditRecordInput): Promise<void> {
  // Deliveries the worker refuses or contradicts cost a bounded number of records per source and reason.
  const who = sourceName(ctx);
  const budget = await deliveryAuditBudget(ctx, `${rec.change.op}:${rec.message ?? ""}`);
  if (budget === "over") return;
  if (budget === "exhausted") {
    await ctx.rt.audit.append({
      trigger: {
        event: "(many)",
        eventId: rec.trigger.eventId.replace(/[^\w.:-]/g, "_").slice(0, 200) || "-",
      },
      change: { op: rec.change.op, kind: "delivery", target: "delivery", detail: who },
      outcome: rec.outcome,
      message: `more than ${REFUSAL_AUDIT_BUDGET} deliveries of this source were ${rec.change.op === "refuse" ? "refused" : "contradicted by GitLab"} (${rec.message ?? "?"}) within a minute: the rest of this minute's are logged and counted, not recorded here one by one`,
    });
    return;
  }
  try {
    await ctx.rt.audit.append(rec);
  } catch (err) {
    if (!(err instanceof AuditValidationError)) throw err;
    await ctx.rt.audit.append({
      ...rec,
      trigger: {
        event: "(withheld)",
        eventId: rec.trigger.eventId.replace(/[^\w.:-]/g, "_").slice(0, 200) || "-",
      },
      ...(rec.project ? { project: { id: rec.project.id, path: `project-${rec.project.id}` } } : {}),
      change: { ...rec.change, target: "delivery", detail: "(withheld: the delivery held secret-like text)" },
    });
  }
}

function auditTrigger(ctx: WorkContext) {
  const t = ctx.trigger;
  return {
    event: clip(t.event, 200),
    eventId: clip(t.eventId, 200),
    ...(t.actor ? { actor: { id: t.actor.id, username: clip(t.actor.username, 255) } } : {}),
  };
}
