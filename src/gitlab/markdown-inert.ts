/**
 * The one escaping layer for everything the bot writes into GitLab (notes, issue descriptions). The bot
 * writes with its own role (Maintainer or Owner), so a note must never do anything but show text. What
 * GitLab does with text, and how each case is kept inert here:
 *
 * - Quick actions. `Gitlab::QuickActions::Extractor` (lib/gitlab/quick_actions/extractor.rb) runs on the raw
 *   text of notes and of issue descriptions created or edited through the API, after deleting every "\r":
 *   any line matching `^\/<command>` runs with the author's rights. Its only exclusions are exact
 *   three-backtick fences, backtick pairs, HTML blocks and `>>>` quotes, so a longer fence or a `~~~` fence
 *   does not protect a line. Rule kept here: NO line of the output, not even inside a code block, has `/` as
 *   its first non-blank character, and user text never brings its own line breaks (CR, LF, NEL, U+2028/2029
 *   become a visible ⏎ inline; pasted blocks get a gutter on every line).
 * - Mentions and references. GitLab's reference filters (`@user`, `@all`, `#1`, `!1`, `~label`, `%milestone`,
 *   `$1`, `&1`, `group/project#1`, …) run on the rendered HTML's text nodes and skip text under `pre`, `code`,
 *   `a` and `style` (lib/banzai/filter/references/reference_filter.rb, `ignore_ancestor_query`). A backslash
 *   does not help: `\@all` renders to the text `@all`, which is still a mention (gitlab-org/gitlab#16827).
 *   Mentions notify (and `@all` notifies everyone); issue, MR and epic references write "mentioned in"
 *   system notes on their target, even in other projects. Labels, milestones and snippets only render a
 *   link. So user text goes into code spans or fenced code blocks, never into prose.
 * - Links, images, HTML. GLFM is CommonMark + GFM: inline and reference links, `<…>` autolinks, bare
 *   `http(s)://` and `www.` autolinks, images, and raw HTML (`<img>`, `<details>`, `<!-- -->`) all exist only
 *   outside code. Inside a code span or block they are text.
 * - Breaking out of code. A code span ends at the first backtick run as long as its opener (CommonMark
 *   6.1); a fence ends at a line of at least as many backticks (4.5). Openers here are one longer than the
 *   longest backtick run inside, so nothing inside can close them. Table cells split on `|` even inside code
 *   spans unless it is escaped as `\|` (GFM 4.10), hence `cell()`.
 * - Hidden text. Bidi controls (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C) and zero-width characters
 *   (U+200B–U+200D, U+2060, U+FEFF) can make a note read differently from what it is; every Unicode format
 *   (Cf) and control (Cc) character except tab is shown as a visible `<U+XXXX>` instead.
 *
 * `SafeMarkdown` is a branded string: only `trusted()` literals, the `md` template (literal parts plus
 * SafeMarkdown or number holes) and the escapers below produce one, so interpolating a plain string into a
 * note is a compile error wherever the writer asks for SafeMarkdown.
 */

declare const inert: unique symbol;
export type SafeMarkdown = string & { readonly [inert]: true };

const brand = (text: string) => text as SafeMarkdown;

/** Bot-authored literal text. Only a string literal type is accepted: a runtime string does not compile. */
export function trusted<const S extends string>(text: string extends S ? never : S): SafeMarkdown {
  return brand(text);
}

/** Markdown template: the literal parts are written in code; holes take SafeMarkdown or numbers only. */
export function md(
  strings: TemplateStringsArray,
  ...values: ReadonlyArray<SafeMarkdown | number>
): SafeMarkdown {
  let out = strings[0] ?? "";
  values.forEach((v, i) => {
    out += (typeof v === "number" ? String(Number.isFinite(v) ? v : 0) : v) + (strings[i + 1] ?? "");
  });
  return brand(out);
}

/** Joins safe parts (default: one per line). */
export function join(
  parts: readonly SafeMarkdown[],
  separator: "\n" | "\n\n" | ", " | " " = "\n",
): SafeMarkdown {
  return brand(parts.join(separator));
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: these control characters are what is removed
const LINE_BREAKS = /\r\n|[\r\n\u0085\u000b\u000c\u2028\u2029]/g;
/** Controls (Cc) other than tab and LF, and format characters (Cf: bidi, zero-width, soft hyphen, tags). */
const HIDDEN = /[\p{Cc}\p{Cf}]/gu;

function visibleCodePoint(ch: string): string {
  return `<U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}>`;
}

/** One line of user text: line breaks become ⏎, tabs spaces, hidden characters visible escapes. */
export function neutraliseInline(text: string): string {
  return text.replace(LINE_BREAKS, "⏎").replace(/\t/g, " ").replace(HIDDEN, visibleCodePoint);
}

/** Several lines of user text: every kind of line break becomes LF; hidden characters visible escapes. */
export function neutraliseBlock(text: string): string {
  return text
    .replace(LINE_BREAKS, "\n")
    .replace(/[\p{Cc}\p{Cf}]/gu, (ch) => (ch === "\n" || ch === "\t" ? ch : visibleCodePoint(ch)));
}

function longestRun(text: string, ch: "`"): number {
  let best = 0;
  let run = 0;
  for (const c of text) {
    run = c === ch ? run + 1 : 0;
    if (run > best) best = run;
  }
  return best;
}

function span(content: string): SafeMarkdown {
  if (content === "") return brand("(empty)");
  const ticks = "`".repeat(longestRun(content, "`") + 1);
  // CommonMark 6.1 strips one space on each side when both are there: pad so that content starting or ending
  // with a backtick or a space survives as it is.
  // (content made only of spaces is kept as it is, so it needs no padding).
  const pad = /^[` ]|[` ]$/.test(content) && !/^ +$/.test(content) ? " " : "";
  return brand(`${ticks}${pad}${content}${pad}${ticks}`);
}

/** Inline code span holding `text` literally (one line). For use outside tables. */
export function code(text: string): SafeMarkdown {
  return span(neutraliseInline(text));
}

/** Inline code span for a table cell: `|` escaped as GFM tables require, even inside code. */
export function cell(text: string): SafeMarkdown {
  return span(neutraliseInline(text).replace(/\|/g, "\\|"));
}

/** Characters that are plain text in GLFM wherever they stand inside a line (no reference, link or markup). */
const PLAIN = /^[A-Za-z0-9][A-Za-z0-9 ,.;:'"()?=-]*$/;

/**
 * Bot-composed prose that may carry values (an error message naming an environment): shown as plain text
 * when it holds only characters without meaning in GLFM, else as a code span.
 */
export function plain(text: string): SafeMarkdown {
  const one = neutraliseInline(text);
  return PLAIN.test(one) && !/www\./i.test(one) ? brand(one) : span(one);
}

export type FenceLanguage = "text" | "yaml" | "json";

const startsWithSlash = (line: string) => /^\s*\//.test(line);

function fence(body: string, language: FenceLanguage): SafeMarkdown {
  const ticks = "`".repeat(Math.max(3, longestRun(body, "`") + 1));
  return brand(`${ticks}${language}\n${body}\n${ticks}`);
}

/**
 * A fenced code block of bot-generated code (the CI snippet, doctor's caret lines) that may contain values.
 * Should a line ever start with `/`, the block falls back to `pasted()`'s gutter rather than carry it.
 */
export function fenced(text: string, language: FenceLanguage = "text"): SafeMarkdown {
  const body = neutraliseBlock(text).replace(/\n+$/, "");
  if (body.split("\n").some(startsWithSlash)) return pasted(text);
  return fence(body, language);
}

/**
 * Material a user pasted (claims, AADSTS text, a rejected command), shown as it was in a fenced block with
 * a `│ ` gutter on every line, so no pasted line can start with `/` or close the fence.
 */
export function pasted(text: string): SafeMarkdown {
  const body = neutraliseBlock(text)
    .replace(/\n+$/, "")
    .split("\n")
    .map((line) => `│ ${line}`)
    .join("\n");
  return fence(body, "text");
}

/**
 * Re-brands markdown that crossed a boundary (report job data in Redis) after checking the invariants that
 * can be checked cheaply on the text: no line starting with `/`, no hidden or line-separator characters.
 * Everything written to job data was built with this module; this is the second line of defence.
 */
export function assertInert(text: string): SafeMarkdown {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  const bad = lines.findIndex(startsWithSlash);
  if (bad >= 0)
    throw new Error(`refusing to post markdown whose line ${bad + 1} starts with "/" (a quick action)`);
  if (/[\r\u0085\u2028\u2029]/.test(text) || /[\p{Cf}]/u.test(text)) {
    throw new Error("refusing to post markdown holding line-separator, bidi or zero-width characters");
  }
  return brand(text);
}
