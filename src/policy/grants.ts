import type { Policy } from "../config/policy.ts";
import { environmentFor } from "./rules.ts";
import { renderGroupRef, templateValues } from "./templates.ts";

/**
 * What the policy grants one environment of a project at a given path: the rule's environment setting (its
 * policy key: refs, role, approvers) and the groups it names, templates rendered for that path. A project's
 * path decides its rule and its templates' values, and the path is in the hands of the project's owner
 * (transfer, rename) and of its groups' owners (group rename): so a privileged grant, approved under one rule,
 * must not follow the project into another rule or another team's template group (see moveProject and the
 * approvals). Pure; undefined when the policy has no setting for the environment at that path.
 */
export function grantKey(policy: Policy, projectPath: string, environment: string): string | undefined {
  const decision = environmentFor(policy, projectPath, environment);
  if (!decision) return undefined;
  const values = templateValues(projectPath, environment);
  const groups = decision.settings.groups
    .map((ref) => {
      try {
        const r = renderGroupRef(ref, values);
        return r.kind === "id" ? `id:${r.id}` : `name:${r.displayName}`;
      } catch {
        // A template this path cannot render: its own value, so two such paths still compare equal.
        return `unrenderable:${ref}`;
      }
    })
    .sort();
  return JSON.stringify([decision.where, groups]);
}

/**
 * Whether moving a project from one path to another changes what an environment is granted in a way the
 * move alone may not decide: the environment has no setting at the new path (its old grant must not keep
 * working outside its rule), or it is privileged there (without autoOnboard) and its grant differs (another
 * rule, or other groups): that needs a new /entra onboard, with the new rule's approval.
 */
export function moveNeedsNewGrant(
  policy: Policy,
  fromPath: string,
  toPath: string,
  environment: string,
): boolean {
  const before = grantKey(policy, fromPath, environment);
  const after = grantKey(policy, toPath, environment);
  if (before === after) return false;
  const decision = environmentFor(policy, toPath, environment);
  return !decision || (decision.privileged && !decision.settings.autoOnboard);
}
