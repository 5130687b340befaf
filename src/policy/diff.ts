import type { Policy } from "../config/policy.ts";
import { type OnboardingDeps, onboardProject } from "../onboarding/onboard.ts";
import { isWrite } from "../onboarding/reconciler.ts";
import { Registry } from "../onboarding/registry.ts";
import { plannedSubjectLayout, wantedComponents } from "../onboarding/subject-components.ts";
import type { Change, EnvironmentOutcome } from "../onboarding/types.ts";
import { GroupResolver } from "./group-resolver.ts";

/**
 * `npm run policy -- diff <new policy file>`: for every project the bot manages, what applying the new policy
 * would change in Entra, like `terraform plan`. Everything runs in plan mode: Graph and Redis are only read,
 * and GitLab is not called at all. Each project's subjects follow the layout the registry recorded as
 * established in GitLab (subject-components.ts), as every other plan does; where the new policy wants another
 * (a rule that now binds refs), the wanted one, which applying would ask GitLab for.
 */
export interface ProjectDiff {
  projectId: number;
  path: string;
  components?: { from: string[]; to: string[] };
  environments: EnvironmentOutcome[];
}

export interface PolicyDiff {
  projects: ProjectDiff[];
  changes: number;
}

type Deps = Pick<OnboardingDeps, "graph" | "botSp" | "redis" | "keyPrefix" | "issuer" | "tenantId"> & {
  log?: (line: string) => void;
};

export async function policyDiff(deps: Deps, next: Policy): Promise<PolicyDiff> {
  const groups = new GroupResolver(deps.graph);
  const onboarding: OnboardingDeps = {
    graph: deps.graph,
    botSp: deps.botSp,
    redis: deps.redis,
    keyPrefix: deps.keyPrefix,
    issuer: deps.issuer,
    tenantId: deps.tenantId,
    policy: next,
    groups,
  };
  const out: PolicyDiff = { projects: [], changes: 0 };
  const registry = new Registry(deps.redis, deps.keyPrefix);
  for (const project of await registry.list()) {
    // The identities the registry pins (never found by tag: a planted app must not appear as the bot's).
    const envs = new Set(Object.keys(project.environments));
    for (const [env, pin] of Object.entries(await registry.pins(project.projectId))) {
      if (pin.appObjectId !== undefined || pin.uniqueName !== undefined) envs.add(env);
    }
    const binding = plannedSubjectLayout(next, project.path, project.subjectLayout);
    const result = await onboardProject(onboarding, {
      project: { id: project.projectId, path: project.path },
      environments: [...envs].sort(),
      mode: "plan",
      binding,
    });
    const before = project.subjectLayout?.components ?? wantedComponents(next, project.path);
    const after = binding.components;
    const components =
      before.join(",") === after.join(",") ? undefined : { from: [...before], to: [...after] };
    for (const e of result.environments) out.changes += e.changes.filter(isWrite).length;
    out.projects.push({
      projectId: project.projectId,
      path: project.path,
      ...(components ? { components } : {}),
      environments: result.environments,
    });
  }
  return out;
}

const SIGN: Record<Change["op"], string> = {
  create: "+",
  add: "+",
  update: "~",
  delete: "-",
  remove: "-",
  refuse: "!",
  observe: "=",
};

export function renderPolicyDiff(diff: PolicyDiff, file: string): string {
  const lines = [`Policy diff: applying ${file} (reads only; nothing was changed)`, ""];
  let changed = 0;
  for (const p of diff.projects) {
    const moving = p.environments.some((e) => e.changes.some(isWrite) || e.status === "refused");
    if (!moving && !p.components) continue;
    changed += 1;
    lines.push(`${p.path} (project ${p.projectId})`);
    if (p.components) {
      lines.push(
        `  ~ GitLab ci_id_token_sub_claim_components: [${p.components.from.join(", ")}] -> [${p.components.to.join(", ")}]`,
      );
    }
    for (const e of p.environments) {
      if (e.status === "refused" || e.status === "failed") {
        lines.push(`  ${e.environment}: ${e.status}: ${e.message ?? ""} (its identity is left as it is)`);
        continue;
      }
      const writes = e.changes.filter(isWrite);
      if (writes.length) lines.push(`  ${e.environment}: ${writes.length} change(s)`);
      for (const c of writes) {
        lines.push(`    ${SIGN[c.op]} ${c.op} ${c.kind} ${c.target}${c.detail ? ` (${c.detail})` : ""}`);
      }
    }
    lines.push("");
  }
  // Findings that are not changes (look-alike apps, memberships in groups no rule names): said, not counted.
  for (const p of diff.projects) {
    for (const e of p.environments) {
      for (const c of e.changes.filter((x) => !isWrite(x))) {
        lines.push(
          `note: ${p.path} ${e.environment}: ${c.op} ${c.kind} ${c.target}${c.detail ? ` (${c.detail})` : ""}`,
        );
      }
    }
  }
  lines.push(
    `${diff.projects.length} project(s) managed; ${changed} would change; ${diff.changes} change(s) in Entra.`,
  );
  return `${lines.join("\n")}\n`;
}
