export type BodyResult = { ok: true; bytes: Uint8Array } | { ok: false; tooLarge: true };

/**
 * Reads a request body up to `limit` bytes. Refuses early on Content-Length and stops reading (instead of
 * buffering everything) when a chunked body grows past the limit.
 */
export async function readLimitedBody(req: Request, limit: number): Promise<BodyResult> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) return { ok: false, tooLarge: true };
  // With a Content-Length the HTTP parser frames the body exactly, so it cannot exceed what was declared;
  // arrayBuffer() then takes @hono/node-server's fast path instead of a web stream.
  if (declared !== null) return { ok: true, bytes: new Uint8Array(await req.arrayBuffer()) };
  if (!req.body) return { ok: true, bytes: new Uint8Array() };
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return { ok: false, tooLarge: true };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.byteLength;
  }
  return { ok: true, bytes };
}
