import type { Policy } from "../config/policy.ts";
import { isPrivilegedSetting } from "../config/policy-schema.ts";
import { roleLabel } from "../gitlab/commands.ts";
import { planIdentity } from "../onboarding/planner.ts";
import { plannedSubjectLayout, type SubjectLayout } from "../onboarding/subject-components.ts";
import { bindingRefusal, desiredComponents, ruleBindsRefs } from "./protection.ts";
import { environmentIn, onboardsAutomatically, projectRule, retainStoppedDays } from "./rules.ts";
import { isGroupId, renderGroupRef, templateValues } from "./templates.ts";

/**
 * `npm run policy -- explain <project path>`: what the policy does for one project, before it is rolled out:
 * the rule that matches, then per environment its refs, the exact subjects of its credentials, its groups
 * (templates resolved through Graph when a resolver is given) and who may onboard it, and how.
 */
export interface ExplainInput {
  policy: Policy;
  projectPath: string;
  issuer: string;
  /** Needed for project_id subjects; without it they show `<project id>`. */
  projectId?: number;
  /**
   * The layout the registry recorded as established in GitLab for that project (subject-components.ts); with
   * it, subjects are what the bot would write for this project today, as status and `policy diff` plan them.
   */
  established?: SubjectLayout;
  /** Group references -> object ids (GroupResolver.resolve); absent = offline, templates shown rendered. */
  resolveGroups?: (
    refs: readonly string[],
    values: ReturnType<typeof templateValues>,
    where: string,
  ) => Promise<string[]>;
}

const PLACEHOLDER_ID = 2_147_483_647;

export async function explainProject(input: ExplainInput): Promise<string> {
  const { policy, projectPath } = input;
  const rule = projectRule(policy, projectPath);
  const wanted = desiredComponents(policy, rule);
  const binding = input.established
    ? plannedSubjectLayout(policy, projectPath, input.established)
    : { components: wanted };
  const components = binding.components;
  const out: string[] = [];
  out.push(`Project ${projectPath}`);
  out.push(
    rule.index < 0
      ? `Rule: default (the top-level environments: no entry of rules: matches)`
      : `Rule: ${rule.name} (rules[${rule.index}], match: ${rule.match.join(", ")}); the first matching rule wins`,
  );
  out.push(
    `ID token subject: ${wanted.join(", ")}${
      ruleBindsRefs(rule)
        ? " (ref_protected added because the rule has a privileged environment: the bot sets the project's ci_id_token_sub_claim_components, GitLab 18.7+; where GitLab refuses, privileged environments are refused)"
        : ""
    }`,
  );
  if (input.established) {
    const e = input.established;
    out.push(
      `Established in GitLab for project ${input.projectId ?? "?"}: ${e.components.join(", ")}${e.unsupported ? ` (GitLab refused ref_protected: ${e.unsupported})` : ""}${components.join(",") === e.components.join(",") ? "" : `; the next onboarding asks GitLab for ${components.join(", ")}`}`,
    );
  }
  const onCreate = rule.onProjectCreate;
  out.push(
    `On project creation: ${onCreate.environments.join(", ") || "(nothing)"}${onCreate.openIssue ? "; opens the onboarding issue" : ""}${onCreate.setCiVariables ? "; sets CI/CD variables" : ""}`,
  );
  if (rule.environments.size === 0) out.push("Environments: none (this project gets no Azure identity)");
  for (const [key] of rule.environments) {
    const d = environmentIn(rule, key);
    if (!d) continue;
    const s = d.settings;
    const privileged = isPrivilegedSetting(key, s);
    const values = templateValues(projectPath, key);
    out.push("");
    out.push(`  ${key}${privileged ? "  [privileged]" : ""}  (${d.where})`);
    out.push(`    refs: ${s.refs.join(", ")}`);
    let groups: string[];
    let groupLines: string[];
    try {
      const rendered = s.groups.map((g) => renderGroupRef(g, values));
      const resolved = input.resolveGroups
        ? await input.resolveGroups(s.groups, values, `${d.where}.groups`)
        : undefined;
      groups = resolved ?? rendered.map((r) => (r.kind === "id" ? r.id : r.displayName));
      groupLines = rendered.map((r, i) =>
        r.kind === "id"
          ? r.id
          : `${r.template} -> "${r.displayName}"${resolved ? ` -> ${resolved[i] ?? "?"}` : " (not resolved: offline)"}`,
      );
    } catch (err) {
      groups = s.groups.filter(isGroupId);
      groupLines = [`cannot resolve: ${(err as Error).message}`];
    }
    out.push(`    groups: ${groupLines.length ? groupLines.join("; ") : "(none)"}`);
    try {
      const plan = planIdentity({
        project: { id: input.projectId ?? PLACEHOLDER_ID, path: projectPath },
        environment: key,
        policy,
        issuer: input.issuer,
        groups,
        binding,
      });
      const subjects = (plan?.fics ?? []).map((f) =>
        input.projectId === undefined
          ? f.subject.replace(`project_id:${PLACEHOLDER_ID}`, "project_id:<project id>")
          : f.subject,
      );
      out.push(`    subjects (issuer ${input.issuer}, audience ${policy.gitlab.audience}):`);
      for (const sub of subjects) out.push(`      ${sub}`);
      const refusal = input.established ? bindingRefusal(binding, d) : undefined;
      if (refusal) out.push(`    refused for this project: ${refusal}`);
    } catch (err) {
      out.push(`    subjects: cannot plan: ${(err as Error).message}`);
    }
    const role = `${roleLabel(s.minAccessLevel)} or higher`;
    const approval =
      privileged && s.approvers?.length
        ? `, then /entra approve ${key} by one of: ${s.approvers.join(", ")}`
        : "";
    const who: string[] = [`${role} with /entra onboard ${key}${approval}`];
    const auto = onboardsAutomatically(d);
    if (onCreate.environments.includes(key)) {
      who.push(auto ? "automatically on project creation" : "not on project creation (privileged)");
    }
    if (s.onFirstDeployment) {
      who.push(
        auto
          ? `on first deployment by a deployer with the ${role} role`
          : "not on first deployment (privileged)",
      );
    }
    out.push(`    who may onboard it: ${who.join("; ")}`);
    const retain = retainStoppedDays(policy, d);
    out.push(
      `    once GitLab shows it stopped or deleted: ${privileged ? "reported daily, never removed automatically (privileged; /entra offboard removes it)" : `identity removed after ${retain.days} day${retain.days === 1 ? "" : "s"}`} (retainStoppedEnvironmentDays: ${retain.days}, from ${retain.where})`,
    );
    if (privileged) {
      out.push(
        `    binding: ${s.allowUnprotectedRefs ? "allowUnprotectedRefs: true (any pipeline on these ref names may log in, a fork's merge-request pipeline included)" : "only protected refs (ref_protected:true)"}${s.autoOnboard ? "; autoOnboard: true" : ""}`,
      );
    }
  }
  return `${out.join("\n")}\n`;
}
