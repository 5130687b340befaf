import { decodeJwt } from "jose";
import { z } from "zod";

/**
 * What `doctor` accepts, turned into the few claims it compares: a GitLab ID token (decoded, NOT verified:
 * we only read its claims to explain a mismatch, Entra does the verifying), a JSON object of its claims, the
 * `"iss":"..."` lines the CI snippet prints after a failed login (snippet.ts `entra_claims`), `key: value`
 * lines, or the text of an AADSTS error (which names the assertion's issuer, subject and/or audience).
 * Several may be pasted together (the snippet prints the AADSTS line, then the claims): they are merged.
 */

/** Claims doctor reads; every one optional because an AADSTS message names only some of them. */
export interface DoctorClaims {
  iss?: string;
  sub?: string;
  aud?: string[];
  /** Seconds since the epoch. */
  exp?: number;
  iat?: number;
  nbf?: number;
  project_id?: string;
  project_path?: string;
  ref?: string;
  ref_type?: string;
  environment?: string;
}

export interface AadstsInfo {
  /** "AADSTS70021" */
  code: string;
  /** Entra's sentence, without the documentation link and trace lines. */
  message: string;
  traceId?: string;
  correlationId?: string;
  timestamp?: string;
}

export type InputKind = "jwt" | "claims-json" | "claim-lines" | "aadsts";

export interface DoctorInput {
  /** Every form found in the text, most informative first. */
  kinds: InputKind[];
  claims: DoctorClaims;
  aadsts?: AadstsInfo;
  /** The text held a raw ID token: a credential until it expires (never echo it). */
  containedJwt: boolean;
}

export class DoctorInputError extends Error {
  readonly code = "DOCTOR_INPUT_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "DoctorInputError";
  }
}

/** Header and payload of a JWS always start with base64url("{\"") = "eyJ". */
const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

export function containsJwt(text: string): boolean {
  return new RegExp(JWT_PATTERN.source).test(text);
}

/**
 * A JWT-shaped run without its signature (`header.payload.`): no longer a credential, still decodable by
 * parseDoctorInput (which then knows a token was pasted). The intake applies it before text enters job data.
 */
export function stripJwtSignatures(text: string): string {
  return text.replace(JWT_PATTERN, (jwt) => jwt.slice(0, jwt.lastIndexOf(".") + 1));
}

/** Defence in depth for anything we print: a JWT-shaped run of text becomes a placeholder. */
export function redactJwts(text: string): string {
  return text.replace(JWT_PATTERN, "[ID token removed]");
}

const stringish = z.union([z.string(), z.number()]).transform(String);
const claimsSchema = z.looseObject({
  iss: z.string().optional(),
  sub: z.string().optional(),
  aud: z.union([z.string(), z.array(z.string())]).optional(),
  exp: z.number().optional(),
  iat: z.number().optional(),
  nbf: z.number().optional(),
  project_id: stringish.optional(),
  project_path: z.string().optional(),
  ref: z.string().optional(),
  ref_type: z.string().optional(),
  environment: z.string().optional(),
});

function toClaims(raw: unknown, what: string): DoctorClaims {
  const parsed = claimsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DoctorInputError(
      `${what}: claim ${issue?.path.join(".") || "(root)"} ${issue?.message ?? "is invalid"}`,
    );
  }
  const { aud, ...rest } = parsed.data;
  const out: DoctorClaims = {};
  for (const key of LINE_KEYS) {
    if (key === "aud") continue;
    const v = rest[key];
    if (v !== undefined) (out as Record<string, unknown>)[key] = v;
  }
  if (aud !== undefined) out.aud = typeof aud === "string" ? [aud] : aud;
  return out;
}

/** Reads the payload without verifying the signature; the token itself is not kept. */
export function decodeJwtClaims(token: string): DoctorClaims {
  let payload: unknown;
  try {
    payload = decodeJwt(token);
  } catch {
    throw new DoctorInputError("the text looks like an ID token but its payload is not readable JSON");
  }
  return toClaims(payload, "ID token");
}

const AADSTS_CODE = /AADSTS(\d{5,8})\s*:\s*/;
const SHAPES: Array<{ re: RegExp; fields: Array<"iss" | "sub" | "aud"> }> = [
  {
    re: /Assertion Issuer: '([\s\S]*?)'\. Assertion Subject: '([\s\S]*?)'\. Assertion Audience: '([\s\S]*?)'\./,
    fields: ["iss", "sub", "aud"],
  },
  { re: /presented assertion issuer '([\s\S]*?)'\. Please check/, fields: ["iss"] },
  { re: /presented assertion subject '([\s\S]*?)'\. (?:The subject matches|Please check)/, fields: ["sub"] },
  // AADSTS7002121's wording is only known secondhand: accept it quoted or bare.
  { re: /presented assertion audience '?([^'\s]+?)'?[.\s]/, fields: ["aud"] },
];

/** Parses Entra's error text (reference/entra.md §3), or a token-endpoint JSON body holding it. */
export function parseAadsts(text: string): { info: AadstsInfo; claims: DoctorClaims } | undefined {
  let description = text;
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    try {
      const body = z.object({ error_description: z.string() }).safeParse(JSON.parse(trimmed));
      if (body.success) description = body.data.error_description;
    } catch {
      // Not JSON: parse the text itself.
    }
  }
  const code = AADSTS_CODE.exec(description);
  if (!code) return undefined;
  const from = description.slice(code.index);
  const claims: DoctorClaims = {};
  for (const { re, fields } of SHAPES) {
    const m = re.exec(from);
    if (!m) continue;
    fields.forEach((field, i) => {
      const value = m[i + 1] ?? "";
      if (field === "aud") claims.aud = value.split(" ").filter(Boolean);
      else claims[field] = value;
    });
    break;
  }
  // Entra's text ends with the documentation link, then trace lines.
  const message = (from.split(/\s+https:\/\/|\r?\n|\s+Trace ID:/)[0] ?? from).trim();
  const info: AadstsInfo = { code: `AADSTS${code[1]}`, message };
  const trace = /Trace ID:\s*([0-9a-fA-F-]{36})/.exec(from)?.[1];
  const correlation = /Correlation ID:\s*([0-9a-fA-F-]{36})/.exec(from)?.[1];
  const timestamp = /Timestamp:\s*(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z)/.exec(from)?.[1];
  if (trace) info.traceId = trace;
  if (correlation) info.correlationId = correlation;
  if (timestamp) info.timestamp = timestamp;
  // AADSTS700024 names the assertion's expiry.
  const expiry = /expiry time of assertion (\d{4}-\d{2}-\d{2}T[\d:.]+Z)/.exec(from)?.[1];
  if (expiry) claims.exp = Math.floor(Date.parse(expiry) / 1000);
  return { info, claims };
}

const LINE_KEYS = [
  "iss",
  "sub",
  "aud",
  "exp",
  "iat",
  "nbf",
  "project_id",
  "project_path",
  "ref",
  "ref_type",
  "environment",
] as const;
type LineKey = (typeof LINE_KEYS)[number];
const NUMERIC: ReadonlySet<LineKey> = new Set(["exp", "iat", "nbf"]);

function assign(out: DoctorClaims, key: LineKey, value: string | number | string[]): void {
  if (out[key] !== undefined) return;
  if (key === "aud") out.aud = Array.isArray(value) ? value : [String(value)];
  else if (NUMERIC.has(key)) {
    const n = Number(value);
    if (Number.isFinite(n)) (out as Record<string, unknown>)[key] = n;
  } else (out as Record<string, unknown>)[key] = String(value);
}

/**
 * The snippet prints the payload with braces removed and commas turned into line breaks, keeping
 * `"iss":"https://..."` and `"exp":1700000000` (an array aud may spill over the next line). Also accepts
 * `iss: value` lines typed by hand.
 */
/** A JSON string literal as pasted; a pasted one may hold raw line breaks JSON forbids: then taken as written. */
function jsonString(literal: string): string {
  try {
    return JSON.parse(literal) as string;
  } catch {
    return literal.slice(1, -1);
  }
}

export function parseClaimLines(text: string): DoctorClaims {
  const out: DoctorClaims = {};
  const keys = LINE_KEYS.join("|");
  const quoted = new RegExp(`"(${keys})"\\s*:\\s*("(?:[^"\\\\]|\\\\.)*"|\\[[^\\]]*\\]?|-?\\d+)`, "g");
  for (const m of text.matchAll(quoted)) {
    const key = m[1] as LineKey;
    const raw = m[2] ?? "";
    if (raw.startsWith("[")) {
      const items = [...raw.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => jsonString(`"${x[1]}"`));
      assign(out, key, items);
    } else if (raw.startsWith('"')) {
      assign(out, key, jsonString(raw));
    } else assign(out, key, Number(raw));
  }
  const plain = new RegExp(`^[ \\t>*-]*(${keys})[ \\t]*[:=][ \\t]*(\\S.*?)[ \\t]*$`, "gm");
  for (const m of text.matchAll(plain)) {
    const key = m[1] as LineKey;
    const value = (m[2] ?? "").replace(/^(["'`])([\s\S]*)\1$/, "$2");
    assign(out, key, key === "aud" ? value.split(/[ ,]+/).filter(Boolean) : value);
  }
  return out;
}

function merge(into: DoctorClaims, from: DoctorClaims): void {
  for (const [k, v] of Object.entries(from)) {
    if (v !== undefined && (into as Record<string, unknown>)[k] === undefined)
      (into as Record<string, unknown>)[k] = v;
  }
}

const hasAny = (c: DoctorClaims) => c.iss !== undefined || c.sub !== undefined || c.aud !== undefined;

/** Parses any accepted form; throws DoctorInputError (never quoting the text, which may hold a token). */
export function parseDoctorInput(text: string): DoctorInput {
  const kinds: InputKind[] = [];
  const claims: DoctorClaims = {};
  const jwt = new RegExp(JWT_PATTERN.source).exec(text)?.[0];
  if (jwt) {
    merge(claims, decodeJwtClaims(jwt));
    kinds.push("jwt");
  }
  const trimmed = text.trim();
  if (!jwt && trimmed.startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch {
      json = undefined;
    }
    if (json && typeof json === "object" && !("error_description" in json)) {
      merge(claims, toClaims(json, "claims JSON"));
      kinds.push("claims-json");
    }
  }
  const withoutJwt = jwt ? text.split(jwt).join(" ") : text;
  const lines = parseClaimLines(withoutJwt);
  if (hasAny(lines) && kinds.length === 0) kinds.push("claim-lines");
  merge(claims, lines);
  const aadsts = parseAadsts(withoutJwt);
  if (aadsts) {
    merge(claims, aadsts.claims);
    kinds.push("aadsts");
  }
  if (!hasAny(claims) && !aadsts) {
    throw new DoctorInputError(
      "no ID token claims or AADSTS error found: paste the iss/sub/aud lines the failed job printed, the claims JSON, or Entra's AADSTS message",
    );
  }
  return { kinds, claims, ...(aadsts ? { aadsts: aadsts.info } : {}), containedJwt: jwt !== undefined };
}
