import { describe, expect, it } from "vitest";
import { type DoctorFic, diagnose } from "../../src/doctor/diagnose.ts";
import { caretLines, renderMarkdown, renderTerminal } from "../../src/doctor/render.ts";
import { subjectFor } from "../../src/onboarding/planner.ts";
import { testPolicy } from "../helpers/policy.ts";

const ISS = "https://gitlab.example.com";
const AUD = "api://AzureADTokenExchange";
const policy = testPolicy();
const project = { id: 42, path: "g/app" };
const env = { tier: "production", protected: true };
const now = new Date("2025-01-01T12:00:00Z");
const nowS = now.getTime() / 1000;

/** Credentials as the planner writes them (same subject builder). */
const fic = (environment: string, refRule: string, extra: Partial<DoctorFic> = {}): DoctorFic => ({
  name: `gitlab-${refRule.replace(/[:/]/g, "-")}`,
  issuer: ISS,
  subject: subjectFor(policy.gitlab.subClaimComponents, project, refRule, env),
  audiences: [AUD],
  environment,
  appId: `app-${environment}`,
  ...extra,
});
const fics = [
  fic("production", "branch:main"),
  fic("staging", "branch:main"),
  fic("staging", "branch:develop"),
];
const claims = (over: Record<string, unknown> = {}) => ({
  iss: ISS,
  sub: "project_path:g/app:ref_type:branch:ref:main",
  aud: [AUD],
  exp: nowS + 300,
  ...over,
});
const codes = (d: ReturnType<typeof diagnose>) => d.verdicts.map((v) => v.code);

describe("diagnose", () => {
  it("a matching token names every environment it logs in to", () => {
    const d = diagnose({ claims: claims(), fics, policy, issuer: ISS, now });
    expect(codes(d)).toEqual(["match"]);
    expect(d.verdicts[0]?.fix).toBe("log in with client id app-production or app-staging");
    expect(d.match?.ok).toBe(true);
  });

  it("subject in project_id form against project_path credentials", () => {
    const d = diagnose({
      claims: claims({ sub: "project_id:42:ref_type:branch:ref:main" }),
      fics,
      policy,
      issuer: ISS,
      now,
      environment: "production",
    });
    expect(codes(d)).toEqual(["subject-form"]);
    expect(d.verdicts[0]?.message).toContain("project path vs id form");
  });

  it("whitespace and trailing slash in the credential's issuer", () => {
    const slash = diagnose({
      claims: claims(),
      fics: [fic("production", "branch:main", { issuer: `${ISS}/` })],
      policy,
      issuer: ISS,
      now,
    });
    expect(codes(slash)).toEqual(["issuer-trailing-slash"]);
    expect(slash.verdicts[0]?.fix).toContain("credential is stale");
    const space = diagnose({
      claims: claims({ sub: "project_path:g/app:ref_type:branch:ref:main " }),
      fics: [fics[0] as DoctorFic],
      policy,
      issuer: ISS,
      now,
    });
    expect(codes(space)).toEqual(["subject-whitespace"]);
  });

  it("a tag named like an allowed branch is not allowed", () => {
    const d = diagnose({
      claims: claims({ sub: "project_path:g/app:ref_type:tag:ref:main" }),
      fics,
      policy,
      issuer: ISS,
      now,
      environment: "production",
    });
    expect(d.verdicts[0]?.message).toBe(
      "tag main is not allowed for production by the policy (allowed: branch main)",
    );
  });

  it("a credential changed 40 s ago is propagating; an older one with an AADSTS answer is suspect", () => {
    const fresh = [fic("production", "branch:main", { changedAt: new Date(now.getTime() - 40_000) })];
    const d = diagnose({
      claims: claims(),
      fics: fresh,
      policy,
      issuer: ISS,
      now,
      aadsts: { code: "AADSTS70021", message: "x" },
    });
    expect(d.verdicts[0]?.message).toMatch(/^credential gitlab-branch-main \(production\) created 40 s ago/);
    const old = [fic("production", "branch:main", { changedAt: new Date(now.getTime() - 3_600_000) })];
    const o = diagnose({
      claims: claims(),
      fics: old,
      policy,
      issuer: ISS,
      now,
      aadsts: { code: "AADSTS70021", message: "x" },
    });
    expect(codes(o)).toEqual(["credential-matches"]);
    expect(o.verdicts[0]?.fix).toContain("AZURE_CLIENT_ID is app-production");
  });

  it("an expired token and an unreachable issuer", () => {
    const d = diagnose({
      claims: claims({ exp: nowS - 10 }),
      fics,
      policy,
      issuer: ISS,
      now,
      issuerCheck: { ok: false, url: `${ISS}/.well-known/openid-configuration`, detail: "HTTP 404" },
    });
    expect(codes(d)).toEqual(["token-expired", "issuer-unreachable"]);
    expect(d.verdicts[1]?.message).toContain("issuer must be reachable for discovery");
  });

  it("an environment without a policy rule", () => {
    const d = diagnose({
      claims: claims({ sub: "project_path:g/app:ref_type:branch:ref:x" }),
      fics,
      policy,
      issuer: ISS,
      now,
      environment: "qa",
    });
    expect(codes(d)).toEqual(["environment-not-in-policy"]);
  });
});

describe("renderers", () => {
  const d = diagnose({
    claims: claims({ sub: "project_path:g/App:ref_type:branch:ref:main" }),
    fics,
    policy,
    issuer: ISS,
    now,
    environment: "production",
  });

  it("carets sit under the differing characters", () => {
    const row = d.rows.find((r) => r.nearest);
    expect(row?.fic.environment).toBe("production");
    const lines = caretLines(row?.subject ?? { expected: "", actual: "", diff: null }, false);
    expect(lines).toEqual([
      'credential "project_path:g/app:ref_type:branch:ref:main"',
      'token      "project_path:g/App:ref_type:branch:ref:main"',
      `           ${" ".repeat(16)}^`,
    ]);
  });

  it("ANSI colours only when asked (a TTY)", () => {
    expect(renderTerminal(d, { colour: false })).not.toContain("\u001b[");
    expect(renderTerminal(d, { colour: true })).toContain("\u001b[31;1m");
    expect(renderTerminal(d, { colour: false })).toContain(
      "project renamed from g/app to g/App (letter case only)",
    );
  });

  it("markdown has the verdict, the side-by-side table and escapes pipes", () => {
    const md = renderMarkdown(d);
    expect(md).toContain("**Verdict**");
    expect(md).toContain(
      "| ID token | `https://gitlab.example.com` | `project_path:g/App:ref_type:branch:ref:main`",
    );
    expect(md).toContain("❌ char 16 (letter case)");
    const piped = diagnose({ claims: claims({ sub: "a|b" }), fics, policy, issuer: ISS, now });
    expect(renderMarkdown(piped)).toContain("`a\\|b`");
  });
});
