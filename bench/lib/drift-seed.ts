/**
 * The world bench:drift starts from: N projects x 2 environments as the bot would have left them (apps, service
 * principals, credentials, group members in Entra; projects and environments in GitLab; pins in the registry),
 * computed with the bot's own planner, then drifted in five ways. The simulators get plain data only (they never
 * run bot code); the expectations are the planner's answers for the paths GitLab shows at the end.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Policy } from "../../src/config/policy.ts";
import { parsePolicy } from "../../src/config/policy.ts";
import { type IdentityPlan, planIdentity } from "../../src/onboarding/planner.ts";
import { type IdentityPin, Registry } from "../../src/onboarding/registry.ts";
import type { DirectorySeed } from "../../src/sandbox/entra-sim.ts";
import type { ProjectSeed } from "../../src/sandbox/gitlab-sim.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";

export const ENVIRONMENTS = ["staging", "production"] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export const DRIFT_KINDS = [
  "fic-deleted",
  "fic-edited",
  "membership-removed",
  "project-renamed",
  "environment-deleted",
] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

/**
 * Which drift an identity gets, by project id so that any sample 1..n holds the same 1 % of each kind:
 * ids ending in 01, 02, 03 lose a credential, have one edited, lose their group membership (both environments:
 * 2 identities per 100 projects = 1 % of identities); 04 is renamed in GitLab (project-level, 1 % of projects);
 * 05 and 55 lose staging in GitLab (the non-privileged environment; 2 per 100 projects = 1 % of identities).
 */
export function driftOf(projectId: number, environment: Environment): DriftKind | undefined {
  const r = projectId % 100;
  if (r === 1) return "fic-deleted";
  if (r === 2) return "fic-edited";
  if (r === 3) return "membership-removed";
  if (r === 4) return "project-renamed";
  if ((r === 5 || r === 55) && environment === "staging") return "environment-deleted";
  return undefined;
}

/** Fixed, so that one world serves every run whatever port its GitLab simulator gets. */
export const BENCH_ISSUER = "https://gitlab.bench.example";

const pathOf = (id: number) => `bench/p-${id}`;
const renamedPathOf = (id: number) => `bench/p-${id}-renamed`;

/**
 * Both environments plain identities (production `privileged: false`: no ref_protected binding, so the sweep
 * has no GitLab setting to converge besides the drift below); stopped or deleted environments' identities are
 * removed in the same sweep when the policy knows retainStoppedEnvironmentDays.
 */
export function benchPolicyYaml(withEnvironmentRetention: boolean): string {
  return `gitlab:
  issuer: ${BENCH_ISSUER}
  subClaimComponents: [project_path, ref_type, ref]
  audience: api://AzureADTokenExchange
scope:
  include: ["**"]
onProjectCreate:
  environments: [staging, production]
  openIssue: false
  setCiVariables: false
environments:
  production:
    refs: ["branch:main"]
    groups: ["${SANDBOX.productionGroup}"]
    minAccessLevel: maintainer
    privileged: false
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${SANDBOX.stagingGroup}"]
    minAccessLevel: developer
    onFirstDeployment: true
${withEnvironmentRetention ? "retention:\n  retainStoppedEnvironmentDays: 0\n" : ""}`;
}

/** The bench policy, with environment retention when this build of the bot knows the field. */
export function benchPolicy(): { yaml: string; policy: Policy; environmentRetention: boolean } {
  try {
    const yaml = benchPolicyYaml(true);
    return { yaml, policy: parsePolicy(yaml, "bench policy"), environmentRetention: true };
  } catch {
    const yaml = benchPolicyYaml(false);
    return { yaml, policy: parsePolicy(yaml, "bench policy"), environmentRetention: false };
  }
}

export interface BenchIdentity {
  projectId: number;
  environment: Environment;
  drift: DriftKind | undefined;
  appObjectId: string;
  appId: string;
  spObjectId: string;
  /** Where the registry and Entra have the project, and the app's name there. */
  registeredPath: string;
  registeredDisplayName: string;
  /** What the sweep must converge to: the plan for the path GitLab shows. */
  expected: IdentityPlan;
}

export interface BenchWorld {
  identities: BenchIdentity[];
  entra: Required<Pick<DirectorySeed, "applications">>;
  gitlab: { projects: ProjectSeed[]; renames: Array<{ id: number; path: string }> };
}

function plan(policy: Policy, issuer: string, id: number, path: string, environment: Environment) {
  const p = planIdentity({
    project: { id, path },
    environment,
    policy,
    issuer,
    binding: { components: [...policy.gitlab.subClaimComponents] },
  });
  if (!p) throw new Error(`the bench policy has no rule for ${environment}`);
  return p;
}

/** Projects 1..n, their identities as onboarded, the drift applied to the seeds. */
export function buildWorld(n: number, policy: Policy, issuer = BENCH_ISSUER): BenchWorld {
  const identities: BenchIdentity[] = [];
  const apps: BenchWorld["entra"]["applications"] = [];
  const projects: ProjectSeed[] = [];
  const renames: BenchWorld["gitlab"]["renames"] = [];
  for (let id = 1; id <= n; id++) {
    const path = pathOf(id);
    const renamed = ENVIRONMENTS.some((e) => driftOf(id, e) === "project-renamed");
    projects.push({
      id,
      path,
      environments: ENVIRONMENTS.filter((e) => driftOf(id, e) !== "environment-deleted"),
    });
    if (renamed) renames.push({ id, path: renamedPathOf(id) });
    for (const environment of ENVIRONMENTS) {
      const drift = driftOf(id, environment);
      const onboarded = plan(policy, issuer, id, path, environment);
      const ids = { appObjectId: randomUUID(), appId: randomUUID(), spObjectId: randomUUID() };
      let fics = onboarded.fics.map((f) => ({
        name: f.name,
        issuer: f.issuer,
        subject: f.subject,
        audiences: f.audiences,
        description: f.description ?? null,
      }));
      if (drift === "fic-deleted") fics = fics.slice(1);
      if (drift === "fic-edited")
        fics = fics.map((f, i) =>
          i === 0 ? { ...f, subject: f.subject.replace(path, `${path}-edited`) } : f,
        );
      apps.push({
        id: ids.appObjectId,
        appId: ids.appId,
        displayName: onboarded.displayName,
        tags: onboarded.tags,
        federatedIdentityCredentials: fics,
        servicePrincipal: { id: ids.spObjectId },
        memberOf: drift === "membership-removed" ? [] : onboarded.groups,
      });
      identities.push({
        projectId: id,
        environment,
        drift,
        ...ids,
        registeredPath: path,
        registeredDisplayName: onboarded.displayName,
        expected: renamed ? plan(policy, issuer, id, renamedPathOf(id), environment) : onboarded,
      });
    }
  }
  return { identities, entra: { applications: apps }, gitlab: { projects, renames } };
}

/** The part of the world with project ids 1..n (the per-project baseline's sample). */
export function subsetWorld(world: BenchWorld, n: number): BenchWorld {
  const keepApps = new Set(world.identities.filter((i) => i.projectId <= n).map((i) => i.appObjectId));
  return {
    identities: world.identities.filter((i) => i.projectId <= n),
    entra: { applications: world.entra.applications.filter((a) => keepApps.has(a.id)) },
    gitlab: {
      projects: world.gitlab.projects.filter((p) => (p.id ?? 0) <= n),
      renames: world.gitlab.renames.filter((r) => r.id <= n),
    },
  };
}

/**
 * The registry as onboarding left it: one complete pin per identity at the registered path, the `sub` layout,
 * and environmentSeenAt on every pin (GitLab listed both environments when they were onboarded; the cleanup
 * reads "seen once, now absent" as deleted). Older bots ignore the extra pin field.
 */
export async function seedRegistry(redis: Redis, prefix: string, world: BenchWorld): Promise<void> {
  const registry = new Registry(redis, prefix);
  const seenAt = "2026-01-01T00:00:00.000Z";
  const components = ["project_path", "ref_type", "ref"] as const;
  const chunk = 500;
  for (let i = 0; i < world.identities.length; i += chunk) {
    await Promise.all(
      world.identities.slice(i, i + chunk).map((identity) => {
        const pin: IdentityPin & { environmentSeenAt: string } = {
          environment: identity.environment,
          displayName: identity.registeredDisplayName,
          appObjectId: identity.appObjectId,
          appId: identity.appId,
          appCreatedAt: seenAt,
          spObjectId: identity.spObjectId,
          spCreatedAt: seenAt,
          grantPath: identity.registeredPath,
          environmentSeenAt: seenAt,
        };
        return registry.savePin(identity.projectId, identity.registeredPath, pin);
      }),
    );
  }
  const ids = [...new Set(world.identities.map((i) => i.projectId))];
  for (let i = 0; i < ids.length; i += chunk) {
    await Promise.all(
      ids.slice(i, i + chunk).map((id) => registry.setSubjectLayout(id, { components: [...components] })),
    );
  }
}
