import { environmentRule, inScope } from "../../src/config/policy.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { Registry, registeredIdentity } from "../../src/onboarding/registry.ts";
import type { Handler } from "./context.ts";
import { onboardAndReport } from "./onboarding.ts";
import { firstSeenKey, refuseDelivery } from "./shared.ts";
import { confirmProject } from "./truth.ts";

export const onEnvironmentSeen: Handler<Extract<Intent, { type: "environment.seen" }>> = async (ctx) => {
  const { rt, intent, trigger } = ctx;
  const read = await confirmProject(ctx, intent.project);
  if (!read) return { refused: true };
  if (read.state === "pending-deletion") {
    return refuseDelivery(ctx, read.ref, "pending-deletion", `project ${read.ref.id} is pending deletion`);
  }
  if (!inScope(rt.policy, read.ref.path))
    return { skipped: `project ${read.ref.path} is outside the policy scope` };
  const registered = await new Registry(rt.redis, rt.config.queuePrefix).get(read.ref.id);
  const candidates: string[] = [];
  for (const env of intent.environments) {
    const rule = environmentRule(rt.policy, env.name, env.tier);
    if (!rule?.policy.onFirstDeployment) continue;
    if (registeredIdentity(registered, env.name)) continue;
    // First sight is remembered for good: an environment offboarded on purpose is not re-onboarded by the
    // next deployment. HSETNX makes concurrent events for the same environment onboard it once; a retry of
    // the same event finds its own id there and carries on.
    const key = firstSeenKey(ctx, read.ref.id);
    const mine =
      (await rt.redis.hsetnx(key, env.name, trigger.eventId)) === 1 ||
      (await rt.redis.hget(key, env.name)) === trigger.eventId;
    if (mine) candidates.push(env.name);
  }
  if (candidates.length === 0) return { skipped: "no environment to onboard on first sight" };
  ctx.note(`first sight of ${candidates.join(", ")} in a ${intent.source} event`);
  return onboardAndReport(ctx, read.project, candidates, true);
};
