import type { Job } from "bullmq";
import type { Trigger } from "../src/gitlab/intents.ts";
import { metrics } from "../src/http/metrics.ts";
import { isWrite } from "../src/onboarding/reconciler.ts";
import type { OnboardResult } from "../src/onboarding/types.ts";
import { auditChanges } from "./audit-changes.ts";
import type { WorkerRuntime } from "./runtime.ts";

/** A finding stays quiet this long after it was recorded; one that persists is recorded again after it. */
const FINDING_TTL_SECONDS = 24 * 3600;

/**
 * What a read-only pass (drift repair's plan) found without writing anything: apps tagged as an identity that
 * the bot does not own (refuse) and memberships in groups no policy rule names (observe). Each goes to the job
 * log every time, and to the audit trail and metrics once a day per finding (SET NX with a TTL), so an hourly
 * drift check reports a standing condition without flooding the trail.
 */
export async function recordFindings(
  rt: Pick<WorkerRuntime, "audit" | "redis" | "config">,
  trigger: Trigger,
  result: OnboardResult,
  job: Pick<Job, "log">,
): Promise<number> {
  let recorded = 0;
  for (const env of result.environments) {
    for (const change of env.changes.filter((c) => !isWrite(c))) {
      await job.log(
        `${env.environment}: ${change.op === "refuse" ? "refused" : "observed"} ${change.kind} ${change.target}${change.detail ? ` (${change.detail})` : ""}`,
      );
      const key = `${rt.config.queuePrefix}:finding:${result.project.id}:${env.environment}:${change.op}:${change.kind}:${change.target}`;
      if ((await rt.redis.set(key, trigger.eventId, "EX", FINDING_TTL_SECONDS, "NX")) !== "OK") continue;
      recorded += 1;
      if (change.op === "observe" && change.kind === "groupMembership") {
        metrics.driftFoundTotal.inc({ kind: "unmanagedGroupMembership" });
      }
      await auditChanges(rt, trigger, result.project, [
        {
          change,
          environment: env.environment,
          ...(change.op === "refuse" ? { outcome: "refused" as const } : {}),
        },
      ]);
    }
  }
  return recorded;
}
