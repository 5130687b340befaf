import type { Trigger } from "../src/gitlab/intents.ts";
import type { Change } from "../src/onboarding/types.ts";
import type { WorkerRuntime } from "./runtime.ts";

/**
 * Appends one audit record per GitLab change a report made. Entra writes are audited where they happen
 * (src/onboarding/entra-audit.ts: intended before, outcome after).
 */
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
