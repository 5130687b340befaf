import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { inScope, parsePolicy } from "../../src/config/policy.ts";
import { ConfigError } from "../../src/config/problems.ts";
import { environmentFor, policyWarnings, projectRule } from "../../src/policy/rules.ts";

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/policies/${name}`, import.meta.url), "utf8");

const TEAMS = `
onProjectCreate:
  environments: [staging]
environments:
  staging:
    refs: ["branch:main"]
    groups: ["00000000-0000-4000-8000-000000000001"]
    minAccessLevel: developer
rules:
  - name: payments-secure
    match: ["payments/secure/**"]
    environments:
      staging:
        refs: ["branch:release"]
        groups: ["sg-secure-{environment}"]
  - name: payments
    match: ["payments/**", "billing/*"]
    onProjectCreate: { environments: [] }
    environments:
      staging:
        refs: ["branch:main"]
        groups: ["sg-{namespace}-{environment}"]
      production:
        refs: ["branch:main"]
        groups: ["sg-{top}-prod"]
        approvers: ["alice", "payments/leads"]
`;

function problems(yaml: string): string[] {
  try {
    parsePolicy(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.name}: ${p.problem}`);
    throw err;
  }
  return [];
}

describe("policy rules", () => {
  const policy = parsePolicy(TEAMS);

  it("first matching rule wins, in file order, nested paths included", () => {
    expect(projectRule(policy, "payments/secure/vault").name).toBe("payments-secure");
    expect(projectRule(policy, "payments/secure/deep/er/vault").name).toBe("payments-secure");
    expect(projectRule(policy, "payments/api").name).toBe("payments");
    expect(projectRule(policy, "payments/team-a/api").name).toBe("payments");
    expect(projectRule(policy, "billing/invoices").name).toBe("payments");
    // billing/* is one level only
    expect(projectRule(policy, "billing/sub/invoices").name).toBe("default");
  });

  it("matches case-insensitively, like GitLab paths", () => {
    expect(projectRule(policy, "Payments/Secure/Vault").name).toBe("payments-secure");
    expect(projectRule(policy, "PAYMENTS/api").name).toBe("payments");
  });

  it("projects no rule matches use the top-level environments (the default rule)", () => {
    const rule = projectRule(policy, "dave/side-project");
    expect(rule.name).toBe("default");
    expect(rule.index).toBe(-1);
    expect(environmentFor(policy, "dave/side-project", "staging")?.where).toBe("environments.staging");
    expect(environmentFor(policy, "dave/side-project", "production")).toBeUndefined();
    expect(environmentFor(policy, "payments/api", "production")?.where).toBe(
      "rules[1].environments.production",
    );
  });

  it("a rule's environments replace the default's; onProjectCreate fields are inherited when absent", () => {
    expect(projectRule(policy, "payments/secure/x").onProjectCreate.environments).toEqual(["staging"]);
    expect(projectRule(policy, "payments/x").onProjectCreate.environments).toEqual([]);
    expect(projectRule(policy, "payments/x").onProjectCreate.openIssue).toBe(true);
    expect(environmentFor(policy, "payments/secure/x", "production")).toBeUndefined();
  });

  it("environment names that are Object.prototype members find nothing", () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      expect(environmentFor(policy, "payments/api", name)).toBeUndefined();
      expect(environmentFor(policy, "dave/x", name, "staging")?.key ?? "none").not.toBe(name);
    }
  });

  it("privileged: production by name or tier by default, explicit false wins", () => {
    const p = parsePolicy(`
environments:
  production: { refs: ["branch:main"] }
  prod-eu: { refs: ["branch:main"], tier: production }
  staging: { refs: ["branch:main"] }
  live: { refs: ["branch:main"], privileged: true }
  "review/*": { refs: ["branch:main"] }
  sandbox-production: { refs: ["branch:main"], privileged: false, tier: production }
`);
    const priv = (env: string, tier?: string) => environmentFor(p, "g/p", env, tier)?.privileged;
    expect(priv("production")).toBe(true);
    expect(priv("prod-eu")).toBe(true);
    expect(priv("staging")).toBe(false);
    expect(priv("live")).toBe(true);
    expect(priv("review/x")).toBe(false);
    // GitLab's own tier (first deployment) can only make an environment more guarded
    expect(priv("review/x", "production")).toBe(true);
    expect(priv("sandbox-production")).toBe(false);
  });

  it("lists every problem at once: placeholders, templates, privileged-only fields, onProjectCreate", () => {
    const found = problems(`
onProjectCreate:
  environments: [staging, qa]
environments:
  staging:
    refs: ["branch:main"]
    groups: ["sg-{team}-{environment}", "sg-{namespace", " padded", "{environment}}"]
    approvers: ["alice"]
    autoOnboard: true
  production:
    refs: ["branch:main"]
    groups: ["${"x".repeat(300)}"]
    approvers: ["alice"]
    autoOnboard: true
rules:
  - match: ["a/**"]
    environments:
      dev:
        refs: ["branch:main"]
        allowUnprotectedRefs: true
        approvers: ["not a user!"]
`);
    const text = found.join("\n");
    expect(text).toMatch(/unknown placeholder \{team\}/);
    expect(text).toMatch(/"\{" at position 4 is never closed/);
    expect(text).toMatch(/must not start or end with whitespace/);
    expect(text).toMatch(/"\}" at position 14 has no opening/);
    expect(text).toMatch(/fixed text alone is 300 characters/);
    expect(text).toMatch(/environments\.staging\.approvers: only applies to privileged environments/);
    expect(text).toMatch(/environments\.staging\.autoOnboard: only applies to privileged/);
    expect(text).toMatch(/environments\.production: approvers and autoOnboard exclude each other/);
    expect(text).toMatch(/rules\.0\.environments\.dev\.allowUnprotectedRefs: only applies/);
    expect(text).toMatch(/rules\.0\.environments\.dev\.approvers\.0: must be a GitLab username/);
    expect(text).toMatch(/environment "qa" has no rule under environments/);
    // rules[0] inherits [staging, qa] but has only dev
    expect(text).toMatch(/onProjectCreate\.environments: environment "staging" has no rule under rules\[0\]/);
    expect(found.length).toBeGreaterThanOrEqual(12);
  });

  it("reserved environment keys are refused instead of silently dropped", () => {
    expect(problems(`environments:\n  constructor: { refs: ["branch:main"] }\n`).join()).toMatch(/reserved/);
  });

  it("scope globs are case-insensitive", () => {
    const p = parsePolicy("scope:\n  include: ['platform/**']\n  exclude: ['platform/legacy-*']\n");
    expect(inScope(p, "Platform/api")).toBe(true);
    expect(inScope(p, "PLATFORM/Legacy-app")).toBe(false);
  });
});

describe("policy files written before rules still start", () => {
  it.each([["example-before-rules.yaml"], ["sandbox-before-rules.yaml"]])(
    "%s loads, production becomes privileged and is skipped on project creation with a warning",
    (file) => {
      const p = parsePolicy(fixture(file), file);
      expect(p.rules).toEqual([]);
      const prod = environmentFor(p, "dave/side-project", "production");
      expect(prod?.privileged).toBe(true);
      expect(prod?.settings.autoOnboard).toBe(false);
      expect(environmentFor(p, "dave/side-project", "staging")?.privileged).toBe(false);
      const warnings = policyWarnings(p);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/onProjectCreate\.environments lists "production", which is privileged/);
      expect(warnings[0]).toMatch(/set autoOnboard: true on environments\.production/);
    },
  );

  it("no warning when the privileged environment says autoOnboard, or is not auto-listed", () => {
    expect(
      policyWarnings(
        parsePolicy(
          "onProjectCreate: { environments: [production] }\nenvironments:\n  production: { refs: ['branch:main'], autoOnboard: true }\n",
        ),
      ),
    ).toEqual([]);
    expect(policyWarnings(parsePolicy(TEAMS))).toEqual([]);
  });
});
