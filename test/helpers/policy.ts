import { type Policy, parsePolicy } from "../../src/config/policy.ts";

export const PROD_GROUP = "11111111-1111-4111-8111-111111111111";
export const STAGING_GROUP = "22222222-2222-4222-8222-222222222222";

/** A policy shaped like policy.example.yaml, with overrides as YAML text appended. */
export function testPolicy(extraYaml = ""): Policy {
  return parsePolicy(`
gitlab:
  subClaimComponents: [project_path, ref_type, ref]
  audience: api://AzureADTokenExchange
scope:
  include: ["**"]
  exclude: ["excluded/**"]
onProjectCreate:
  environments: [staging, production]
  openIssue: true
  setCiVariables: true
environments:
  production:
    refs: ["branch:main"]
    groups: ["${PROD_GROUP}"]
    minAccessLevel: maintainer
    onFirstDeployment: false
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${STAGING_GROUP}"]
    minAccessLevel: developer
    onFirstDeployment: true
${extraYaml}`);
}

/**
 * The sandbox policy as it was before rules and privileged environments, with production made automatic
 * and unbound on purpose (autoOnboard, allowUnprotectedRefs: the documented risk flags). End-to-end tests of
 * other features (lifecycle, drift, commands, reliability) run on it, so they keep testing what they test;
 * the privileged-environment behaviour has its own tests on the real sandbox policy.
 */
export function e2ePolicyYaml(): string {
  return `# Test policy: production onboarded automatically and not bound to protected refs (see e2ePolicyYaml).
gitlab:
  subClaimComponents: [project_path, ref_type, ref]
  audience: api://AzureADTokenExchange
scope:
  include: ["**"]
  exclude: ["sandbox-excluded/**"]
onProjectCreate:
  environments: [staging, production]
  openIssue: true
  setCiVariables: true
environments:
  production:
    refs: ["branch:main"]
    groups: ["${PROD_GROUP}"]
    minAccessLevel: maintainer
    onFirstDeployment: false
    autoOnboard: true
    allowUnprotectedRefs: true
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${STAGING_GROUP}"]
    minAccessLevel: developer
    onFirstDeployment: true
  "review/*":
    refs: ["branch:develop"]
    minAccessLevel: developer
    onFirstDeployment: true
`;
}
