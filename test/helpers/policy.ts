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
