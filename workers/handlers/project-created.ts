import { inScope } from "../../src/config/policy.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import { allRules } from "../../src/policy/rules.ts";
import type { Handler } from "./context.ts";
import { onboardAndReport } from "./onboarding.ts";
import { identityLimitGate, onCreateGate } from "./policy-gate.ts";
import { refuseDelivery } from "./shared.ts";
import { confirmProject } from "./truth.ts";

export const onProjectCreated: Handler<Extract<Intent, { type: "project.created" }>> = async (ctx) => {
  const { rt, intent } = ctx;
  // The cheap filter first, before GitLab is asked: no rule onboards anything on project creation.
  if (allRules(rt.policy).every((rule) => rule.onProjectCreate.environments.length === 0))
    return { skipped: "policy onProjectCreate.environments is empty" };
  const read = await confirmProject(ctx, intent.project);
  if (!read) return { refused: true };
  if (read.state === "pending-deletion") {
    return refuseDelivery(ctx, read.ref, "pending-deletion", `project ${read.ref.id} is pending deletion`);
  }
  // The intake filtered on the payload's path; the policy scope applies to the path GitLab reports.
  if (!inScope(rt.policy, read.ref.path))
    return { skipped: `project ${read.ref.path} is outside the policy scope` };
  // The rule of the path GitLab reports decides. Privileged environments are never granted by creating a
  // project (unless autoOnboard): they are listed in the onboarding issue with how to request them.
  const gate = onCreateGate(rt.policy, read.ref);
  if (gate.environments.length + gate.outcomes.length === 0)
    return { skipped: `the rule ${gate.rule.name} onboards nothing on project creation` };
  const limited = await identityLimitGate(rt, read.ref.id, gate.environments);
  return onboardAndReport(ctx, read.project, limited.environments, gate.rule.onProjectCreate.openIssue, [
    ...gate.outcomes,
    ...limited.outcomes,
  ]);
};
