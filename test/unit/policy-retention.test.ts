import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { ConfigError } from "../../src/config/problems.ts";
import { explainProject } from "../../src/policy/explain.ts";
import { environmentFor, retainStoppedDays } from "../../src/policy/rules.ts";

const ENVS = `
environments:
  staging:
    refs: ["branch:main"]
  "review/*":
    refs: ["branch:develop"]
    retainStoppedEnvironmentDays: 1
rules:
  - match: ["payments/**"]
    environments:
      "review/*":
        refs: ["branch:develop"]
        retainStoppedEnvironmentDays: 0
      staging:
        refs: ["branch:main"]
`;

function problems(yaml: string): string[] {
  try {
    parsePolicy(yaml, "policy.yaml");
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.name}: ${p.problem}`);
    throw err;
  }
  return [];
}

describe("policy: retainStoppedEnvironmentDays", () => {
  it("defaults to 7 days, from retention: or the top level (same meaning)", () => {
    const none = parsePolicy(ENVS);
    expect(retainStoppedDays(none, environmentFor(none, "a/b", "staging"))).toEqual({
      days: 7,
      where: "default",
    });
    const nested = parsePolicy(`retention:\n  retainStoppedEnvironmentDays: 3\n${ENVS}`);
    expect(retainStoppedDays(nested, environmentFor(nested, "a/b", "staging"))).toEqual({
      days: 3,
      where: "retention.retainStoppedEnvironmentDays",
    });
    // disabledIdentityDays keeps its own default next to it.
    expect(nested.retention.disabledIdentityDays).toBe(30);
    const top = parsePolicy(`retainStoppedEnvironmentDays: 14\n${ENVS}`);
    expect(retainStoppedDays(top, environmentFor(top, "a/b", "staging"))).toEqual({
      days: 14,
      where: "retainStoppedEnvironmentDays",
    });
    const both = parsePolicy(
      `retainStoppedEnvironmentDays: 5\nretention:\n  retainStoppedEnvironmentDays: 5\n${ENVS}`,
    );
    expect(retainStoppedDays(both, undefined).days).toBe(5);
  });

  it("an environment entry overrides it, in the default rule and in a team rule", () => {
    const p = parsePolicy(`retention:\n  retainStoppedEnvironmentDays: 3\n${ENVS}`);
    expect(retainStoppedDays(p, environmentFor(p, "a/b", "review/x"))).toEqual({
      days: 1,
      where: "environments.review/*.retainStoppedEnvironmentDays",
    });
    expect(retainStoppedDays(p, environmentFor(p, "payments/api", "review/x"))).toEqual({
      days: 0,
      where: "rules[0].environments.review/*.retainStoppedEnvironmentDays",
    });
    // An environment no rule names any more falls back to the policy's value.
    expect(retainStoppedDays(p, environmentFor(p, "a/b", "qa")).days).toBe(3);
  });

  it("two different values, negative or fractional days are config problems listed with the others", () => {
    const listed = problems(
      `retainStoppedEnvironmentDays: 5\nretention:\n  retainStoppedEnvironmentDays: 9\nmaxIdentitiesPerProject: 0\n${ENVS}`,
    );
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^policy\.yaml: retainStoppedEnvironmentDays: is 5 here but 9 under retention: give it in one place/,
        ),
        expect.stringMatching(/^policy\.yaml: maxIdentitiesPerProject: /),
      ]),
    );
    expect(problems(`retention:\n  retainStoppedEnvironmentDays: -1\n${ENVS}`)).toEqual([
      expect.stringMatching(/^policy\.yaml: retention\.retainStoppedEnvironmentDays: /),
    ]);
    expect(
      problems(
        `environments:\n  "review/*":\n    refs: ["branch:develop"]\n    retainStoppedEnvironmentDays: 1.5\n`,
      ),
    ).toEqual([
      expect.stringMatching(/environments\.review\/\*\.retainStoppedEnvironmentDays: .*whole number/),
    ]);
  });

  it("policy explain shows the effective value per environment and where it comes from", async () => {
    const p = parsePolicy(`retainStoppedEnvironmentDays: 4\n${ENVS}`);
    const text = await explainProject({
      policy: p,
      projectPath: "a/b",
      issuer: "https://gitlab.example.com",
    });
    expect(text).toContain(
      "once GitLab shows it stopped or deleted: identity removed after 4 days (retainStoppedEnvironmentDays: 4, from retainStoppedEnvironmentDays)",
    );
    expect(text).toContain(
      "identity removed after 1 day (retainStoppedEnvironmentDays: 1, from environments.review/*.retainStoppedEnvironmentDays)",
    );
  });
});
