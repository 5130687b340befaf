import { environmentRule, inScope } from "../../src/config/policy.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { Registry, registeredIdentity } from "../../src/onboarding/registry.ts";
import type { Handler } from "./context.ts";
import { onboardAndReport } from "./onboarding.ts";
import { firstSeenKey, refuseDelivery } from "./shared.ts";
import { confirmProject } from "./truth.ts";

export const onEnvironmentSeen: Handler<Extract<Intent, { type: "environment.seen" }>> = async (ctx) => {
  const { rt, intent, trigger } = ctx;
  const key = firstSeenKey(ctx, intent.project.id);
  // The cheap filter first (policy rule, registry, first-sight record): most pipeline and job events name
  // environments that are onboarded or seen already, and those cost no GitLab call and write nothing.
  const registered = await new Registry(rt.redis, rt.config.queuePrefix).get(intent.project.id);
  const fresh: string[] = [];
  for (const env of intent.environments) {
    const rule = environmentRule(rt.policy, env.name, env.tier);
    if (!rule?.policy.onFirstDeployment) continue;
    if (registeredIdentity(registered, env.name)) continue;
    const seenBy = await rt.redis.hget(key, env.name);
    if (seenBy === null || seenBy === trigger.eventId) fresh.push(env.name);
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
  for (const name of fresh) {
    // First sight is remembered for good: an environment offboarded on purpose is not re-onboarded by the
    // next deployment. HSETNX makes concurrent events for the same environment onboard it once; a retry of
    // the same event finds its own id there and carries on. Recorded only once GitLab confirmed the project.
    const mine =
      (await rt.redis.hsetnx(key, name, trigger.eventId)) === 1 ||
      (await rt.redis.hget(key, name)) === trigger.eventId;
    if (mine) candidates.push(name);
  }
  if (candidates.length === 0) return { skipped: "no environment to onboard on first sight" };
  ctx.note(`first sight of ${candidates.join(", ")} in a ${intent.source} event`);
  return onboardAndReport(ctx, read.project, candidates, true);
};
