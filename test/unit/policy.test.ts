import { describe, expect, it } from "vitest";
import { environmentRule, inScope, parsePolicy } from "../../src/config/policy.ts";
import { ConfigError } from "../../src/config/problems.ts";
import { testPolicy } from "../helpers/policy.ts";

describe("policy", () => {
  it("fills defaults for an almost empty policy", () => {
    const p = parsePolicy("environments:\n  production:\n    refs: ['branch:main']\n");
    // Rename-proof by default; the marker tells the worker it may fall back where GitLab refuses project_id.
    expect(p.gitlab.subClaimComponents).toEqual(["project_id", "ref_type", "ref"]);
    expect(p.gitlab.subClaimComponentsExplicit).toBe(false);
    expect(p.retention).toEqual({ disabledIdentityDays: 30 });
    expect(p.gitlab.audience).toBe("api://AzureADTokenExchange");
    expect(p.scope).toEqual({ include: ["**"], exclude: [] });
    expect(p.environments.production?.minAccessLevel).toBe("maintainer");
    expect(p.environments.production?.onFirstDeployment).toBe(false);
  });

  it("an explicit sub-claim layout is marked explicit, project_path included", () => {
    const p = parsePolicy("gitlab:\n  subClaimComponents: [project_path, ref_type, ref]\nenvironments: {}\n");
    expect(p.gitlab.subClaimComponents).toEqual(["project_path", "ref_type", "ref"]);
    expect(p.gitlab.subClaimComponentsExplicit).toBe(true);
    expect(() => parsePolicy("gitlab:\n  subClaimComponentsExplicit: true\nenvironments: {}\n")).toThrow(
      ConfigError,
    );
    expect(parsePolicy("retention:\n  disabledIdentityDays: 0\nenvironments: {}\n").retention).toEqual({
      disabledIdentityDays: 0,
    });
    expect(() => parsePolicy("retention:\n  disabledIdentityDays: -1\nenvironments: {}\n")).toThrow(
      ConfigError,
    );
  });

  it("environment names are looked up among the policy's own keys, never Object.prototype's", () => {
    const p = testPolicy();
    for (const name of [
      "constructor",
      "__proto__",
      "toString",
      "hasOwnProperty",
      "valueOf",
      "__defineGetter__",
    ]) {
      expect(environmentRule(p, name)).toBeUndefined();
    }
    expect(environmentRule(p, "staging")?.rule).toBe("staging");
  });

  it("keeps the issuer verbatim (no normalisation of what Entra compares byte for byte)", () => {
    const p = parsePolicy("gitlab:\n  issuer: https://gitlab.example.com\nenvironments: {}\n");
    expect(p.gitlab.issuer).toBe("https://gitlab.example.com");
  });

  it("accepts project_id subjects with deployment_tier appended, refuses both heads or no ref", () => {
    expect(
      parsePolicy(
        "gitlab:\n  subClaimComponents: [project_id, ref_type, ref, deployment_tier]\nenvironments: {}\n",
      ).gitlab.subClaimComponents,
    ).toEqual(["project_id", "ref_type", "ref", "deployment_tier"]);
    expect(() =>
      parsePolicy("gitlab:\n  subClaimComponents: [project_id, project_path, ref]\nenvironments: {}\n"),
    ).toThrow(/not both/);
    expect(() =>
      parsePolicy("gitlab:\n  subClaimComponents: [project_path, ref_type]\nenvironments: {}\n"),
    ).toThrow(/include ref/);
  });

  it("reports duplicate YAML keys instead of silently taking the last", () => {
    expect(() => parsePolicy("environments: {}\nenvironments: {}\n")).toThrow(ConfigError);
  });

  it("scope: globs over path_with_namespace, exclude wins, case-insensitive like GitLab paths", () => {
    const p = testPolicy();
    expect(inScope(p, "group/project")).toBe(true);
    expect(inScope(p, "a/b/c/d")).toBe(true);
    expect(inScope(p, "excluded/thing")).toBe(false);
    expect(inScope(p, "excluded/deep/thing")).toBe(false);
    expect(inScope(p, "Excluded/thing")).toBe(false);
    const narrow = parsePolicy(
      "scope:\n  include: ['platform/**']\n  exclude: ['platform/legacy-*']\nenvironments: {}\n",
    );
    expect(inScope(narrow, "platform/api")).toBe(true);
    expect(inScope(narrow, "platform/legacy-app")).toBe(false);
    expect(inScope(narrow, "other/api")).toBe(false);
  });

  it("environment rules: exact name first, then globs, then tier", () => {
    const p = parsePolicy(`
environments:
  "review/*":
    refs: ["branch:develop"]
  production:
    refs: ["branch:main"]
    tier: production
`);
    expect(environmentRule(p, "production")?.rule).toBe("production");
    expect(environmentRule(p, "review/feature-1")?.rule).toBe("review/*");
    expect(environmentRule(p, "prod-eu", "production")?.rule).toBe("production");
    expect(environmentRule(p, "prod-eu", "staging")).toBeUndefined();
    expect(environmentRule(p, "qa")).toBeUndefined();
  });
});
