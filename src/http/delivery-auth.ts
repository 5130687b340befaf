import type { Config } from "../config/env.ts";
import type { DeliverySource } from "../gitlab/intents.ts";
import { matchSignature, matchToken, type SignatureHeaders } from "./verify.ts";

/**
 * Who vouches for a webhook delivery (see the trust model in the README). Every configured secret belongs to
 * exactly one source (config validation refuses a secret shared by two): the instance (the system hook's
 * GITLAB_WEBHOOK_SECRETS / GITLAB_WEBHOOK_SIGNING_TOKENS), or one namespace (a group hook's
 * GITLAB_GROUP_WEBHOOK_*), which may speak only for projects under it.
 */
export type WebhookSource = Exclude<DeliverySource, { kind: "internal" }>;

interface Keyring {
  tokens: string[];
  tokenSources: WebhookSource[];
  signing: string[];
  signingSources: WebhookSource[];
  /** Sources with signing tokens: their unsigned deliveries are refused. */
  signed: Set<string>;
}

export function sourceKey(s: WebhookSource): string {
  return s.kind === "instance" ? "instance" : `namespace:${s.namespace.toLowerCase()}`;
}

export function sourceLabel(s: WebhookSource): string {
  return s.kind === "instance"
    ? "the instance (system hook) secret"
    : `the group hook secret of ${s.namespace}`;
}

export function buildKeyring(gitlab: Config["gitlab"]): Keyring {
  const instance: WebhookSource = { kind: "instance" };
  const k: Keyring = { tokens: [], tokenSources: [], signing: [], signingSources: [], signed: new Set() };
  for (const t of gitlab.webhookSecrets) {
    k.tokens.push(t);
    k.tokenSources.push(instance);
  }
  for (const { namespace, secret } of gitlab.groupWebhookSecrets ?? []) {
    k.tokens.push(secret);
    k.tokenSources.push({ kind: "namespace", namespace });
  }
  for (const t of gitlab.signingTokens) {
    k.signing.push(t);
    k.signingSources.push(instance);
  }
  for (const { namespace, secret } of gitlab.groupSigningTokens ?? []) {
    k.signing.push(secret);
    k.signingSources.push({ kind: "namespace", namespace });
  }
  for (const s of k.signingSources) k.signed.add(sourceKey(s));
  return k;
}

export type Authentication =
  | { ok: true; source: WebhookSource; signed: boolean }
  /** `source`: a valid credential was presented but its source's rules refuse the delivery (audited). */
  | { ok: false; reason: string; source?: WebhookSource; refusal?: "unsigned" | "bad_signature" };

/** Whether the delivery claims a signature that one of our signing tokens could check (needs the body). */
export function wantsSignature(keyring: Keyring, signature: string | undefined): boolean {
  return signature !== undefined && keyring.signing.length > 0;
}

/**
 * Authenticates by X-Gitlab-Token alone (no signature presented, or no signing token configured).
 * Checked before the body is read: a stranger's large body is never buffered.
 */
export function authenticateToken(keyring: Keyring, token: string | undefined): Authentication {
  const i = matchToken(token, keyring.tokens);
  const source = keyring.tokenSources[i];
  if (i < 0 || !source) {
    return { ok: false, reason: token === undefined ? "missing X-Gitlab-Token" : "wrong X-Gitlab-Token" };
  }
  if (keyring.signed.has(sourceKey(source))) {
    return {
      ok: false,
      reason:
        "this source signs its deliveries: an unsigned delivery is refused (webhook-signature required)",
      source,
      refusal: "unsigned",
    };
  }
  return { ok: true, source, signed: false };
}

/**
 * Authenticates a delivery that carries `webhook-signature`: a signature by one of our signing tokens decides
 * the source. Otherwise the plain token may still vouch, but only for a source without signing tokens (GitLab
 * may sign with a key this bot was not given, for a hook it knows only by its secret token).
 */
export function authenticateSigned(
  keyring: Keyring,
  headers: SignatureHeaders,
  body: Uint8Array,
  token: string | undefined,
): Authentication {
  const verdict = matchSignature(headers, body, keyring.signing);
  const signer = verdict.ok ? keyring.signingSources[verdict.index] : undefined;
  if (signer) return { ok: true, source: signer, signed: true };
  const reason = verdict.ok ? "webhook-signature does not match" : verdict.reason;
  const byToken = authenticateToken(keyring, token);
  if (byToken.ok) return byToken;
  if (!byToken.source) return { ok: false, reason };
  // A holder of a signing source's secret presented a signature we cannot verify (another key, a replay).
  return { ok: false, reason, source: byToken.source, refusal: "bad_signature" };
}
