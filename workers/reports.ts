import type { Job } from "bullmq";
import { UnrecoverableError } from "bullmq";
import { isGitLabError } from "../src/gitlab/errors.ts";
import { assertInert, join, type SafeMarkdown, trusted } from "../src/gitlab/markdown-inert.ts";
import type { Logger } from "../src/logging.ts";
import { collisionNotes } from "../src/onboarding/collision-notes.ts";
import { withRegisteredEnvironments } from "../src/onboarding/describe.ts";
import { withLock } from "../src/onboarding/lock.ts";
import {
  replyOnMergeRequest,
  replyToCommand,
  setCiVariables,
  upsertOnboardingIssue,
} from "../src/onboarding/report.ts";
import { renderOnboardingMarkdown } from "../src/onboarding/snippet.ts";
import type { Change } from "../src/onboarding/types.ts";
import { type ParsedReportJob, reportJobSchema } from "../src/queue/jobs.ts";
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
  try {
    return await writeReport(rt, job, parsed.data);
  } catch (err) {
    if (parsed.data.bestEffort && isGitLabError(err) && !err.retryable) {
      log.info(
        { project: parsed.data.project.id, err: err.message },
        "project not reachable; report skipped",
      );
      await job.log(`project not reachable in GitLab (${err.message}): report skipped`);
      return { skipped: "project not reachable" };
    }
    throw err;
  }
}

async function writeReport(rt: WorkerRuntime, job: Job, data: ParsedReportJob): Promise<unknown> {
  const { project, trigger, result } = data;
  const changes: Change[] = [];
  const notes: SafeMarkdown[] = result ? collisionNotes(result) : [];
  const internal = data.reply?.internal === true || data.mergeRequestReply?.internal === true;

  // Bot-written notices crossed Redis in the result: re-checked before they are posted.
  notes.push(...(result?.notices ?? []).map(assertInert));

  // Only an applied outcome has identities whose client ids can go into variables.
  const ciVariablesSet = data.ciVariables && result?.mode === "apply";
  if (ciVariablesSet && result) {
    changes.push(...(await setCiVariables(rt.gitlab, project.id, result.environments, result.tenantId)));
  }
  const render = { ciVariablesSet, variant: rt.policy.snippet.variant };

  if (data.issue && result) {
    // Reports for one project can run at once (a project_create and a command, say): without the lock both
    // find no onboarding issue and both open one. Reading the registry inside it also writes the latest state.
    const issueChanges = await withLock(
      rt.redis,
      `${rt.config.queuePrefix}:lock:onboarding-issue:${project.id}`,
      async () => {
        const full = withRegisteredEnvironments(
          result,
          await rt.registry.get(project.id),
          rt.policy,
          rt.issuer,
        );
        const markdown = join([...notes, renderOnboardingMarkdown(full, render)], "\n\n");
        // Created confidential when an internal command asked for it; an existing issue keeps its visibility.
        return upsertOnboardingIssue(rt.gitlab, project.id, markdown, internal ? { confidential: true } : {});
      },
    );
    changes.push(...issueChanges);
  }

  if (data.reply) {
    // Job data crossed Redis: re-check what can be checked on the text before posting it with our rights.
    const body =
      data.reply.body !== undefined
        ? assertInert(data.reply.body)
        : result
          ? join([...notes, renderOnboardingMarkdown(result, render)], "\n\n")
          : trusted("");
    changes.push(
      ...(await replyToCommand(rt.gitlab, {
        projectId: project.id,
        issueIid: data.reply.issueIid,
        noteId: data.reply.noteId,
        body,
        react: data.reply.react,
        internal: data.reply.internal,
      })),
    );
  }

  if (data.mergeRequestReply) {
    changes.push(
      ...(await replyOnMergeRequest(rt.gitlab, {
        projectId: project.id,
        mergeRequestIid: data.mergeRequestReply.mergeRequestIid,
        body: assertInert(data.mergeRequestReply.body),
        internal: data.mergeRequestReply.internal,
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
