import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { signWebhook, verifySignature, verifyToken } from "../../src/http/verify.ts";

describe("verifyToken", () => {
  it("matches any configured secret exactly", () => {
    expect(verifyToken("b", ["a", "b"])).toBe(true);
    expect(verifyToken("B", ["a", "b"])).toBe(false);
    expect(verifyToken("b ", ["a", "b"])).toBe(false);
    expect(verifyToken(undefined, ["a"])).toBe(false);
    expect(verifyToken("", [""])).toBe(false);
    expect(verifyToken("a", [])).toBe(false);
  });
  it("never matches a secret that differs", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        fc.pre(a !== b);
        expect(verifyToken(a, [b])).toBe(false);
      }),
    );
  });
});

describe("verifySignature (Standard Webhooks)", () => {
  const key = Buffer.from("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "base64");
  const token = `whsec_${key.toString("base64")}`;
  const body = Buffer.from('{"event_name":"project_create"}');
  const now = 1_700_000_000;

  it("accepts an HMAC-SHA256 over id.timestamp.body computed independently", () => {
    const expected = createHmac("sha256", key).update(`msg_1.${now}.${body.toString()}`).digest("base64");
    expect(signWebhook(token, "msg_1", now, body)).toBe(`v1,${expected}`);
    const ok = verifySignature(
      { id: "msg_1", timestamp: String(now), signature: `v1,${expected}` },
      body,
      [token],
      now,
    );
    expect(ok).toEqual({ ok: true, method: "signature" });
  });

  it("accepts when one of several space-separated signatures matches", () => {
    const good = signWebhook(token, "msg_1", now, body);
    const r = verifySignature(
      { id: "msg_1", timestamp: String(now), signature: `v1,AAAA ${good}` },
      body,
      [token],
      now,
    );
    expect(r.ok).toBe(true);
  });

  it("rejects a different id, body, timestamp, or key", () => {
    const sig = signWebhook(token, "msg_1", now, body);
    expect(
      verifySignature({ id: "msg_2", timestamp: String(now), signature: sig }, body, [token], now).ok,
    ).toBe(false);
    expect(
      verifySignature(
        { id: "msg_1", timestamp: String(now), signature: sig },
        Buffer.from("{}"),
        [token],
        now,
      ).ok,
    ).toBe(false);
    expect(
      verifySignature({ id: "msg_1", timestamp: String(now + 1), signature: sig }, body, [token], now).ok,
    ).toBe(false);
    expect(
      verifySignature({ id: "msg_1", timestamp: String(now), signature: sig }, body, ["whsec_AAAA"], now).ok,
    ).toBe(false);
  });

  it("enforces the 5 minute tolerance both ways", () => {
    for (const skew of [-300, 0, 300]) {
      const sig = signWebhook(token, "m", now + skew, body);
      expect(
        verifySignature({ id: "m", timestamp: String(now + skew), signature: sig }, body, [token], now).ok,
      ).toBe(true);
    }
    for (const skew of [-301, 301]) {
      const sig = signWebhook(token, "m", now + skew, body);
      const r = verifySignature(
        { id: "m", timestamp: String(now + skew), signature: sig },
        body,
        [token],
        now,
      );
      expect(r).toEqual({ ok: false, reason: expect.stringMatching(/5 minutes/) });
    }
  });

  it("explains missing headers and malformed values", () => {
    expect(
      verifySignature({ id: undefined, timestamp: "1", signature: "v1,x" }, body, [token], now),
    ).toMatchObject({ ok: false });
    expect(
      verifySignature({ id: "m", timestamp: "soon", signature: "v1,x" }, body, [token], now),
    ).toMatchObject({
      reason: expect.stringMatching(/unix time/),
    });
    expect(
      verifySignature({ id: "m", timestamp: String(now), signature: "v2,x" }, body, [token], now),
    ).toMatchObject({
      reason: expect.stringMatching(/no v1/),
    });
  });
});
