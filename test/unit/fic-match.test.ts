import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AssertionClaims,
  diffField,
  evaluateClaimsExpression,
  type FicLike,
  matchAssertion,
  parseClaimsExpression,
} from "../../src/entra/fic-match.ts";

const ISSUER = "https://gitlab.example.com";
const AUD = "api://AzureADTokenExchange";
const SUB = "project_path:my-group/my-project:ref_type:branch:ref:main";
const fic = (over: Partial<FicLike> = {}): FicLike => ({
  name: "gitlab-branch-main",
  issuer: ISSUER,
  subject: SUB,
  audiences: [AUD],
  ...over,
});
const claims = (over: Partial<AssertionClaims> = {}): AssertionClaims => ({
  iss: ISSUER,
  sub: SUB,
  aud: AUD,
  ...over,
});

describe("matchAssertion", () => {
  it("accepts an exact match and returns the credential", () => {
    const main = fic();
    const result = matchAssertion(claims(), [fic({ name: "other", subject: "x" }), main]);
    expect(result).toEqual({ ok: true, fic: main });
  });

  it("accepts an aud array containing the FIC audience", () => {
    expect(matchAssertion(claims({ aud: ["https://gitlab.com", AUD] }), [fic()]).ok).toBe(true);
  });

  it("no credential with this issuer -> AADSTS700211, nearest explains the trailing slash", () => {
    const result = matchAssertion(claims({ iss: `${ISSUER}/` }), [fic()]);
    expect(result).toMatchObject({ ok: false, code: "AADSTS700211" });
    if (result.ok) return;
    expect(result.message).toBe(
      `AADSTS700211: No matching federated identity record found for presented assertion issuer '${ISSUER}/'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
    );
    expect(result.nearest?.differences).toEqual([
      {
        field: "issuer",
        expected: ISSUER,
        actual: `${ISSUER}/`,
        kind: "trailing-slash",
        index: ISSUER.length,
      },
    ]);
  });

  it("no credentials at all -> AADSTS700211 without nearest", () => {
    const result = matchAssertion(claims(), []);
    expect(result).toMatchObject({ ok: false, code: "AADSTS700211" });
    expect(result).not.toHaveProperty("nearest");
  });

  it("issuer ok, subject differs -> AADSTS700213 with the first differing index", () => {
    const sub = "project_path:my-group/my-project:ref_type:branch:ref:develop";
    const result = matchAssertion(claims({ sub }), [fic()]);
    expect(result).toMatchObject({
      ok: false,
      code: "AADSTS700213",
      nearest: {
        differences: [
          { field: "subject", expected: SUB, actual: sub, kind: "different", index: SUB.indexOf("main") },
        ],
      },
    });
  });

  it("subject equal only ignoring case -> AADSTS7002138", () => {
    const result = matchAssertion(claims({ sub: SUB.replace("my-group", "My-Group") }), [fic()]);
    expect(result).toMatchObject({ ok: false, code: "AADSTS7002138" });
    if (result.ok) return;
    expect(result.message).toContain("The subject matches with case-insensitive comparison");
    expect(result.nearest?.differences[0]).toMatchObject({ field: "subject", kind: "case", index: 13 });
  });

  it("issuer and subject ok, audience differs -> AADSTS70021 naming all three assertion values", () => {
    const result = matchAssertion(claims({ aud: "https://gitlab.example.com" }), [fic()]);
    expect(result).toMatchObject({ ok: false, code: "AADSTS70021" });
    if (result.ok) return;
    expect(result.message).toBe(
      `AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '${ISSUER}'. Assertion Subject: '${SUB}'. Assertion Audience: 'https://gitlab.example.com'.`,
    );
    expect(result.nearest?.differences.map((d) => d.field)).toEqual(["audience"]);
  });

  it("nearest prefers the credential with the smallest difference", () => {
    const close = fic({ name: "close", subject: `${SUB}x` });
    const far = fic({ name: "far", subject: "project_id:1:ref_type:tag:ref:v1" });
    const result = matchAssertion(claims(), [far, close]);
    expect(result).toMatchObject({ ok: false, nearest: { fic: { name: "close" } } });
  });

  it("a credential with several audiences never matches (Graph allows exactly one)", () => {
    expect(matchAssertion(claims(), [fic({ audiences: [AUD, "x"] })]).ok).toBe(false);
  });

  it("whitespace around the issuer is a mismatch of kind whitespace", () => {
    const result = matchAssertion(claims({ iss: ` ${ISSUER}` }), [fic()]);
    expect(result).toMatchObject({ ok: false, code: "AADSTS700211" });
    if (result.ok) return;
    expect(result.nearest?.differences[0]?.kind).toBe("whitespace");
  });
});

describe("flexible credentials (claimsMatchingExpression)", () => {
  const flexible = (value: string): FicLike =>
    fic({ subject: null, claimsMatchingExpression: { value, languageVersion: 1 } });

  it("matches with * and ? wildcards, eq and and", () => {
    const all = flexible("claims['sub'] matches 'project_path:my-group/my-project:ref_type:branch:ref:*'");
    expect(matchAssertion(claims({ sub: `${SUB.slice(0, -4)}feature/x` }), [all]).ok).toBe(true);
    expect(matchAssertion(claims({ sub: SUB.replace("branch", "tag") }), [all])).toMatchObject({
      ok: false,
      code: "AADSTS700213",
    });
    const one = flexible("claims['sub'] matches 'project_path:my-group/my-project:ref_type:branch:ref:ma?n'");
    expect(matchAssertion(claims(), [one]).ok).toBe(true);
    const both = flexible(`claims['sub'] matches 'project_path:*' and claims['sub'] eq '${SUB}'`);
    expect(matchAssertion(claims(), [both]).ok).toBe(true);
    const regexChars = flexible("claims['sub'] matches 'project_path:my.group/*'");
    expect(matchAssertion(claims(), [regexChars]).ok).toBe(false);
  });

  it("parses only the documented grammar", () => {
    expect(parseClaimsExpression("claims['sub'] eq 'a' and claims['project_id'] matches '2*'")).toEqual([
      { claim: "sub", op: "eq", value: "a" },
      { claim: "project_id", op: "matches", value: "2*" },
    ]);
    for (const bad of [
      "claims['sub'] or 'a'",
      "claims[sub] eq 'a'",
      "claims['sub'] eq 'a' or claims['sub'] eq 'b'",
      "",
    ]) {
      expect(parseClaimsExpression(bad)).toBeNull();
    }
    expect(evaluateClaimsExpression("claims['project_id'] eq '20'", claims({ project_id: "20" }))).toBe(true);
    expect(evaluateClaimsExpression("claims['project_id'] eq '20'", claims())).toBe(false);
  });
});

describe("diffField", () => {
  it("classifies differences", () => {
    expect(diffField("subject", "a", "a")).toBeNull();
    expect(diffField("issuer", "https://x", "https://X")).toMatchObject({ kind: "case", index: 8 });
    expect(diffField("issuer", "https://x", "https://x/")).toMatchObject({
      kind: "trailing-slash",
      index: 9,
    });
    expect(diffField("issuer", "https://x", "https://x ")).toMatchObject({ kind: "whitespace", index: 9 });
    expect(diffField("audience", "abc", "abd")).toMatchObject({ kind: "different", index: 2 });
  });
});

describe("properties", () => {
  const text = fc.string({ minLength: 1, maxLength: 60, unit: "grapheme-ascii" });

  /** Replace, insert or delete exactly one character: always a different string. */
  const mutate = (value: string) =>
    fc
      .tuple(
        fc.nat(value.length),
        fc.constantFrom("replace", "insert", "delete"),
        fc.string({ minLength: 1, maxLength: 1, unit: "grapheme-ascii" }),
      )
      .map(([i, op, ch]) => {
        const at = Math.min(i, value.length - 1);
        if (op === "insert") return value.slice(0, i) + ch + value.slice(i);
        if (op === "delete") return value.slice(0, at) + value.slice(at + 1);
        const current = value[at] ?? "";
        const replacement =
          ch === current ? String.fromCharCode(((current.charCodeAt(0) - 31) % 95) + 32) : ch;
        return value.slice(0, at) + replacement + value.slice(at + 1);
      })
      .filter((m) => m !== value);

  it("an exact copy of a credential always matches", () => {
    fc.assert(
      fc.property(text, text, text, (iss, sub, aud) => {
        expect(
          matchAssertion({ iss, sub, aud }, [fic({ issuer: iss, subject: sub, audiences: [aud] })]).ok,
        ).toBe(true);
      }),
    );
  });

  it("changing one character of issuer, subject or audience never matches", () => {
    const arb = fc
      .tuple(text, text, text, fc.constantFrom("iss", "sub", "aud"))
      .chain(([iss, sub, aud, field]) => {
        const original = { iss, sub, aud };
        return mutate(original[field as "iss" | "sub" | "aud"]).map((changed) => ({
          original,
          presented: { ...original, [field]: changed },
          field,
        }));
      });
    fc.assert(
      fc.property(arb, ({ original, presented, field }) => {
        const credential = fic({ issuer: original.iss, subject: original.sub, audiences: [original.aud] });
        const result = matchAssertion(presented, [credential]);
        expect(result.ok).toBe(false);
        if (result.ok) return;
        const expectedCode = {
          iss: ["AADSTS700211"],
          sub: ["AADSTS700213", "AADSTS7002138"],
          aud: ["AADSTS70021"],
        }[field as "iss" | "sub" | "aud"];
        expect(expectedCode).toContain(result.code);
        const name = { iss: "issuer", sub: "subject", aud: "audience" }[field as "iss" | "sub" | "aud"];
        expect(result.nearest?.differences.map((d) => d.field)).toEqual([name]);
      }),
      { numRuns: 500 },
    );
  });

  it("diffField index is the first differing character", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const d = diffField("subject", a, b);
        if (a === b) {
          // Not `return expect(...)`: fast-check reads a returned false-ish value as a failed property.
          expect(d).toBeNull();
          return;
        }
        expect(d).not.toBeNull();
        const i = d?.index ?? -1;
        expect(a.slice(0, i)).toBe(b.slice(0, i));
        expect(i === a.length || i === b.length || a[i] !== b[i]).toBe(true);
      }),
    );
  });
});
