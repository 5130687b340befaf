import { inScope } from "../../src/config/policy.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { Registry, registeredIdentity } from "../../src/onboarding/registry.ts";
import { mayOnboardOnFirstSight } from "../../src/policy/rules.ts";
import { markListedEnvironments } from "../environment-cleanup.ts";
import type { Handler } from "./context.ts";
import { onboardAndReport } from "./onboarding.ts";
import { firstSightCheck, identityLimitGate } from "./policy-gate.ts";
import { firstSeenKey, refuseDelivery } from "./shared.ts";
import { confirmProject } from "./truth.ts";

export const onEnvironmentSeen: Handler<Extract<Intent, { type: "environment.seen" }>> = async (ctx) => {
  const { rt, intent, trigger } = ctx;
  const key = firstSeenKey(ctx, intent.project.id);
  // The cheap filter first (policy rules, registry, first-sight record): most pipeline and job events name
  // environments that are onboarded or seen already, and those cost no GitLab call and write nothing.
  const registered = await new Registry(rt.redis, rt.config.queuePrefix).get(intent.project.id);
  const fresh: { name: string; tier?: string | undefined }[] = [];
  for (const env of intent.environments) {
    if (!mayOnboardOnFirstSight(rt.policy, env.name, env.tier)) continue;
    if (registeredIdentity(registered, env.name)) continue;
    const seenBy = await rt.redis.hget(key, env.name);
    if (seenBy === null || seenBy === trigger.eventId) fresh.push(env);
  }
  if (fresh.length === 0) return { skipped: "no environment to onboard on first sight" };

  const read = await confirmProject(ctx, intent.project);
  if (!read) return { refused: true };
  if (read.state === "pending-deletion") {
    return refuseDelivery(ctx, read.ref, "pending-deletion", `project ${read.ref.id} is pending deletion`);
  }
  if (!inScope(rt.policy, read.ref.path))
    return { skipped: `project ${read.ref.path} is outside the policy scope` };
  // One deployer per event: their role is read from GitLab once, however many environments the event names.
  const levels = new Map<number, Promise<number | null>>();
  const gitlab = {
    memberAccessLevel: (projectId: number, userId: number) => {
      let level = levels.get(userId);
      if (!level) {
        level = rt.gitlab.memberAccessLevel(projectId, userId);
        levels.set(userId, level);
      }
      return level;
    },
  };
  const passing: string[] = [];
  for (const env of fresh) {
    // The rule of the path GitLab reports; never a privileged environment without autoOnboard; and the
    // deployer's role, read from GitLab, must meet the environment's minAccessLevel.
    const check = await firstSightCheck({ policy: rt.policy, gitlab }, read.ref, env, trigger.actor?.id);
    if (!check.ok) {
      ctx.note(`first sight of ${env.name}: not onboarded: ${check.reason}`);
      continue;
    }
    passing.push(env.name);
  }
  // The project's identity limit before anything is remembered: an environment refused for it is not marked
  // seen (a pipeline naming thousands of environments must not grow the record by thousands of fields).
  const limited = await identityLimitGate(rt, read.ref.id, passing);
  const candidates: string[] = [];
  for (const name of limited.environments) {
    // First sight is remembered for good: an environment offboarded on purpose is not re-onboarded by the
    // next deployment. HSETNX makes concurrent events for the same environment onboard it once; a retry of
    // the same event finds its own id there and carries on. Recorded only once GitLab confirmed the project.
    const mine =
      (await rt.redis.hsetnx(key, name, trigger.eventId)) === 1 ||
      (await rt.redis.hget(key, name)) === trigger.eventId;
    if (mine) candidates.push(name);
  }
  if (limited.outcomes.length > 0)
    ctx.note(
      `first sight of ${limited.outcomes.length} environment(s) beyond maxIdentitiesPerProject: not onboarded`,
    );
  if (candidates.length === 0) return { skipped: "no environment to onboard on first sight" };
  ctx.note(`first sight of ${candidates.join(", ")} in a ${intent.source} event`);
  const shown = new Set(candidates);
  const refused = limited.outcomes.filter((o) => !shown.has(o.environment));
  const result = await onboardAndReport(ctx, read.project, candidates, true, refused);
  // The environment cleanup needs to know GitLab once had these (a review app may be deleted before it runs).
  await markListedEnvironments(ctx, read.ref.id, candidates);
  return result;
};
