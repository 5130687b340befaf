import picomatch from "picomatch";
import {
  type EnvironmentPolicy,
  isPrivilegedSetting,
  type Policy,
  type PolicyRule,
  policyRetainStoppedDays,
} from "../config/policy-schema.ts";

/**
 * Which rule of the policy governs a project, and which environment setting within it. Pure and
 * prototype-safe: environment names come from GitLab events and users' comments, so "constructor" or
 * "__proto__" must find nothing rather than Object.prototype's members.
 */

export interface ProjectRule {
  /** rules[i] index, or -1 for the top-level default rule. */
  index: number;
  /** The rule's name, "rules[i]" when it has none, or "default". */
  name: string;
  /** Where its environments live in the policy file, e.g. "rules[0].environments" or "environments". */
  path: string;
  match: readonly string[];
  environments: ReadonlyMap<string, EnvironmentPolicy>;
  onProjectCreate: { environments: string[]; openIssue: boolean; setCiVariables: boolean };
}

export interface EnvironmentDecision {
  /** The environment's name as GitLab or the user gave it. */
  name: string;
  /** The policy key that matched: the name itself, a glob ("review/*"), or a key matched by tier. */
  key: string;
  rule: ProjectRule;
  settings: EnvironmentPolicy;
  privileged: boolean;
  /** "rules[0].environments.production": where to look in the policy file. */
  where: string;
}

type Compiled = { rules: ProjectRule[]; fallback: ProjectRule; matchers: ((path: string) => boolean)[] };
const compiled = new WeakMap<Policy, Compiled>();

function toMap(envs: Record<string, EnvironmentPolicy>): Map<string, EnvironmentPolicy> {
  return new Map(Object.entries(envs).filter(([k]) => Object.hasOwn(envs, k)));
}

function compile(policy: Policy): Compiled {
  let c = compiled.get(policy);
  if (c) return c;
  const top = policy.onProjectCreate;
  const rules = policy.rules.map(
    (r: PolicyRule, index): ProjectRule => ({
      index,
      name: r.name ?? `rules[${index}]`,
      path: `rules[${index}].environments`,
      match: r.match,
      environments: toMap(r.environments),
      onProjectCreate: {
        environments: r.onProjectCreate?.environments ?? top.environments,
        openIssue: r.onProjectCreate?.openIssue ?? top.openIssue,
        setCiVariables: r.onProjectCreate?.setCiVariables ?? top.setCiVariables,
      },
    }),
  );
  const fallback: ProjectRule = {
    index: -1,
    name: "default",
    path: "environments",
    match: ["**"],
    environments: toMap(policy.environments),
    onProjectCreate: { ...top },
  };
  // GitLab paths are case-insensitive (one cannot have both Payments/x and payments/x).
  const opts = { nocase: true, dot: true };
  const matchers = policy.rules.map((r) => {
    const globs = r.match.map((g) => picomatch(g, opts));
    return (path: string) => globs.some((m) => m(path));
  });
  c = { rules, fallback, matchers };
  compiled.set(policy, c);
  return c;
}

/** The first rule whose match: fits the project's path_with_namespace; else the top-level default. */
export function projectRule(policy: Policy, projectPath: string): ProjectRule {
  const c = compile(policy);
  const i = c.matchers.findIndex((m) => m(projectPath));
  return i >= 0 ? (c.rules[i] as ProjectRule) : c.fallback;
}

/** The top-level environments as a rule (projects no entry of rules: matches). */
export function defaultRule(policy: Policy): ProjectRule {
  return compile(policy).fallback;
}

/** Every rule, the default last (policy explain, validation, help). */
export function allRules(policy: Policy): ProjectRule[] {
  const c = compile(policy);
  return [...c.rules, c.fallback];
}

/** An environment's setting within a rule: exact key first, then globs in file order, then tier. */
export function environmentIn(
  rule: ProjectRule,
  name: string,
  tier?: string | null,
): EnvironmentDecision | undefined {
  const found = (key: string, settings: EnvironmentPolicy): EnvironmentDecision => ({
    name,
    key,
    rule,
    settings,
    privileged: isPrivilegedSetting(key, settings, name, tier),
    where: `${rule.path}.${key}`,
  });
  const exact = rule.environments.get(name);
  if (exact) return found(name, exact);
  for (const [key, settings] of rule.environments) {
    if (picomatch.isMatch(name, key)) return found(key, settings);
  }
  if (tier) {
    for (const [key, settings] of rule.environments) {
      if (settings.tier === tier) return found(key, settings);
    }
  }
  return undefined;
}

/** The rule for the project, then the environment's setting in it. */
export function environmentFor(
  policy: Policy,
  projectPath: string,
  name: string,
  tier?: string | null,
): EnvironmentDecision | undefined {
  return environmentIn(projectRule(policy, projectPath), name, tier);
}

/**
 * How many days an identity outlives its environment once GitLab shows it stopped or no longer lists it: the
 * environment entry's own retainStoppedEnvironmentDays, else the policy's (retention: or top level, else 7).
 * `where` names the setting that decided, for `policy explain` and the job log.
 */
export function retainStoppedDays(
  policy: Policy,
  decision: EnvironmentDecision | undefined,
): { days: number; where: string } {
  const own = decision?.settings.retainStoppedEnvironmentDays;
  if (own !== undefined) return { days: own, where: `${decision?.where}.retainStoppedEnvironmentDays` };
  const where =
    policy.retention.retainStoppedEnvironmentDays !== undefined
      ? "retention.retainStoppedEnvironmentDays"
      : policy.retainStoppedEnvironmentDays !== undefined
        ? "retainStoppedEnvironmentDays"
        : "default";
  return { days: policyRetainStoppedDays(policy), where };
}

/** Whether the privileged environment would be onboarded without a person asking (autoOnboard). */
export function onboardsAutomatically(decision: EnvironmentDecision): boolean {
  return !decision.privileged || decision.settings.autoOnboard;
}

/**
 * Whether any rule could onboard this environment on first sight. Path-independent on purpose: the rule that
 * really applies is the one of the path GitLab reports, known only after the worker's re-read.
 */
export function mayOnboardOnFirstSight(policy: Policy, name: string, tier: string | undefined): boolean {
  return allRules(policy).some((rule) => {
    const d = environmentIn(rule, name, tier);
    return d?.settings.onFirstDeployment === true && onboardsAutomatically(d);
  });
}

/** How to ask for a privileged environment, in one sentence of plain text (the report escapes it). */
export function howToRequest(decision: EnvironmentDecision): string {
  const env = decision.name;
  const approvers = decision.settings.approvers;
  const role = decision.settings.minAccessLevel;
  const who = `someone with the ${role[0]?.toUpperCase()}${role.slice(1)} role or higher`;
  return approvers?.length
    ? `${who} can request it with /entra onboard ${env}, and one of its approvers (${approvers.join(", ")}) approves it with /entra approve ${env}`
    : `${who} can set it up with /entra onboard ${env}`;
}

/**
 * Problems that do not stop start-up but change what an operator may expect: a privileged environment
 * listed in onProjectCreate without autoOnboard is skipped on project creation.
 */
export function policyWarnings(policy: Policy): string[] {
  const out: string[] = [];
  for (const rule of allRules(policy)) {
    for (const env of rule.onProjectCreate.environments) {
      const d = environmentIn(rule, env);
      if (!d?.privileged || d.settings.autoOnboard) continue;
      const where = rule.index < 0 ? "onProjectCreate.environments" : `rule ${rule.name} (onProjectCreate)`;
      out.push(
        `${where} lists "${env}", which is privileged (${d.where}): it is not onboarded on project creation. Projects get it on request (/entra onboard ${env}${d.settings.approvers ? ` plus /entra approve ${env} from an approver` : ""}). To onboard it automatically anyway, set autoOnboard: true on ${d.where}, or remove it from onProjectCreate to silence this warning.`,
      );
    }
  }
  return out;
}
