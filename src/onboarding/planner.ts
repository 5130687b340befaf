import type { Config } from "../config/env.ts";
import type { Policy } from "../config/policy.ts";
import type { SubClaimComponent } from "../config/policy-schema.ts";
import { EntraError } from "../entra/errors.ts";
import type { FicSpec } from "../entra/graph.ts";
import { buildSubject, parseRefRule } from "../entra/subject.ts";
import type { ProjectRef } from "../gitlab/intents.ts";
import { type ProjectBinding, type RefProtectedValue, refProtectedValues } from "../policy/protection.ts";
import { environmentFor } from "../policy/rules.ts";
import { isGroupId } from "../policy/templates.ts";
import { appDisplayName, environmentTag, ficName, identityTags, MAX_TAG_LENGTH } from "./naming.ts";

/** Entra's hard cap per app registration. */
export const MAX_FICS_PER_APP = 20;

export interface DesiredFic extends FicSpec {
  name: string;
  refRule: string;
}

/** Desired Entra state for one (project, environment): what the reconciler converges to. */
export interface IdentityPlan {
  projectId: number;
  projectPath: string;
  environment: string;
  /** The policy key that matched (the name or a glob). */
  rule: string;
  /** Where that key is in the policy file, e.g. "rules[0].environments.production". */
  where: string;
  /** Whether the environment is privileged (never onboarded automatically; FICs bound to protected refs). */
  privileged: boolean;
  displayName: string;
  tags: string[];
  /** Tag that finds this identity's app with one filtered list call. */
  lookupTag: string;
  fics: DesiredFic[];
  groups: string[];
  refs: string[];
}

export interface PlanInput {
  project: ProjectRef;
  environment: string;
  policy: Policy;
  issuer: string;
  /** GitLab deployment tier when known (events carry it); else the rule's tier, else GitLab's guess. */
  tier?: string | null;
  /** environment_protected claim value, when the policy puts it in `sub`; defaults to "true". */
  environmentProtected?: boolean;
  /**
   * Group object ids, resolved from the rule's group templates (GroupResolver). Required when the rule names
   * groups by template: the planner is pure and does not call Graph.
   */
  groups?: readonly string[];
  /**
   * What GitLab puts in `sub` for this project, as established in GitLab (onboarding/subject-components.ts):
   * its components and, where GitLab refused ref_protected, why. Default: the policy's components.
   */
  binding?: ProjectBinding;
}

/** Issuer exactly as GitLab writes `iss`: policy, else GITLAB_OIDC_ISSUER, else GITLAB_URL; never normalised. */
export function resolveIssuer(policy: Policy, config: Pick<Config, "gitlab">): string {
  const issuer = policy.gitlab.issuer ?? config.gitlab.oidcIssuer ?? config.gitlab.url;
  if (!issuer) {
    throw new EntraError({
      code: "PLAN_INVALID",
      message: "no OIDC issuer configured: set gitlab.issuer in the policy, GITLAB_OIDC_ISSUER or GITLAB_URL",
    });
  }
  return issuer;
}

/**
 * GitLab's own tier guess for an environment without an explicit tier (Environment#guess_tier), so a
 * deployment_tier subject matches what GitLab will put in the token.
 */
export function guessTier(name: string): string {
  if (/(dev|review|trunk)/i.test(name)) return "development";
  if (/(test|tst|int|ac(ce|)pt|qa|qc|control|quality)/i.test(name)) return "testing";
  if (/(st(a|)g|mod(e|)l|pre|demo|non)/i.test(name)) return "staging";
  if (/(pr(o|)d|live)/i.test(name)) return "production";
  return "other";
}

/** The `sub` GitLab will mint for a job of this project on this ref rule. */
export function subjectFor(
  components: readonly SubClaimComponent[],
  project: ProjectRef,
  refRule: string,
  env: { tier: string; protected: boolean; refProtected?: RefProtectedValue | undefined },
): string {
  const { refType, ref } = parseRefRule(refRule);
  return buildSubject(components, {
    project_path: project.path,
    project_id: String(project.id),
    ref_type: refType,
    ref,
    deployment_tier: env.tier,
    environment_protected: String(env.protected),
    ref_protected: env.refProtected,
  });
}

/**
 * Pure: project + environment + policy + issuer -> desired identity. Returns undefined when the policy has
 * no rule for the environment (the caller reports that as "refused"); throws EntraError PLAN_* when the
 * rule cannot be satisfied.
 */
export function planIdentity(input: PlanInput): IdentityPlan | undefined {
  const { project, environment, policy, issuer } = input;
  const resolved = environmentFor(policy, project.path, environment, input.tier);
  if (!resolved) return undefined;
  const binding = input.binding ?? { components: [...policy.gitlab.subClaimComponents] };
  const components = binding.components;
  const variants = refProtectedValues(policy, binding, resolved);
  const refs = [...new Set(resolved.settings.refs)];
  if (refs.length * variants.length > MAX_FICS_PER_APP) {
    const per =
      variants.length > 1
        ? ` (${variants.length} credentials per ref: this project's subjects carry ref_protected, and "${environment}" accepts both protected and unprotected refs)`
        : "";
    throw new EntraError({
      code: "PLAN_TOO_MANY_FICS",
      message: `environment "${environment}" (policy key ${resolved.where}.refs) lists ${refs.length} refs${per}, but Entra allows at most ${MAX_FICS_PER_APP} federated credentials per app registration; list at most ${Math.floor(MAX_FICS_PER_APP / variants.length)} refs or split the environment`,
    });
  }
  if (environmentTag(environment).length > MAX_TAG_LENGTH) {
    throw new EntraError({
      code: "PLAN_INVALID",
      message: `environment name "${environment.slice(0, 40)}..." is too long to tag in Entra (max ${MAX_TAG_LENGTH - 11} characters)`,
    });
  }
  let groups: string[];
  if (input.groups) {
    groups = input.groups.map((g) => g.toLowerCase());
  } else {
    const templates = resolved.settings.groups.filter((g) => !isGroupId(g));
    if (templates.length > 0) {
      throw new EntraError({
        code: "PLAN_INVALID",
        message: `group templates of ${resolved.where}.groups (${templates.join(", ")}) must be resolved to group ids before planning`,
      });
    }
    groups = resolved.settings.groups.map((g) => g.toLowerCase());
  }
  const prefix = policy.naming.prefix;
  const tier = input.tier ?? resolved.settings.tier ?? guessTier(environment);
  const envClaims = { tier, protected: input.environmentProtected ?? true };
  const fics = refs.flatMap((refRule) =>
    variants.map(
      (refProtected): DesiredFic => ({
        // The protected (or only) variant keeps the ref rule's own name, so binding a credential that
        // existed before re-subjects it in place.
        name: refProtected === "false" ? ficName(prefix, `${refRule} unprotected`) : ficName(prefix, refRule),
        refRule,
        issuer,
        subject: subjectFor(components, project, refRule, { ...envClaims, refProtected }),
        audiences: [policy.gitlab.audience],
        description:
          `gitlab-entra-bot: ${refRule}${refProtected ? ` (ref_protected ${refProtected})` : ""} of GitLab project ${project.id} (${environment})`.slice(
            0,
            600,
          ),
      }),
    ),
  );
  const tags = identityTags(project.id, environment, project.path);
  return {
    projectId: project.id,
    projectPath: project.path,
    environment,
    rule: resolved.key,
    where: resolved.where,
    privileged: resolved.privileged,
    displayName: appDisplayName(prefix, project.path, environment),
    tags,
    lookupTag: tags[1] ?? "",
    fics,
    groups: [...new Set(groups)],
    refs,
  };
}
