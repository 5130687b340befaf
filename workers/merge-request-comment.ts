import type { Job } from "bullmq";
import type { Trigger } from "../src/gitlab/intents.ts";
import {
  type MergeRequestCommandIntent,
  mergeRequestReplyText,
} from "../src/gitlab/merge-request-command.ts";
import { findOnboardingIssue } from "../src/onboarding/report.ts";
import type { ReportJob } from "../src/queue/jobs.ts";
import type { WorkerRuntime } from "./runtime.ts";

type Report = (rt: WorkerRuntime, job: Job, data: ReportJob) => Promise<string>;

/** A command in an MR comment: one short reply pointing to the onboarding issue; nothing else happens. */
export async function answerMergeRequestComment(
  rt: WorkerRuntime,
  job: Job,
  intent: MergeRequestCommandIntent,
  trigger: Trigger,
  report: Report,
) {
  const me = await rt.gitlab.currentUser();
  if (me.id === intent.author.id) return { skipped: "note written by the bot itself" };
  const issue = await findOnboardingIssue(rt.gitlab, intent.project.id);
  const reply = await report(rt, job, {
    trigger,
    project: intent.project,
    mergeRequestReply: {
      mergeRequestIid: intent.mergeRequestIid,
      body: mergeRequestReplyText(issue?.iid),
      internal: intent.confidential,
    },
  });
  return { reply };
}
