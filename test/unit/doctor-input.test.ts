import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import {
  containsJwt,
  DoctorInputError,
  parseAadsts,
  parseClaimLines,
  parseDoctorInput,
  redactJwts,
} from "../../src/doctor/input.ts";
import { parseSubject } from "../../src/doctor/subject-parts.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

const body70021 = fixtureJson<{ error_description: string }>("graph/token-error-aadsts70021.json");
const body700211 = fixtureJson<{ error_description: string }>("graph/token-error-aadsts700211.json");

describe("AADSTS texts from the reference fixtures", () => {
  it("AADSTS70021: issuer, subject, audience and trace id", () => {
    const parsed = parseAadsts(body70021.error_description);
    expect(parsed?.info).toMatchObject({
      code: "AADSTS70021",
      traceId: "77e765d4-26fd-4802-9258-3a398ff75700",
      correlationId: "81e13db7-52ad-44f7-b933-598f4fad8fa9",
      timestamp: "2023-01-19 13:59:24Z",
    });
    expect(parsed?.info.message).toMatch(/^AADSTS70021: No matching federated identity record found/);
    expect(parsed?.info.message).not.toContain("Trace ID");
    expect(parsed?.claims).toEqual({
      iss: "https://westeurope.oic.prod-aks.azure.com/3bb336c2-6605-4144-aa4b-b04b79bef215/9a11d52e-7fd4-4548-bf71-d57a648f06ab/",
      sub: "system:serviceaccount:default:default",
      aud: ["api://AzureADTokenExchange"],
    });
  });

  it("AADSTS700211 (one-line variant): the issuer only", () => {
    const parsed = parseAadsts(body700211.error_description);
    expect(parsed?.info.code).toBe("AADSTS700211");
    expect(parsed?.info.traceId).toBe("93eb6af6-43b5-4b16-ad6e-63cf2a050b00");
    expect(parsed?.claims).toEqual({
      iss: "https://eastus2.oic.prod-aks.azure.com/7******************/c*****************/",
    });
  });

  it("accepts the whole token-endpoint JSON body", () => {
    const input = parseDoctorInput(JSON.stringify(body70021));
    expect(input.kinds).toEqual(["aadsts"]);
    expect(input.claims.sub).toBe("system:serviceaccount:default:default");
  });

  it("AADSTS700213 and 7002138 name the subject; 700024 the expiry", () => {
    const sub = "project_path:a/B:ref_type:branch:ref:main";
    expect(
      parseAadsts(
        `AADSTS7002138: No matching federated identity record found for presented assertion subject '${sub}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison.`,
      )?.claims.sub,
    ).toBe(sub);
    expect(
      parseAadsts(
        `ERROR: AADSTS700213: No matching federated identity record found for presented assertion subject '${sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
      )?.claims.sub,
    ).toBe(sub);
    const expired = parseAadsts(
      "AADSTS700024: Client assertion is not within its valid time range. Current time: 2024-01-01T10:00:00.000Z, assertion valid from 2024-01-01T09:00:00.000Z, expiry time of assertion 2024-01-01T09:05:00.000Z.",
    );
    expect(expired?.claims.exp).toBe(Date.parse("2024-01-01T09:05:00.000Z") / 1000);
  });
});

describe("claims in the other accepted forms", () => {
  it("the CI snippet's printed lines (braces stripped, commas to line breaks)", () => {
    const printed = [
      "Azure login failed. Paste these claims of this job's ID token into an issue comment after /entra doctor:",
      '"iss":"https://gitlab.example.com"',
      '"exp":1700000300',
      '"sub":"project_path:g/p:ref_type:branch:ref:main"',
      '"aud":"api://AzureADTokenExchange"',
    ].join("\n");
    expect(parseDoctorInput(printed)).toMatchObject({
      kinds: ["claim-lines"],
      containedJwt: false,
      claims: {
        iss: "https://gitlab.example.com",
        sub: "project_path:g/p:ref_type:branch:ref:main",
        aud: ["api://AzureADTokenExchange"],
        exp: 1700000300,
      },
    });
  });

  it("an array aud split over lines by the snippet", () => {
    expect(parseClaimLines('"aud":["a"\n"b"]\n').aud).toEqual(["a", "b"]);
  });

  it("hand-typed key: value lines and claims JSON", () => {
    expect(
      parseClaimLines("iss: https://gitlab.example.com \nsub: `project_id:7:ref_type:tag:ref:v1`").sub,
    ).toBe("project_id:7:ref_type:tag:ref:v1");
    const input = parseDoctorInput(
      JSON.stringify({ iss: "https://x", sub: "s", aud: "a", project_id: "7", exp: 1 }),
    );
    expect(input).toMatchObject({ kinds: ["claims-json"], claims: { project_id: "7", aud: ["a"] } });
  });

  it("a raw JWT is decoded (unverified) and flagged; redaction removes it", async () => {
    const jwt = await new SignJWT({
      iss: "https://gl",
      sub: "project_path:a/b:ref_type:branch:ref:x",
      aud: "aud",
    })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("k".repeat(32)));
    const input = parseDoctorInput(`my token: ${jwt}`);
    expect(input).toMatchObject({
      kinds: ["jwt"],
      containedJwt: true,
      claims: { iss: "https://gl", aud: ["aud"] },
    });
    expect(containsJwt(`x ${jwt} y`)).toBe(true);
    expect(redactJwts(`x ${jwt} y`)).toBe("x [ID token removed] y");
  });

  it("rejects text without claims, without quoting it", () => {
    expect(() => parseDoctorInput("hello secret-ish text")).toThrow(DoctorInputError);
    try {
      parseDoctorInput("hello secret-ish text");
    } catch (e) {
      expect((e as Error).message).not.toContain("secret-ish");
    }
  });
});

describe("parseSubject", () => {
  it("splits GitLab subjects and round-trips through buildSubject", () => {
    expect(parseSubject("project_path:g/p:ref_type:branch:ref:feature/x")).toEqual({
      components: ["project_path", "ref_type", "ref"],
      values: { project_path: "g/p", ref_type: "branch", ref: "feature/x" },
    });
    expect(parseSubject("project_id:42:ref_type:tag:ref:v1:deployment_tier:production")?.components).toEqual([
      "project_id",
      "ref_type",
      "ref",
      "deployment_tier",
    ]);
    expect(parseSubject("system:serviceaccount:default:default")).toBeUndefined();
    expect(parseSubject(" project_path:g/p:ref_type:branch:ref:main")).toBeUndefined();
  });
});
