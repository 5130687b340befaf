import type { Policy } from "../config/policy.ts";
import { code, join, md, type SafeMarkdown, trusted } from "../gitlab/markdown-inert.ts";
import { environmentFor, projectRule } from "../policy/rules.ts";
import { renderGroupRef, templateValues } from "../policy/templates.ts";
import { planIdentity } from "./planner.ts";
import { type RegisteredProject, registeredIdentity } from "./registry.ts";
import { SNIPPET_VARIANTS, type SnippetVariant, snippetSection } from "./snippet.ts";
import { plannedSubjectLayout } from "./subject-components.ts";
import type { EnvironmentOutcome, OnboardResult } from "./types.ts";

/**
 * `/entra snippet [azure-cli|terraform|azure-sdk] [env ...]`: the CI snippet of this project's onboarded
 * environments in the chosen variant (default: the policy's `snippet.variant`). Reads only the registry and
 * the policy: no Graph call, no write. Any word that is not a variant is an environment name.
 */
export interface SnippetRequest {
  variant: SnippetVariant;
  environments: string[];
}

export function parseSnippetArgs(args: readonly string[], defaultVariant: SnippetVariant): SnippetRequest {
  const isVariant = (w: string): w is SnippetVariant => (SNIPPET_VARIANTS as readonly string[]).includes(w);
  const variant = args.map((a) => a.toLowerCase()).find(isVariant) ?? defaultVariant;
  const environments = args.filter((a) => !isVariant(a.toLowerCase()));
  return { variant, environments };
}

export function snippetReply(input: {
  project: { id: number; path: string };
  registered: RegisteredProject | undefined;
  policy: Policy;
  issuer: string;
  tenantId: string;
  request: SnippetRequest;
}): SafeMarkdown {
  const { policy, request } = input;
  const registered = input.registered?.environments ?? {};
  const wanted = request.environments.length ? request.environments : Object.keys(registered).sort();
  const binding = plannedSubjectLayout(policy, input.project.path, input.registered?.subjectLayout);
  const result: OnboardResult = {
    project: input.project,
    mode: "apply",
    tenantId: input.tenantId,
    issuer: input.issuer,
    audience: policy.gitlab.audience,
    // The layout recorded as established in GitLab (subject-components.ts): what the credentials were written with.
    subClaimComponents: [...binding.components],
    environments: [],
  };
  const out: SafeMarkdown[] = [md`## CI snippet (${code(request.variant)}) for ${code(input.project.path)}`];
  const missing: string[] = [];
  for (const environment of wanted) {
    const identity = registeredIdentity(input.registered, environment);
    let plan: ReturnType<typeof planIdentity>;
    try {
      // For display only: group templates stand as their rendered names (no Graph call for a snippet).
      const values = templateValues(input.project.path, environment);
      const groups = environmentFor(policy, input.project.path, environment)?.settings.groups.map((g) => {
        const r = renderGroupRef(g, values);
        return r.kind === "id" ? r.id : r.displayName;
      });
      plan = identity
        ? planIdentity({
            project: input.project,
            environment,
            policy,
            issuer: input.issuer,
            ...(groups ? { groups } : {}),
            binding,
          })
        : undefined;
    } catch {
      plan = undefined;
    }
    if (!identity || !plan) {
      missing.push(environment);
      continue;
    }
    const env: EnvironmentOutcome = {
      environment,
      status: "unchanged",
      identity,
      refs: plan.refs,
      subjects: plan.fics.map((f) => f.subject),
      groups: plan.groups,
      changes: [],
    };
    out.push(
      trusted(""),
      snippetSection(result, env, {
        variant: request.variant,
        ciVariablesSet: projectRule(policy, input.project.path).onProjectCreate.setCiVariables,
      }),
    );
  }
  if (missing.length) {
    out.push(
      trusted(""),
      md`No Azure identity for ${join(missing.map(code), ", ")}: run \`/entra onboard <env>\` first.`,
    );
  }
  if (wanted.length === 0) {
    out.push(
      trusted(""),
      trusted("This project has no Azure identity yet: run `/entra onboard <env>` first."),
    );
  }
  return join(out);
}
