import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { spFor } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Group templates are not injective: `{namespace}` is the namespace path with "/" replaced by "-", so
 * `teams/a-b` and `teams/a/b` both render `sg-teams-a-b-staging`. The README's advice (keep a template in a
 * rule whose match covers only the team) does not help inside the team's own rule: anyone who may create a
 * subgroup under teams/a (its Maintainers, or Developers where the group allows it) can create teams/a/b and
 * a project in it, whose staging the policy onboards automatically into team a-b's group.
 */
const { alice, dave } = SANDBOX.users;
const TEAM_AB_STAGING = "55555555-5555-4555-8555-5555555555ab";

function policyYaml(): string {
  return `
gitlab:
  audience: api://AzureADTokenExchange
scope:
  include: ["**"]
onProjectCreate:
  environments: [staging]
  openIssue: false
  setCiVariables: false
environments:
  staging:
    refs: ["branch:main"]
    groups: ["${SANDBOX.stagingGroup}"]
    minAccessLevel: developer
rules:
  - name: teams
    match: ["teams/**"]
    environments:
      staging:
        refs: ["branch:main"]
        groups: ["sg-{namespace}-{environment}"]
        minAccessLevel: developer
`;
}

let stack: SandboxStack;

beforeAll(async () => {
  stack = await testStack("attack-templates", { policyYaml: policyYaml() });
  stack.entra.state.groups.set(TEAM_AB_STAGING, {
    id: TEAM_AB_STAGING,
    displayName: "sg-teams-a-b-staging",
    description: null,
    members: new Set(),
  });
});
afterAll(async () => {
  await stack?.close();
});

const inGroup = (projectId: number) => {
  const sp = spFor(stack, projectId, "staging");
  return Boolean(sp && stack.entra.state.groups.get(TEAM_AB_STAGING)?.members.has(sp.id));
};

describe("{namespace} collisions inside one team rule", () => {
  it("team a-b's project joins its group (the template works as intended)", async () => {
    const { project } = await stack.driver.createProject("teams/a-b/api", { members: { [alice.id]: 40 } });
    await settled(stack);
    expect(inGroup(project.id)).toBe(true);
    expect(await failures(stack)).toEqual([]);
  });

  // OPEN FINDING (left failing on purpose, see the report): templates are resolved by display name only, and
  // `{namespace}` (also `{project}`) renders different paths to the same name. A fix needs either an
  // ambiguity check against GitLab at resolution (every other namespace path that renders the same value,
  // up to 2^k lookups for k dashes, invisible private namespaces missed) or a per-group claim of the first
  // namespace that resolved it (first come first served: an attacker who comes first keeps the group). Both
  // are larger than a local fix; until then the policy should only use `{top}` (unique across GitLab) or
  // group ids in templates that grant anything, which the shipped example and sandbox policies do.
  it.fails("a project in a subgroup teams/a/b does not join team a-b's group", async () => {
    const { project } = await stack.driver.createProject("teams/a/b/evil", { members: { [dave.id]: 40 } });
    await settled(stack);
    expect(inGroup(project.id)).toBe(false);
  });
});
