import type { Trigger } from "../src/gitlab/intents.ts";
import type { Change, OnboardResult } from "../src/onboarding/types.ts";
import type { WorkerRuntime } from "./runtime.ts";

/** Appends one audit record per change actually made (plan-mode results change nothing and are not audited). */
export async function auditChanges(
  rt: Pick<WorkerRuntime, "audit">,
  trigger: Trigger,
  project: { id: number; path: string },
  changes: Array<{
    change: Change;
    environment?: string;
    outcome?: "ok" | "failed" | "refused";
    message?: string;
  }>,
): Promise<void> {
  for (const c of changes) {
    await rt.audit.append({
      trigger: {
        event: trigger.event,
        eventId: trigger.eventId,
        ...(trigger.actor ? { actor: trigger.actor } : {}),
      },
      project,
      ...(c.environment ? { environment: c.environment } : {}),
      change: c.change,
      outcome: c.outcome ?? "ok",
      ...(c.message ? { message: c.message } : {}),
    });
  }
}

export async function auditResult(rt: Pick<WorkerRuntime, "audit">, trigger: Trigger, result: OnboardResult) {
  if (result.mode !== "apply") return;
  await auditChanges(
    rt,
    trigger,
    result.project,
    result.environments.flatMap((env) =>
      env.changes.map((change) => ({
        change,
        environment: env.environment,
        // A refusal (e.g. an app tagged as this identity that the bot does not own) is recorded as refused.
        ...(change.op === "refuse" ? { outcome: "refused" as const } : {}),
      })),
    ),
  );
}
