import { createHash, timingSafeEqual } from "node:crypto";

export type AdminRole = "admin" | "viewer";

/** Hashing first gives equal-length inputs, so the comparison time reveals neither content nor length. */
function sameSecret(given: string, expected: string | undefined): boolean {
  if (!expected) return false;
  const a = createHash("sha256").update(given, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

/** The presented token: `Bearer <token>`, or Basic auth with any user name and the token as password. */
export function presentedToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(authorization);
  if (!m?.[1] || !m[2]) return undefined;
  if (m[1].toLowerCase() === "bearer") return m[2];
  let decoded: string;
  try {
    decoded = Buffer.from(m[2], "base64").toString("utf8");
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** Which role an Authorization header grants, if any. Both tokens are always compared (no early exit). */
export function authenticate(
  authorization: string | undefined,
  tokens: { adminToken?: string | undefined; viewerToken?: string | undefined },
): AdminRole | undefined {
  const token = presentedToken(authorization);
  if (!token) return undefined;
  const isAdmin = sameSecret(token, tokens.adminToken);
  const isViewer = sameSecret(token, tokens.viewerToken);
  if (isAdmin) return "admin";
  return isViewer ? "viewer" : undefined;
}
