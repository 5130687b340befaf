import { describe, expect, it } from "vitest";
import { FEDERATION_TEXTS, judgeAssertion } from "../../src/sandbox/entra-sim/federation.ts";
import { parseFlexibleExpression, wildcardMatch } from "../../src/sandbox/entra-sim/flexible-expression.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

/**
 * The Entra simulator's token-exchange judge, pinned by Microsoft's documented rules and bodies
 * (reference/entra.md §1-3, fixtures graph/token-error-*.json). It shares no code with the bot's
 * src/entra/fic-match.ts (test/unit/sandbox-boundary.test.ts keeps it so).
 */
const ISS = "https://gitlab.example.com";
const SUB = "project_path:my-group/my-project:ref_type:branch:ref:main";
const AUD = "api://AzureADTokenExchange";
const fic = (over: Record<string, unknown> = {}) => ({
  issuer: ISS,
  subject: SUB,
  audiences: [AUD],
  ...over,
});
const token = (over: Record<string, unknown> = {}) => ({ iss: ISS, sub: SUB, aud: AUD, ...over });
type TokenError = { error: string; error_description: string; error_codes: number[] };
/** The AADSTS text of a documented body: error_description up to Entra's trace tail. */
const textOf = (body: TokenError) => body.error_description.split(/\r\n| Trace ID: /)[0];

describe("exact, case-sensitive issuer, subject and single audience", () => {
  it("accepts only an exact match on all three", () => {
    expect(judgeAssertion(token(), [fic()])).toMatchObject({ accepted: true });
    expect(judgeAssertion(token({ aud: ["https://gitlab.com", AUD] }), [fic()])).toMatchObject({
      accepted: true,
    });
  });

  it("an issuer that differs by a trailing slash, case or whitespace is another issuer: AADSTS700211", () => {
    for (const iss of [`${ISS}/`, ISS.toUpperCase(), ` ${ISS}`, `${ISS} `]) {
      expect(judgeAssertion(token({ iss }), [fic()])).toMatchObject({
        accepted: false,
        code: 700211,
        error: "invalid_client",
      });
    }
  });

  it("a subject that differs only in case: AADSTS7002138; otherwise AADSTS700213", () => {
    expect(judgeAssertion(token({ sub: SUB.replace("my-group", "My-Group") }), [fic()])).toMatchObject({
      code: 7002138,
    });
    expect(judgeAssertion(token({ sub: SUB.replace("main", "develop") }), [fic()])).toMatchObject({
      code: 700213,
    });
    expect(judgeAssertion(token({ sub: `${SUB}/` }), [fic()])).toMatchObject({ code: 700213 });
  });

  it("an audience that is not the credential's one value: AADSTS70021 (or 7002121 when asked); two audiences never match", () => {
    expect(judgeAssertion(token({ aud: "https://gitlab.example.com" }), [fic()])).toMatchObject({
      code: 70021,
      error: "invalid_request",
    });
    expect(judgeAssertion(token({ aud: AUD.toUpperCase() }), [fic()])).toMatchObject({ code: 70021 });
    expect(judgeAssertion(token({ aud: "x" }), [fic()], { audienceMismatchCode: 7002121 })).toMatchObject({
      code: 7002121,
    });
    expect(judgeAssertion(token(), [fic({ audiences: [AUD, "other"] })])).toMatchObject({ code: 70021 });
  });

  it("no credential at all is an unknown issuer", () => {
    expect(judgeAssertion(token(), [])).toMatchObject({ code: 700211 });
  });
});

describe("documented error bodies", () => {
  it("AADSTS70021 reproduces the verbatim fixture's text for the fixture's assertion", () => {
    const body = fixtureJson<TokenError>("graph/token-error-aadsts70021.json");
    const m =
      /Assertion Issuer: '([^']*)'\. Assertion Subject: '([^']*)'\. Assertion Audience: '([^']*)'/.exec(
        body.error_description,
      );
    const [, iss = "", sub = "", aud = ""] = m ?? [];
    const verdict = judgeAssertion({ iss, sub, aud }, [
      { issuer: iss, subject: sub, audiences: ["something-else"] },
    ]);
    expect(verdict).toMatchObject({ accepted: false, code: body.error_codes[0], error: body.error });
    expect(verdict.accepted ? "" : verdict.text).toBe(textOf(body));
  });

  it("AADSTS700211 reproduces the fixture's text (adapted from Azure/azure-workload-identity#1200)", () => {
    const body = fixtureJson<TokenError>("graph/token-error-aadsts700211.json");
    const iss = /presented assertion issuer '([^']*)'/.exec(body.error_description)?.[1] ?? "";
    const verdict = judgeAssertion({ iss, sub: "system:serviceaccount:default:default", aud: AUD }, [fic()]);
    expect(verdict).toMatchObject({ accepted: false, code: body.error_codes[0], error: body.error });
    expect(verdict.accepted ? "" : verdict.text).toBe(textOf(body));
  });

  it("the other codes carry the documented wording (reference/entra.md §3 table)", () => {
    expect(FEDERATION_TEXTS[700213]({ sub: "s" })).toMatch(
      /^AADSTS700213: No matching federated identity record found for presented assertion subject 's'\. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion\./,
    );
    expect(FEDERATION_TEXTS[7002138]({ sub: "s" })).toContain(
      "The subject matches with case-insensitive comparison, but not with case-sensitive comparison.",
    );
    expect(FEDERATION_TEXTS[7002121]({ aud: "a" })).toMatch(
      /^AADSTS7002121: No matching federated identity record found for presented assertion audience 'a'/,
    );
  });
});

describe("flexible credentials (claimsMatchingExpression, documented grammar)", () => {
  it("parses every documented expression", () => {
    for (const [name, path] of [
      ["fic-create-request-flexible-gitlab", "graph/fic-create-request-flexible-gitlab.json"],
      ["azure-fic-body-flexible-all-branches", "gitlab/azure-fic-body-flexible-all-branches.json"],
      ["entra-fic-flexible-gitlab-immutable", "gitlab/entra-fic-flexible-gitlab-immutable.json"],
    ] as const) {
      const body = fixtureJson<{ claimsMatchingExpression: { value: string } }>(path);
      expect(parseFlexibleExpression(body.claimsMatchingExpression.value), name).not.toBeNull();
    }
    expect(parseFlexibleExpression("claims['sub'] matches 'a*' and claims['project_id'] eq '1'")).toEqual([
      { claim: "sub", operator: "matches", comparand: "a*" },
      { claim: "project_id", operator: "eq", comparand: "1" },
    ]);
  });

  it("refuses what the grammar does not have: or, double quotes, missing spaces, unknown operators", () => {
    for (const bad of [
      "claims['sub'] matches 'a' or claims['sub'] matches 'b'",
      'claims["sub"] matches "a"',
      "claims['sub']matches 'a'",
      "claims['sub'] contains 'a'",
      "claims['sub'] matches 'a' and",
      "",
    ]) {
      expect(parseFlexibleExpression(bad), bad).toBeNull();
    }
  });

  it("matches: * any run, ? one character, everything else literal and case-sensitive", () => {
    expect(
      wildcardMatch(
        "project_path:g/p:ref_type:branch:ref:*",
        "project_path:g/p:ref_type:branch:ref:feature/x",
      ),
    ).toBe(true);
    expect(
      wildcardMatch("project_path:g/p:ref_type:branch:ref:*", "project_path:g/p:ref_type:tag:ref:v1"),
    ).toBe(false);
    expect(wildcardMatch("v?", "v1")).toBe(true);
    expect(wildcardMatch("v?", "v12")).toBe(false);
    expect(wildcardMatch("a.c", "abc")).toBe(false);
    expect(wildcardMatch("A*", "a1")).toBe(false);
    expect(wildcardMatch("*", "")).toBe(true);
    expect(wildcardMatch("a*b*c", "a-b-b-c")).toBe(true);
  });

  it("the documented GitLab immutable expression accepts the project by id, refuses another namespace", () => {
    const body = fixtureJson<{
      issuer: string;
      audiences: string[];
      claimsMatchingExpression: { value: string; languageVersion: number };
    }>("gitlab/entra-fic-flexible-gitlab-immutable.json");
    const credential = { ...body, subject: null };
    const presented = {
      iss: "https://gitlab.com",
      aud: AUD,
      sub: "project_id:57382910:ref_type:branch:ref:main",
      project_id: "57382910",
      namespace_id: "<namespace-id>",
    };
    expect(judgeAssertion(presented, [credential])).toMatchObject({ accepted: true });
    expect(judgeAssertion({ ...presented, namespace_id: "1" }, [credential])).toMatchObject({ code: 700213 });
    expect(
      judgeAssertion({ ...presented, sub: "project_id:57382911:ref_type:branch:ref:main" }, [credential]),
    ).toMatchObject({ code: 700213 });
  });
});
