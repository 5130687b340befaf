import { inScope } from "../../src/config/policy.ts";
import type { Intent } from "../../src/gitlab/intents.ts";
import type { Handler } from "./context.ts";
import { onboardAndReport } from "./onboarding.ts";
import { refuseDelivery } from "./shared.ts";
import { confirmProject } from "./truth.ts";

export const onProjectCreated: Handler<Extract<Intent, { type: "project.created" }>> = async (ctx) => {
  const { rt, intent } = ctx;
  const envs = rt.policy.onProjectCreate.environments;
  if (envs.length === 0) return { skipped: "policy onProjectCreate.environments is empty" };
  const read = await confirmProject(ctx, intent.project);
  if (!read) return { refused: true };
  if (read.state === "pending-deletion") {
    return refuseDelivery(ctx, read.ref, "pending-deletion", `project ${read.ref.id} is pending deletion`);
  }
  // The intake filtered on the payload's path; the policy scope applies to the path GitLab reports.
  if (!inScope(rt.policy, read.ref.path))
    return { skipped: `project ${read.ref.path} is outside the policy scope` };
  return onboardAndReport(ctx, read.project, envs, rt.policy.onProjectCreate.openIssue);
};
