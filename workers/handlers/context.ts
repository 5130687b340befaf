import type { Job } from "bullmq";
import type { Intent, IntentType, Trigger } from "../../src/gitlab/intents.ts";
import type { Logger } from "../../src/logging.ts";
import type { OnboardingDeps } from "../../src/onboarding/onboard.ts";
import type { CollisionWhere, WorkerRuntime } from "../runtime.ts";

/**
 * What every piece of work gets, once per job (Probot's Context): the runtime, the trigger that vouched for the
 * work, the BullMQ job (its log is what operators read in the queue UI) and a logger bound to the job.
 * Drift repair, which has no intent, uses this base; intent handlers get a JobContext.
 */
export interface WorkContext {
  readonly rt: WorkerRuntime;
  /** As delivered; a handler that learns the real actor from GitLab's API replaces it (withActor). */
  trigger: Trigger;
  readonly job: Job;
  readonly log: Logger;
  /** One line in the job's log. */
  note(line: string): void;
  /**
   * Onboarding dependencies writing their progress to the job's log, every Entra write audited under the
   * context's trigger; `where` labels ownership collisions (default the context's own: "onboarding", or
   * "drift" for drift repair).
   */
  onboarding(where?: CollisionWhere): OnboardingDeps;
}

export interface JobContext<I extends Intent = Intent> extends WorkContext {
  readonly intent: I;
}

export type HandlerResult = Record<string, unknown>;
export type Handler<I extends Intent> = (ctx: JobContext<I>) => Promise<HandlerResult>;

/**
 * One handler per intent type, checked at compile time: a new member of the Intent union without an entry here
 * does not compile (the pattern of octokit/webhooks.js's typed event map).
 */
export type IntentHandlers = { [K in IntentType]: Handler<Extract<Intent, { type: K }>> };

export function createWorkContext(
  rt: WorkerRuntime,
  trigger: Trigger,
  job: Job,
  log: Logger,
  where: CollisionWhere = "onboarding",
): WorkContext {
  const note = (line: string) => void job.log(line);
  return {
    rt,
    trigger,
    job,
    log,
    note,
    // Reads `this.trigger` when called, so a handler that learnt the real actor audits under it.
    onboarding(w?: CollisionWhere) {
      return rt.onboarding(note, w ?? where, this.trigger);
    },
  };
}

export function createJobContext<I extends Intent>(
  rt: WorkerRuntime,
  data: { intent: I; trigger: Trigger },
  job: Job,
  log: Logger,
): JobContext<I> {
  return { ...createWorkContext(rt, data.trigger, job, log), intent: data.intent };
}
