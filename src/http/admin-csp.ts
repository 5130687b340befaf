/**
 * Content-Security-Policy for the admin pages (Bull Board UI 9.x), as hono/secure-headers options.
 * Worked out from @bull-board/ui/dist (index.ejs and the bundles):
 * - scripts: all are external files under static/ (the `__UI_CONFIG__` block is type="application/json",
 *   which CSP does not treat as script), the syntax-highlight worker is a same-origin file, and no bundle
 *   uses eval or new Function: `'self'` only, no 'unsafe-inline', no 'unsafe-eval'.
 * - styles: the loading screen in index.ejs uses style="" attributes and a <style> block, the Redis logo
 *   SVG rendered by React carries its own <style>, and CodeMirror (job data editor) may insert <style>
 *   elements; there is no nonce hook in the template, so styles need 'unsafe-inline' (a headless Chromium
 *   run with style-src 'self' reported 5 style-src-attr and 2 style-src-elem violations). Inline styles
 *   cannot run code; scripts stay strict.
 * - fonts: index.ejs links IBM Plex from Google Fonts; allowing exactly those two origins keeps the
 *   intended look (without them the UI still works with fallback fonts).
 * - XHR/fetch (the board's API, locale JSON) and images (logo, favicon) are same-origin.
 * - No framing (clickjacking on retry/clean buttons), no plugins, no <base> or form target elsewhere.
 */
export const ADMIN_CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  workerSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'", "https://fonts.googleapis.com"],
  fontSrc: ["'self'", "https://fonts.gstatic.com"],
  imgSrc: ["'self'"],
  connectSrc: ["'self'"],
  manifestSrc: ["'self'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
};
