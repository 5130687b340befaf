import { isPrivilegedSetting, type Policy, type SubClaimComponent } from "../config/policy-schema.ts";
import type { EnvironmentDecision, ProjectRule } from "./rules.ts";

/**
 * Binding privileged credentials to protected refs. A subject `project_path:p:ref_type:branch:ref:main` is
 * also minted for a fork's merge-request pipeline run in the parent project and for an unprotected branch
 * named main; `ref_protected:true` in the subject is not. GitLab (18.7+) adds `ref_protected` to `sub` when a
 * project's `ci_id_token_sub_claim_components` lists it, for jobs that have an environment (the bot's CI
 * snippet always sets one).
 *
 * The setting is per project, so it changes the `sub` of every environment's jobs, staging's too. The
 * components are therefore decided per project from its rule: when any environment of the rule is privileged
 * (and not allowUnprotectedRefs), every identity of the project gets subjects with `ref_protected`:
 * privileged ones only `ref_protected:true`, the others one credential per value ("true" and "false"), so
 * staging keeps accepting its refs whether or not they are protected, exactly as before.
 */

export type RefProtectedValue = "true" | "false";

/** What GitLab puts in `sub` for a project: the components the bot established (or found) there. */
export interface ProjectBinding {
  components: SubClaimComponent[];
  /** Why GitLab could not take the components the rule asks for (old GitLab, the bot's role). */
  unsupported?: string;
}

function needsBinding(key: string, settings: EnvironmentDecision["settings"]): boolean {
  return isPrivilegedSetting(key, settings) && !settings.allowUnprotectedRefs;
}

/** Whether any environment of the rule requires protected-ref binding. */
export function ruleBindsRefs(rule: ProjectRule): boolean {
  for (const [key, settings] of rule.environments) if (needsBinding(key, settings)) return true;
  return false;
}

/** The sub-claim components a project governed by this rule should have. */
export function desiredComponents(policy: Policy, rule: ProjectRule): SubClaimComponent[] {
  const base = [...policy.gitlab.subClaimComponents];
  if (!ruleBindsRefs(rule) || base.includes("ref_protected")) return base;
  return [...base, "ref_protected"];
}

/** The project binding when nothing is known about GitLab: the policy's own components. */
export function defaultBinding(policy: Policy): ProjectBinding {
  return { components: [...policy.gitlab.subClaimComponents] };
}

/**
 * The `ref_protected` values an environment's credentials accept; [undefined] when `sub` has no such
 * component. Components the operator listed in gitlab.subClaimComponents bind every environment.
 */
export function refProtectedValues(
  policy: Policy,
  binding: ProjectBinding,
  decision: Pick<EnvironmentDecision, "privileged" | "settings">,
): (RefProtectedValue | undefined)[] {
  if (!binding.components.includes("ref_protected")) return [undefined];
  if (policy.gitlab.subClaimComponents.includes("ref_protected")) return ["true"];
  if (decision.privileged && !decision.settings.allowUnprotectedRefs) return ["true"];
  return ["true", "false"];
}

/** Why a privileged environment may not be onboarded under this binding, or undefined when it may. */
export function bindingRefusal(
  binding: ProjectBinding,
  decision: Pick<EnvironmentDecision, "name" | "privileged" | "settings" | "where">,
): string | undefined {
  if (!decision.privileged || decision.settings.allowUnprotectedRefs) return undefined;
  if (binding.components.includes("ref_protected")) return undefined;
  const why =
    binding.unsupported ??
    "the project's ID-token subject does not include ref_protected (the policy's rule has no privileged environment that needs it)";
  return `"${decision.name}" is privileged: its credentials must accept only protected refs (ref_protected in the ID token's sub, GitLab 18.7+), but ${why}. Fix: upgrade GitLab to 18.7 or later, or give the bot the Maintainer role in this project so it can set ci_id_token_sub_claim_components. Only if the risk is accepted: allowUnprotectedRefs: true on ${decision.where} (then any pipeline on these ref names, including a fork's merge-request pipeline, can log in).`;
}
