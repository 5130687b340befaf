import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { refRuleSchema } from "../../src/config/policy-schema.ts";
import { EntraError } from "../../src/entra/errors.ts";
import { FIC_NAME_PATTERN } from "../../src/onboarding/naming.ts";
import { guessTier, planIdentity, resolveIssuer } from "../../src/onboarding/planner.ts";

const G1 = "11111111-1111-1111-1111-111111111111";
const G2 = "22222222-2222-2222-2222-222222222222";
const ISSUER = "https://gitlab.example.com";

function policy(extra = "", components = "[project_path, ref_type, ref]") {
  return parsePolicy(`
gitlab:
  subClaimComponents: ${components}
environments:
  production:
    refs: ["branch:main"]
    groups: ["${G1}"]
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${G2}"]
  "review/*":
    refs: ["branch:main"]
${extra}`);
}

const project = { id: 42, path: "acme/platform/api" };

describe("planIdentity", () => {
  it("plans one app with tagged, deterministic names and exact GitLab subjects", () => {
    const plan = planIdentity({ project, environment: "staging", policy: policy(), issuer: ISSUER });
    expect(plan).toBeDefined();
    expect(plan?.displayName).toBe("gitlab-acme/platform/api-staging");
    expect(plan?.tags).toEqual([
      "gitlab-entra-bot",
      "gitlab-project:42",
      "gitlab-env:staging",
      "gitlab-path:acme/platform/api",
    ]);
    expect(plan?.groups).toEqual([G2]);
    expect(plan?.fics.map((f) => f.subject)).toEqual([
      "project_path:acme/platform/api:ref_type:branch:ref:main",
      "project_path:acme/platform/api:ref_type:branch:ref:develop",
    ]);
    for (const f of plan?.fics ?? []) {
      expect(f.issuer).toBe(ISSUER);
      expect(f.audiences).toEqual(["api://AzureADTokenExchange"]);
      expect(f.name).toMatch(FIC_NAME_PATTERN);
    }
  });

  it("keeps FIC names across a rename while subjects follow the new path", () => {
    const before = planIdentity({ project, environment: "production", policy: policy(), issuer: ISSUER });
    const after = planIdentity({
      project: { id: 42, path: "acme/renamed-api" },
      environment: "production",
      policy: policy(),
      issuer: ISSUER,
    });
    expect(after?.fics[0]?.name).toBe(before?.fics[0]?.name);
    expect(after?.fics[0]?.subject).toBe("project_path:acme/renamed-api:ref_type:branch:ref:main");
  });

  it("uses project_id subjects and the environment tier when the policy asks", () => {
    const p = policy("", "[project_id, ref_type, ref, deployment_tier]");
    const plan = planIdentity({ project, environment: "production", policy: p, issuer: ISSUER });
    expect(plan?.fics[0]?.subject).toBe("project_id:42:ref_type:branch:ref:main:deployment_tier:production");
    const review = planIdentity({ project, environment: "review/feat-1", policy: p, issuer: ISSUER });
    expect(review?.rule).toBe("review/*");
    expect(review?.fics[0]?.subject).toBe(
      "project_id:42:ref_type:branch:ref:main:deployment_tier:development",
    );
  });

  it("returns undefined for an environment without a rule", () => {
    expect(planIdentity({ project, environment: "qa", policy: policy(), issuer: ISSUER })).toBeUndefined();
  });

  it("refuses more than 20 FICs with a typed, actionable error", () => {
    const refs = Array.from({ length: 21 }, (_, i) => `"branch:b${i}"`).join(", ");
    const p = policy(`  big:\n    refs: [${refs}]\n`);
    let caught: unknown;
    try {
      planIdentity({ project, environment: "big", policy: p, issuer: ISSUER });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EntraError);
    expect((caught as EntraError).code).toBe("PLAN_TOO_MANY_FICS");
    expect((caught as EntraError).permanent).toBe(true);
    expect((caught as EntraError).message).toContain("environments.big.refs");
  });

  it("subjects are exactly GitLab's for unicode, nested groups and long refs", () => {
    const segment = fc
      .string({ minLength: 1, maxLength: 30, unit: "grapheme" })
      .filter((s) => !s.includes("/"));
    fc.assert(
      fc.property(
        fc.array(segment, { minLength: 2, maxLength: 8 }),
        fc.constantFrom("branch", "tag"),
        fc
          .string({ minLength: 1, maxLength: 250, unit: "grapheme" })
          .filter((r) => /^\S/.test(r) && !/[*?]/.test(r)),
        (segments, type, ref) => {
          // Only refs the policy accepts (no line breaks, no wildcards; Git refs have neither).
          fc.pre(refRuleSchema.safeParse(`${type}:${ref}`).success);
          const path = segments.join("/");
          const p = parsePolicy(
            `gitlab:\n  subClaimComponents: [project_path, ref_type, ref]\nenvironments:\n  prod:\n    refs: [${JSON.stringify(`${type}:${ref}`)}]\n`,
          );
          const plan = planIdentity({
            project: { id: 7, path },
            environment: "prod",
            policy: p,
            issuer: ISSUER,
          });
          const fic = plan?.fics[0];
          expect(fic?.subject).toBe(`project_path:${path}:ref_type:${type}:ref:${ref}`);
          // Round trip: the ref rule is recoverable from the subject's tail, byte for byte.
          expect(fic?.subject.slice(`project_path:${path}:ref_type:`.length)).toBe(`${type}:ref:${ref}`);
          expect(fic?.name).toMatch(FIC_NAME_PATTERN);
          expect(plan?.tags).toContain("gitlab-project:7");
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("resolveIssuer / guessTier", () => {
  it("prefers the policy issuer, then GITLAB_OIDC_ISSUER, verbatim", () => {
    const withIssuer = parsePolicy(`gitlab:\n  issuer: https://gitlab.example.com/\nenvironments: {}\n`);
    const cfg = { gitlab: { oidcIssuer: "https://oidc.example.com", url: "https://gitlab.example.com" } };
    expect(resolveIssuer(withIssuer, cfg as never)).toBe("https://gitlab.example.com/");
    expect(resolveIssuer(parsePolicy("environments: {}\n"), cfg as never)).toBe("https://oidc.example.com");
  });

  it("matches GitLab's tier guess", () => {
    expect(guessTier("production")).toBe("production");
    expect(guessTier("staging")).toBe("staging");
    expect(guessTier("review/x")).toBe("development");
    expect(guessTier("qa")).toBe("testing");
    expect(guessTier("sandbox")).toBe("other");
  });
});
