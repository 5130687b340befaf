import type { Job } from "bullmq";
import { UnrecoverableError } from "bullmq";
import type { Logger } from "../src/logging.ts";
import { collisionNotes } from "../src/onboarding/collision-notes.ts";
import { withRegisteredEnvironments } from "../src/onboarding/describe.ts";
import { replyToCommand, setCiVariables, upsertOnboardingIssue } from "../src/onboarding/report.ts";
import { renderOnboardingMarkdown } from "../src/onboarding/snippet.ts";
import type { Change } from "../src/onboarding/types.ts";
import { reportJobSchema } from "../src/queue/jobs.ts";
import { auditChanges } from "./audit-changes.ts";
import type { WorkerRuntime } from "./runtime.ts";

/**
 * Reports an outcome in GitLab. Every step reads before it writes, so a retry after a GitLab outage redoes
 * only what is missing, and never the Entra work that produced the outcome.
 */
export async function handleReport(rt: WorkerRuntime, job: Job, log: Logger): Promise<unknown> {
  const parsed = reportJobSchema.safeParse(job.data);
  if (!parsed.success) {
    throw new UnrecoverableError(
      `JOB_DATA_INVALID: report job data does not match its schema (${parsed.error.issues[0]?.path.join(".")})`,
    );
  }
  const data = parsed.data;
  const { project, trigger, result } = data;
  const changes: Change[] = [];
  const notes: string[] = result ? collisionNotes(result) : [];

  if (data.subClaim && result) {
    const components = result.subClaimComponents;
    const r = await rt.gitlab.setSubClaimComponents(project.id, components);
    if (r.status === "updated") {
      changes.push({
        op: "update",
        kind: "projectSetting",
        target: "ci_id_token_sub_claim_components",
        detail: components.join(","),
      });
    } else if (r.status === "unsupported") {
      notes.push(
        `> **Action needed**: the policy issues credentials for \`${components.join(", ")}\` subjects, but this GitLab refused to set the project's ID-token subject (${r.reason}). Until it is set, pipelines' tokens will not match. An administrator can set \`ci_id_token_sub_claim_components\` with \`PUT /projects/${project.id}\`, or the platform team can switch the policy to \`project_path\` subjects.`,
      );
      log.warn({ project: project.id, reason: r.reason }, "sub claim components unsupported");
    }
  }

  // Only an applied outcome has identities whose client ids can go into variables.
  const ciVariablesSet = data.ciVariables && result?.mode === "apply";
  if (ciVariablesSet && result) {
    changes.push(...(await setCiVariables(rt.gitlab, project.id, result.environments, result.tenantId)));
  }

  if (data.issue && result) {
    const full = withRegisteredEnvironments(result, await rt.registry.get(project.id), rt.policy, rt.issuer);
    const markdown = [...notes, renderOnboardingMarkdown(full, { ciVariablesSet })].join("\n\n");
    changes.push(...(await upsertOnboardingIssue(rt.gitlab, project.id, markdown)));
  }

  if (data.reply) {
    const body =
      data.reply.body ??
      (result ? [...notes, renderOnboardingMarkdown(result, { ciVariablesSet })].join("\n\n") : "");
    changes.push(
      ...(await replyToCommand(rt.gitlab, {
        projectId: project.id,
        issueIid: data.reply.issueIid,
        noteId: data.reply.noteId,
        body,
        react: data.reply.react,
      })),
    );
  }

  await auditChanges(
    rt,
    trigger,
    project,
    changes.map((change) => ({ change })),
  );
  for (const c of changes) await job.log(`${c.op} ${c.kind} ${c.target}${c.detail ? ` (${c.detail})` : ""}`);
  return { changes: changes.length };
}
