import type { Policy } from "../config/policy.ts";
import { environmentFor } from "../policy/rules.ts";
import { renderGroupRef, templateValues } from "../policy/templates.ts";
import { planIdentity } from "./planner.ts";
import type { RegisteredProject } from "./registry.ts";
import type { EnvironmentOutcome, OnboardResult } from "./types.ts";

/**
 * The whole project for the onboarding issue: this run's outcomes, plus every other environment the registry
 * holds (as planned by the current policy, no Graph call). Without this, onboarding one more environment
 * would rewrite the issue with that environment alone.
 */
export function withRegisteredEnvironments(
  result: OnboardResult,
  registered: RegisteredProject | undefined,
  policy: Policy,
  issuer: string,
): OnboardResult {
  if (!registered) return result;
  const present = new Set(result.environments.map((e) => e.environment));
  const extra: EnvironmentOutcome[] = [];
  for (const [environment, identity] of Object.entries(registered.environments)) {
    if (present.has(environment)) continue;
    let plan: ReturnType<typeof planIdentity>;
    try {
      // For display only: templates stand as their rendered names (no Graph call while reporting).
      const values = templateValues(result.project.path, environment);
      const groups = environmentFor(policy, result.project.path, environment)?.settings.groups.map((g) => {
        const r = renderGroupRef(g, values);
        return r.kind === "id" ? r.id : r.displayName;
      });
      plan = planIdentity({
        project: result.project,
        environment,
        policy,
        issuer,
        ...(groups ? { groups } : {}),
        binding: { components: [...result.subClaimComponents] },
      });
    } catch {
      plan = undefined;
    }
    extra.push({
      environment,
      status: "unchanged",
      identity,
      refs: plan?.refs ?? [],
      subjects: plan?.fics.map((f) => f.subject) ?? [],
      groups: plan?.groups ?? [],
      changes: [],
      ...(plan ? {} : { message: "no longer in the policy: run /entra offboard to remove it" }),
    });
  }
  const environments = [...result.environments, ...extra]
    .filter((e) => e.status !== "removed")
    .sort((a, b) => a.environment.localeCompare(b.environment));
  return { ...result, environments };
}
