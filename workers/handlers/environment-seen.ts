import { inScope, type Policy } from "../../src/config/policy.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { Registry, registeredIdentity } from "../../src/onboarding/registry.ts";
import { allRules, environmentIn, onboardsAutomatically } from "../../src/policy/rules.ts";
import type { Handler } from "./context.ts";
import { onboardAndReport } from "./onboarding.ts";
import { firstSightCheck, identityLimitGate } from "./policy-gate.ts";
import { firstSeenKey, refuseDelivery } from "./shared.ts";
import { confirmProject } from "./truth.ts";

/**
 * Whether any rule could onboard this environment on first sight. Path-independent on purpose: the rule that
 * really applies is the one of the path GitLab reports, known only after the re-read (firstSightCheck).
 */
function mayOnboardOnFirstSight(policy: Policy, name: string, tier: string | undefined): boolean {
  return allRules(policy).some((rule) => {
    const d = environmentIn(rule, name, tier);
    return d?.settings.onFirstDeployment === true && onboardsAutomatically(d);
  });
}

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
  const candidates: string[] = [];
  for (const env of fresh) {
    // The rule of the path GitLab reports; never a privileged environment without autoOnboard; and the
    // deployer's role, read from GitLab, must meet the environment's minAccessLevel.
    const check = await firstSightCheck(rt, read.ref, env, trigger.actor?.id);
    if (!check.ok) {
      ctx.note(`first sight of ${env.name}: not onboarded: ${check.reason}`);
      continue;
    }
    // First sight is remembered for good: an environment offboarded on purpose is not re-onboarded by the
    // next deployment. HSETNX makes concurrent events for the same environment onboard it once; a retry of
    // the same event finds its own id there and carries on. Recorded only once GitLab confirmed the project.
    const mine =
      (await rt.redis.hsetnx(key, env.name, trigger.eventId)) === 1 ||
      (await rt.redis.hget(key, env.name)) === trigger.eventId;
    if (mine) candidates.push(env.name);
  }
  if (candidates.length === 0) return { skipped: "no environment to onboard on first sight" };
  ctx.note(`first sight of ${candidates.join(", ")} in a ${intent.source} event`);
  const limited = await identityLimitGate(rt, read.ref.id, candidates);
  return onboardAndReport(ctx, read.project, limited.environments, true, limited.outcomes);
};
