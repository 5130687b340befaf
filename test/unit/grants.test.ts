import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { grantKey, moveNeedsNewGrant } from "../../src/policy/grants.ts";

const P = "11111111-1111-4111-8111-111111111111";
const policy = parsePolicy(`
gitlab:
  audience: api://AzureADTokenExchange
onProjectCreate: { environments: [staging] }
environments:
  staging: { refs: ["branch:main"], groups: ["${P}"], minAccessLevel: developer }
  production: { refs: ["branch:main"], groups: ["${P}"], minAccessLevel: maintainer, approvers: [alice] }
rules:
  - match: ["teams/**"]
    environments:
      staging: { refs: ["branch:main"], groups: ["sg-{namespace}-{environment}"], minAccessLevel: developer }
      production:
        refs: ["branch:main"]
        groups: ["sg-{namespace}-{environment}"]
        minAccessLevel: maintainer
        approvers: [teams/leads]
  - match: ["auto/**"]
    onProjectCreate: { environments: [] }
    environments:
      production: { refs: ["branch:main"], groups: ["${P}"], minAccessLevel: maintainer, autoOnboard: true }
`);

describe("grantKey", () => {
  it("names the rule's setting and the groups rendered for the path", () => {
    expect(grantKey(policy, "teams/a/app", "production")).toBe(
      JSON.stringify(["rules[0].environments.production", ["name:sg-teams-a-production"]]),
    );
    expect(grantKey(policy, "dave/app", "production")).toBe(
      JSON.stringify(["environments.production", [`id:${P}`]]),
    );
    expect(grantKey(policy, "auto/app", "staging")).toBeUndefined();
  });
});

describe("moveNeedsNewGrant", () => {
  it("a privileged environment moved to another rule, or to another template group, needs a new grant", () => {
    expect(moveNeedsNewGrant(policy, "teams/a/app", "dave/app", "production")).toBe(true);
    expect(moveNeedsNewGrant(policy, "dave/app", "teams/a/app", "production")).toBe(true);
    expect(moveNeedsNewGrant(policy, "teams/a/app", "teams/b/app", "production")).toBe(true);
  });

  it("a rename that keeps the grant, an automatic privileged one and a non-privileged one do not", () => {
    expect(moveNeedsNewGrant(policy, "teams/a/app", "teams/a/api", "production")).toBe(false);
    expect(moveNeedsNewGrant(policy, "dave/app", "erin/app", "production")).toBe(false);
    expect(moveNeedsNewGrant(policy, "dave/app", "auto/app", "production")).toBe(false);
    expect(moveNeedsNewGrant(policy, "teams/a/app", "dave/app", "staging")).toBe(false);
  });

  it("an environment the new path's rule does not have loses its grant; one that had none before keeps none", () => {
    expect(moveNeedsNewGrant(policy, "dave/app", "auto/app", "staging")).toBe(true);
    expect(moveNeedsNewGrant(policy, "auto/app", "auto/api", "staging")).toBe(false);
  });
});
