import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";

const keys = new Map<string, KeyObject>();
/** Decoding the token and building a KeyObject per request costs more than the HMAC itself. */
function signingKey(token: string): KeyObject {
  let key = keys.get(token);
  if (!key) {
    key = createSecretKey(Buffer.from(token.replace(/^whsec_/, ""), "base64"));
    keys.set(token, key);
  }
  return key;
}

/** Standard Webhooks allow 5 minutes of clock skew either way; older deliveries are replays. */
export const SIGNATURE_TOLERANCE_SECONDS = 5 * 60;

export type VerifyResult = { ok: true; method: "token" | "signature" } | { ok: false; reason: string };

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  // Compare against itself on length mismatch so the time taken does not depend on where they differ.
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

/** X-Gitlab-Token against every configured secret (several during a rotation); no early exit. */
export function verifyToken(presented: string | undefined, secrets: readonly string[]): boolean {
  return matchToken(presented, secrets) >= 0;
}

/** Index of the secret X-Gitlab-Token equals, or -1; every secret is compared (no early exit). */
export function matchToken(presented: string | undefined, secrets: readonly string[]): number {
  if (presented === undefined || presented === "") return -1;
  let match = -1;
  secrets.forEach((secret, i) => {
    if (safeEqual(presented, secret) && match < 0) match = i;
  });
  return match;
}

export interface SignatureHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/**
 * Standard Webhooks (GitLab 19.0 signing tokens): `webhook-signature: v1,<base64 HMAC-SHA256>` over
 * "{webhook-id}.{webhook-timestamp}.{raw body}", keyed with the base64-decoded part of `whsec_<base64>`.
 * The header may carry several space-separated signatures (key rotation on the sender's side).
 */
export function verifySignature(
  headers: SignatureHeaders,
  rawBody: Uint8Array,
  signingTokens: readonly string[],
  nowSeconds: number = Math.floor(Date.now() / 1000),
): VerifyResult {
  const r = matchSignature(headers, rawBody, signingTokens, nowSeconds);
  return r.ok ? { ok: true, method: "signature" } : r;
}

/** Which signing token signed the delivery (index), or why none did; every token is tried (no early exit). */
export function matchSignature(
  headers: SignatureHeaders,
  rawBody: Uint8Array,
  signingTokens: readonly string[],
  nowSeconds: number = Math.floor(Date.now() / 1000),
): { ok: true; index: number } | { ok: false; reason: string } {
  if (!headers.id || !headers.timestamp || !headers.signature) {
    return { ok: false, reason: "webhook-id, webhook-timestamp and webhook-signature are all required" };
  }
  if (!/^\d{1,12}$/.test(headers.timestamp))
    return { ok: false, reason: "webhook-timestamp is not a unix time" };
  const ts = Number(headers.timestamp);
  if (Math.abs(nowSeconds - ts) > SIGNATURE_TOLERANCE_SECONDS) {
    return { ok: false, reason: "webhook-timestamp is more than 5 minutes off: replayed or clock skew" };
  }
  const presented = headers.signature
    .split(" ")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("v1,"))
    .map((s) => s.slice(3));
  if (presented.length === 0) return { ok: false, reason: "webhook-signature has no v1 signature" };
  const signed = Buffer.concat([Buffer.from(`${headers.id}.${headers.timestamp}.`), rawBody]);
  let match = -1;
  signingTokens.forEach((token, i) => {
    const expected = createHmac("sha256", signingKey(token)).update(signed).digest("base64");
    let hit = false;
    for (const sig of presented) hit = safeEqual(sig, expected) || hit;
    if (hit && match < 0) match = i;
  });
  return match >= 0 ? { ok: true, index: match } : { ok: false, reason: "webhook-signature does not match" };
}

/** Signs like GitLab does; used by tests, the sandbox and benchmarks to send realistic deliveries. */
export function signWebhook(token: string, id: string, timestamp: number, body: string | Uint8Array): string {
  const key = Buffer.from(token.replace(/^whsec_/, ""), "base64");
  const payload = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), Buffer.from(body)]);
  return `v1,${createHmac("sha256", key).update(payload).digest("base64")}`;
}
