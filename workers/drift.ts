import type { Job } from "bullmq";
import { isGitLabError } from "../src/gitlab/errors.ts";
import type { Trigger } from "../src/gitlab/intents.ts";
import { metrics } from "../src/http/metrics.ts";
import type { Logger } from "../src/logging.ts";
import { moveProject, onboardProject, projectStatus } from "../src/onboarding/onboard.ts";
import { isWrite } from "../src/onboarding/reconciler.ts";
import { recordFindings } from "./findings.ts";
import type { WorkerRuntime } from "./runtime.ts";

export const DRIFT_SCHEDULER_ID = "drift-repair";

/**
 * Reconciles every registered project with the same code as onboarding: a plan first (reads only), then
 * an apply only where the plan found differences. Also catches renames GitLab did not tell us about
 * (GitLab.com sends no rename events to group hooks; the bot may have been down).
 */
export async function repairDrift(rt: WorkerRuntime, job: Job, log: Logger) {
  const trigger: Trigger = {
    event: "drift-repair",
    eventId: `drift-${job.id}`,
    receivedAt: new Date().toISOString(),
    source: { kind: "internal" },
    signed: false,
  };
  // Its writes are audited as they happen (intended, then done); findings once a day by recordFindings.
  const deps = rt.onboarding((l) => void job.log(l), "drift", trigger);
  const report = { projects: 0, renamed: 0, repaired: 0, driftFound: 0, missing: 0, findings: 0 };
  for (const project of await rt.registry.list()) {
    report.projects += 1;
    let path = project.path;
    try {
      const live = await rt.gitlab.getProject(project.projectId);
      if (live.pathWithNamespace !== project.path) {
        metrics.driftFoundTotal.inc({ kind: "project-path" });
        await job.log(`project ${project.projectId} moved: ${project.path} -> ${live.pathWithNamespace}`);
        await moveProject(deps, {
          project: { id: project.projectId, path: live.pathWithNamespace },
        });
        metrics.driftRepairedTotal.inc({ kind: "project-path" });
        report.renamed += 1;
        path = live.pathWithNamespace;
        continue;
      }
    } catch (err) {
      if (isGitLabError(err) && err.status === 404) {
        // Deleted while we were not listening, or our token lost access: never offboard on a guess.
        report.missing += 1;
        log.warn(
          { project: project.projectId, path: project.path },
          "registered project not found in GitLab; run /entra offboard or check the bot's access",
        );
        await job.log(`project ${project.projectId} (${project.path}) not found in GitLab: left alone`);
        continue;
      }
      throw err;
    }
    const plan = await projectStatus(deps, project.projectId);
    // Look-alike apps and memberships in groups no rule names: reported, never repaired.
    report.findings += await recordFindings(rt, trigger, plan, job);
    const drifted = plan.environments.filter((e) => e.status === "would-change");
    if (drifted.length === 0) continue;
    for (const env of drifted) {
      const writes = env.changes.filter(isWrite);
      for (const c of writes) metrics.driftFoundTotal.inc({ kind: c.kind });
      report.driftFound += writes.length;
    }
    const result = await onboardProject(deps, {
      project: { id: project.projectId, path },
      environments: drifted.map((e) => e.environment),
      mode: "apply",
    });
    for (const env of result.environments) {
      const writes = env.changes.filter(isWrite);
      for (const c of writes) metrics.driftRepairedTotal.inc({ kind: c.kind });
      report.repaired += writes.length;
    }
  }
  await job.log(`drift repair: ${JSON.stringify(report)}`);
  return report;
}
