import { randomUUID } from "node:crypto";
import type { Job } from "bullmq";
import { doctorReply } from "../src/doctor/reply.ts";
import { NAME_ENVIRONMENTS, unknownCommandPreface } from "../src/gitlab/command-replies.ts";
import { helpText, parseCommand } from "../src/gitlab/commands.ts";
import type { Intent, Trigger } from "../src/gitlab/intents.ts";
import { md, type SafeMarkdown, trusted } from "../src/gitlab/markdown-inert.ts";
import type { Logger } from "../src/logging.ts";
import { authorizeCommand } from "../src/onboarding/authorize.ts";
import { moveProject, offboardProject, onboardProject, projectStatus } from "../src/onboarding/onboard.ts";
import { parseSnippetArgs, snippetReply } from "../src/onboarding/snippet-command.ts";
import type { EnvironmentOutcome, OnboardResult } from "../src/onboarding/types.ts";
import { projectRule } from "../src/policy/rules.ts";
import type { EventJob, ReportJob } from "../src/queue/jobs.ts";
import { approveCommand } from "./approve-command.ts";
import { answerMergeRequestComment } from "./merge-request-comment.ts";
import { onboardCommand } from "./onboard-command.ts";
import { commandLimitMessage, firstSightCheck, identityLimitGate, onCreateGate } from "./policy-gate.ts";
import type { WorkerRuntime } from "./runtime.ts";

type CommandIntent = Extract<Intent, { type: "command" }>;

/**
 * Report jobs get an id derived from the event job, so a retried event job does not report twice; `part`
 * tells apart the reports of one event that concerns several projects (a group rename).
 */
async function report(rt: WorkerRuntime, job: Job, data: ReportJob, part?: string): Promise<string> {
  const jobId = `report-${job.id ?? randomUUID()}${part ? `-${part}` : ""}`;
  await rt.queues.reports.add("report", data, { jobId });
  return jobId;
}

/** One hash per project: environment name -> the event that first saw it. */
function firstSeenKey(rt: WorkerRuntime, projectId: number): string {
  return `${rt.config.queuePrefix}:first-seen:${projectId}`;
}

function wantsSubClaim(rt: WorkerRuntime): boolean {
  return rt.policy.gitlab.subClaimComponents[0] === "project_id";
}

function summary(result: OnboardResult): Record<string, string> {
  return Object.fromEntries(
    result.environments.map((e) => [e.environment, `${e.status} (${e.changes.length} changes)`]),
  );
}

async function onProjectCreated(
  rt: WorkerRuntime,
  job: Job,
  intent: Extract<Intent, { type: "project.created" }>,
  trigger: Trigger,
) {
  // Privileged environments are never granted by creating a project (unless autoOnboard): they are listed
  // in the onboarding issue with how to request them.
  const gate = onCreateGate(rt.policy, intent.project);
  if (gate.environments.length + gate.outcomes.length === 0)
    return { skipped: "policy onProjectCreate.environments is empty" };
  const limited = await identityLimitGate(rt, intent.project.id, gate.environments);
  return onboardAndReport(
    rt,
    job,
    trigger,
    intent.project,
    limited.environments,
    gate.rule.onProjectCreate.openIssue,
    [...gate.outcomes, ...limited.outcomes],
  );
}

/** Automatic onboarding (no command): apply, audit, then report with the project-creation settings. */
async function onboardAndReport(
  rt: WorkerRuntime,
  job: Job,
  trigger: Trigger,
  project: { id: number; path: string },
  environments: string[],
  issue: boolean,
  extra: EnvironmentOutcome[] = [],
) {
  const onboarded = await onboardProject(
    rt.onboarding((l) => void job.log(l), "onboarding", trigger),
    { project, environments, mode: "apply" },
  );
  const result = { ...onboarded, environments: [...onboarded.environments, ...extra] };
  const reportId = await report(rt, job, {
    trigger,
    project,
    result,
    subClaim: wantsSubClaim(rt),
    ciVariables: projectRule(rt.policy, project.path).onProjectCreate.setCiVariables,
    issue,
  });
  return { environments: summary(result), report: reportId };
}

async function onEnvironmentSeen(
  rt: WorkerRuntime,
  job: Job,
  intent: Extract<Intent, { type: "environment.seen" }>,
  trigger: Trigger,
) {
  const registered = await rt.registry.get(intent.project.id);
  const candidates: string[] = [];
  for (const env of intent.environments) {
    if (registered && Object.hasOwn(registered.environments, env.name)) continue;
    const check = await firstSightCheck(rt, intent.project, env, trigger.actor?.id);
    if (!check.ok) {
      await job.log(`first sight of ${env.name}: not onboarded: ${check.reason}`);
      continue;
    }
    // First sight is remembered for good: an environment offboarded on purpose is not re-onboarded by the
    // next deployment. HSETNX makes concurrent events for the same environment onboard it once; a retry of
    // the same event finds its own id there and carries on.
    const key = firstSeenKey(rt, intent.project.id);
    const mine =
      (await rt.redis.hsetnx(key, env.name, trigger.eventId)) === 1 ||
      (await rt.redis.hget(key, env.name)) === trigger.eventId;
    if (mine) candidates.push(env.name);
  }
  if (candidates.length === 0) return { skipped: "no environment to onboard on first sight" };
  await job.log(`first sight of ${candidates.join(", ")} in a ${intent.source} event`);
  const limited = await identityLimitGate(rt, intent.project.id, candidates);
  return onboardAndReport(rt, job, trigger, intent.project, limited.environments, true, limited.outcomes);
}

async function onCommand(rt: WorkerRuntime, job: Job, intent: CommandIntent, trigger: Trigger, log: Logger) {
  const me = await rt.gitlab.currentUser();
  if (me.id === intent.author.id) return { skipped: "note written by the bot itself" };
  const command = parseCommand(intent.line);
  if (!command) return { skipped: "no /entra command" };
  const base = { trigger, project: intent.project };
  const reply = (body?: SafeMarkdown, react: "thumbsup" | "eyes" | false = "thumbsup") => ({
    issueIid: intent.issueIid,
    noteId: intent.noteId,
    ...(body !== undefined ? { body } : {}),
    react,
    // Internal in, internal out (the flag is decided upstream from GitLab; here it is only carried).
    internal: intent.confidential,
  });

  if (command.kind === "help" || command.kind === "unknown") {
    const preface =
      command.kind === "unknown" ? unknownCommandPreface(command.word, command.suggestion) : trusted("");
    return {
      reply: await report(rt, job, {
        ...base,
        reply: reply(
          md`${preface}${helpText(rt.policy, intent.project.path)}`,
          command.kind === "help" ? "thumbsup" : false,
        ),
      }),
    };
  }
  const toReport = (data: ReportJob) => report(rt, job, data);
  if (command.kind === "approve") return approveCommand(rt, job, intent, trigger, log, toReport);

  const envs =
    command.kind === "onboard" || command.kind === "plan"
      ? command.environments.length
        ? command.environments
        : projectRule(rt.policy, intent.project.path).onProjectCreate.environments
      : command.kind === "offboard"
        ? command.environments.length
          ? command.environments
          : Object.keys((await rt.registry.get(intent.project.id))?.environments ?? {})
        : [];
  // The limit is on what a comment names; defaults (the rule's, or every identity to offboard) are the policy's.
  const tooMany =
    "environments" in command ? commandLimitMessage(rt.policy, command.environments) : undefined;
  if (tooMany)
    return { refused: true, reply: await report(rt, job, { ...base, reply: reply(tooMany, false) }) };
  const auth = await authorizeCommand(rt.gitlab, rt.policy, intent.project.id, intent.author.id, envs, {
    removal: command.kind === "offboard",
    projectPath: intent.project.path,
  });
  if (!auth.ok) {
    log.info({ user: intent.author.username, command: command.kind }, "command refused");
    await job.log(`refused: ${auth.message}`);
    return { refused: true, reply: await report(rt, job, { ...base, reply: reply(auth.message, false) }) };
  }

  const deps = rt.onboarding((l) => void job.log(l), "onboarding", trigger);
  switch (command.kind) {
    case "onboard":
    case "plan": {
      if (envs.length === 0) {
        return {
          reply: await report(rt, job, {
            ...base,
            reply: reply(NAME_ENVIRONMENTS, false),
          }),
        };
      }
      if (command.kind === "onboard") return onboardCommand(rt, job, intent, trigger, envs, toReport);
      const result = await onboardProject(deps, {
        project: intent.project,
        environments: envs,
        mode: "plan",
      });
      return {
        environments: summary(result),
        reply: await report(rt, job, { ...base, result, reply: reply() }),
      };
    }
    case "status": {
      const result = await projectStatus(deps, intent.project.id);
      return {
        environments: summary(result),
        reply: await report(rt, job, { ...base, result, reply: reply() }),
      };
    }
    case "offboard": {
      const result = await offboardProject(
        rt.onboarding((l) => void job.log(l), "offboarding", trigger),
        {
          projectId: intent.project.id,
          environments: envs,
          mode: "apply",
        },
      );
      return {
        environments: summary(result),
        reply: await report(rt, job, { ...base, result, reply: reply() }),
      };
    }
    case "snippet": {
      const body = snippetReply({
        project: intent.project,
        registered: await rt.registry.get(intent.project.id),
        policy: rt.policy,
        issuer: rt.issuer,
        tenantId: rt.tenantId,
        request: parseSnippetArgs(command.args, rt.policy.snippet.variant),
      });
      return { reply: await report(rt, job, { ...base, reply: reply(body) }) };
    }
    case "doctor": {
      const body = await doctorReply(
        { graph: rt.graph, policy: rt.policy, issuer: rt.issuer, registry: rt.registry, audit: rt.audit },
        intent.project.id,
        command.rest,
      );
      return { reply: await report(rt, job, { ...base, reply: reply(body) }) };
    }
  }
}

/** Routes one intent to its work. Throws retryable errors (BullMQ retries); permanent ones end in a report. */
export async function handleIntent(rt: WorkerRuntime, { intent, trigger }: EventJob, job: Job, log: Logger) {
  switch (intent.type) {
    case "project.created":
      return onProjectCreated(rt, job, intent, trigger);
    case "environment.seen":
      return onEnvironmentSeen(rt, job, intent, trigger);
    case "command":
      return onCommand(rt, job, intent, trigger, log);
    case "mergeRequest.comment":
      return answerMergeRequestComment(rt, job, intent, trigger, report);
    case "project.destroyed": {
      // Stale credentials on a path that can be reused are a takeover risk: remove everything, from Entra's tags.
      const result = await offboardProject(
        rt.onboarding((l) => void job.log(l), "offboarding", trigger),
        {
          projectId: intent.project.id,
          mode: "apply",
        },
      );
      await rt.registry.removeProject(intent.project.id);
      await rt.redis.del(firstSeenKey(rt, intent.project.id));
      return { environments: summary(result) };
    }
    case "project.moved": {
      const registered = await rt.registry.get(intent.project.id);
      const result = await moveProject(
        rt.onboarding((l) => void job.log(l), "onboarding", trigger),
        { project: intent.project },
      );
      if (result.environments.length === 0) return { skipped: "project has no identities" };
      // The issue shows the project path; keep it true. The variables are re-checked (reads only when
      // unchanged) so that the issue keeps saying they are set rather than listing the client ids.
      const reportId = registered
        ? await report(rt, job, {
            trigger,
            project: intent.project,
            result,
            issue: true,
            ciVariables: rt.policy.onProjectCreate.setCiVariables,
          })
        : undefined;
      return { environments: summary(result), ...(reportId ? { report: reportId } : {}) };
    }
    case "namespace.renamed": {
      // GitLab sends no per-project event when a group or user is renamed, though every path below changes.
      const affected = await rt.registry.findByPathPrefix(`${intent.oldPath}/`);
      const moved: Record<string, string> = {};
      for (const p of affected) {
        const path = `${intent.newPath}${p.path.slice(intent.oldPath.length)}`;
        const project = { id: p.projectId, path };
        const result = await moveProject(
          rt.onboarding((l) => void job.log(l), "onboarding", trigger),
          { project },
        );
        moved[String(p.projectId)] = path;
        // As for a project rename: the onboarding issue's snippets name the path; keep them true.
        if (result.environments.length > 0)
          await report(
            rt,
            job,
            { trigger, project, result, issue: true, ciVariables: rt.policy.onProjectCreate.setCiVariables },
            `p${p.projectId}`,
          );
      }
      return { moved };
    }
  }
}
