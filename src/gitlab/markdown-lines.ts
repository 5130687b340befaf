/**
 * Which lines of a GitLab comment are the author's own text, as GitLab renders it (CommonMark blocks and
 * inlines, plus GitLab's `>>>` multi-line quotes). A command is taken only from such a line: never from
 * fenced or indented code, block quotes (lazy continuation lines included), HTML blocks and comments, or
 * code spans and inline HTML that run over several lines.
 *
 * A full Markdown parser builds a tree we do not need and is far too slow for GitLab's 1,000,000-character
 * notes (a micromark-based parser took a minute on 900 KB); this is one linear pass over the block structure
 * (containers: block quotes and list items; leaves: fences, indented code, HTML blocks, paragraphs) and one
 * linear pass over each paragraph's inlines (code spans, autolinks, raw HTML). Where it simplifies, it errs
 * towards "not text" (a command missed, never a quoted or pasted one executed).
 */

export const LINE_BREAK = /\r\n|\r|\n/;

type Container = { kind: "quote" } | { kind: "item"; indent: number };
type Paragraph = { kind: "para"; quoted: boolean; lines: Array<{ index: number; text: string }> };
type Leaf =
  | { kind: "fence"; char: string; length: number }
  | { kind: "html"; end: RegExp | "blank" }
  | { kind: "icode" }
  | Paragraph;

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,}) *$/;
const ATX_HEADING = /^ {0,3}#{1,6}(?: |$)/;
const SETEXT_UNDERLINE = /^ {0,3}(?:=+|-+) *$/;
const LIST_MARKER = /^( {0,3})([-+*]|\d{1,9}[.)])( *)(.*)$/;
/** GitLab's multi-line quote fence. */
const MULTILINE_QUOTE = /^ {0,3}>>>/;

const HTML_BLOCK_TYPE_6 =
  /^ {0,3}<\/?(?:address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h[1-6]|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td|tfoot|th|thead|title|tr|track|ul)(?:\s|\/?>|$)/i;
const ATTRIBUTE = String.raw`\s+[A-Za-z_:][A-Za-z0-9_.:-]*(?:\s*=\s*(?:[^\s"'=<>\x60]+|'[^']*'|"[^"]*"))?`;
const OPEN_TAG = String.raw`<[A-Za-z][A-Za-z0-9-]*(?:${ATTRIBUTE})*\s*\/?>`;
const CLOSING_TAG = String.raw`<\/[A-Za-z][A-Za-z0-9-]*\s*>`;
const HTML_BLOCK_TYPE_7 = new RegExp(String.raw`^ {0,3}(?:${OPEN_TAG}|${CLOSING_TAG})\s*$`);

/** HTML block start conditions 1-7 (CommonMark 0.31 §4.6) and their end conditions. */
function htmlBlockStart(rest: string, inParagraph: boolean): RegExp | "blank" | undefined {
  if (/^ {0,3}<(?:pre|script|style|textarea)(?:\s|>|$)/i.test(rest))
    return /<\/(?:pre|script|style|textarea)>/i;
  if (/^ {0,3}<!--/.test(rest)) return /-->/;
  if (/^ {0,3}<\?/.test(rest)) return /\?>/;
  if (/^ {0,3}<!\[CDATA\[/.test(rest)) return /\]\]>/;
  if (/^ {0,3}<![A-Za-z]/.test(rest)) return />/;
  if (HTML_BLOCK_TYPE_6.test(rest)) return "blank";
  // Type 7 (any other complete tag alone on its line) cannot interrupt a paragraph.
  if (!inParagraph && HTML_BLOCK_TYPE_7.test(rest)) return "blank";
  return undefined;
}

/** Tabs to spaces (tab stops of 4): block structure is decided on columns. */
function expandTabs(line: string): string {
  if (!line.includes("\t")) return line;
  let out = "";
  for (const ch of line) {
    if (ch === "\t") out += " ".repeat(4 - (out.length % 4));
    else out += ch;
  }
  return out;
}

function indentOf(s: string, from: number): number {
  let i = from;
  while (s.charCodeAt(i) === 32) i++;
  return i - from;
}

const isBlank = (s: string) => /^ *$/.test(s);

/** `***`, `- - -`, `___` (CommonMark §4.1); a loop, as a regex backtracks on long near-misses. */
function isThematicBreak(rest: string): boolean {
  const start = indentOf(rest, 0);
  const c = rest[start];
  if (start > 3 || (c !== "-" && c !== "*" && c !== "_")) return false;
  let count = 0;
  for (let i = start; i < rest.length; i++) {
    const ch = rest[i];
    if (ch === c) count++;
    else if (ch !== " ") return false;
  }
  return count >= 3;
}

/**
 * Deeper nesting than this is never written by hand; past it the pass stops and no later line counts (a
 * line of 200,000 "- " markers would otherwise cost quadratic time).
 */
const MAX_DEPTH = 32;

interface ListMarker {
  /** Columns from the current position to the item's content. */
  contentIndent: number;
  empty: boolean;
  /** Bullet, or an ordered item starting at 1: only those may interrupt a paragraph. */
  canInterrupt: boolean;
}

function listMarker(rest: string): ListMarker | undefined {
  if (isThematicBreak(rest)) return undefined;
  const m = LIST_MARKER.exec(rest);
  if (!m) return undefined;
  const [, lead = "", marker = "", spaces = "", content = ""] = m;
  if (spaces === "" && content !== "") return undefined;
  const empty = content === "" || isBlank(content);
  const gap = empty || spaces.length > 4 ? 1 : spaces.length;
  const ordered = /^\d/.test(marker);
  return {
    contentIndent: lead.length + marker.length + gap,
    empty,
    canInterrupt: !empty && (!ordered || Number.parseInt(marker, 10) === 1),
  };
}

/** A block start that ends a paragraph (so the line is no lazy continuation of it). */
function interruptsParagraph(rest: string): boolean {
  if (/^ {0,3}>/.test(rest)) return true;
  if (FENCE_OPEN.test(rest) && fenceOpener(rest)) return true;
  if (ATX_HEADING.test(rest) || isThematicBreak(rest)) return true;
  if (htmlBlockStart(rest, true) !== undefined) return true;
  const m = listMarker(rest);
  return m?.canInterrupt === true;
}

function fenceOpener(rest: string): { char: string; length: number } | undefined {
  const m = FENCE_OPEN.exec(rest);
  if (!m?.[1]) return undefined;
  const char = m[1][0] as string;
  if (char === "`" && (m[2] ?? "").includes("`")) return undefined;
  return { char, length: m[1].length };
}

/**
 * Marks, for each line, whether it is paragraph text outside any quote. `lines` is the note split on
 * CommonMark line endings (LINE_BREAK).
 */
export function ownTextLines(lines: readonly string[]): boolean[] {
  const text = new Array<boolean>(lines.length).fill(false);
  const containers: Container[] = [];
  let leaf: Leaf | undefined;
  // GitLab pairs `>>>` fences with rules of its own (blank lines around them, code skipped) that differ between
  // its Ruby and Rust renderers: after the first one, no line counts as the author's own (fail closed).
  let multilineQuote = false;

  const closeLeaf = () => {
    if (leaf?.kind === "para" && !leaf.quoted) markParagraph(leaf, text);
    leaf = undefined;
  };

  for (let index = 0; index < lines.length; index++) {
    const s = expandTabs(lines[index] ?? "");
    const end = s.trimEnd().length;
    let pos = 0;
    let matched = 0;
    for (const c of containers) {
      if (c.kind === "quote") {
        const ind = indentOf(s, pos);
        if (ind > 3 || s[pos + ind] !== ">") break;
        pos += ind + 1;
        if (s[pos] === " ") pos++;
      } else if (pos < end) {
        if (indentOf(s, pos) < c.indent) break;
        pos += c.indent;
      }
      matched++;
    }
    const all = matched === containers.length;
    let rest = s.slice(pos);

    if (all && leaf?.kind === "fence") {
      const close = FENCE_CLOSE.exec(rest);
      if (close?.[1] && close[1][0] === leaf.char && close[1].length >= leaf.length) leaf = undefined;
      continue;
    }
    if (all && leaf?.kind === "html") {
      if (leaf.end === "blank" ? isBlank(rest) : leaf.end.test(rest)) leaf = undefined;
      continue;
    }
    if (all && leaf?.kind === "icode" && (indentOf(rest, 0) >= 4 || isBlank(rest))) continue;
    // Lazy continuation: a paragraph inside a quote or list goes on on a line without the markers.
    if (!all && leaf?.kind === "para" && !isBlank(rest) && !interruptsParagraph(rest)) {
      leaf.lines.push({ index, text: rest.replace(/^ +/, "") });
      continue;
    }
    if (!all) {
      closeLeaf();
      containers.length = matched;
    }
    if (MULTILINE_QUOTE.test(rest)) {
      closeLeaf();
      multilineQuote = true;
      continue;
    }

    // New containers.
    for (;;) {
      if (containers.length >= MAX_DEPTH) {
        leaf = undefined;
        return text;
      }
      const ind = indentOf(rest, 0);
      if (ind <= 3 && rest[ind] === ">") {
        closeLeaf();
        containers.push({ kind: "quote" });
        rest = rest.slice(ind + 1);
        if (rest[0] === " ") rest = rest.slice(1);
        continue;
      }
      const m = listMarker(rest);
      if (m && (leaf?.kind !== "para" || m.canInterrupt)) {
        closeLeaf();
        containers.push({ kind: "item", indent: m.contentIndent });
        rest = m.empty ? "" : rest.slice(m.contentIndent);
        continue;
      }
      break;
    }

    const quoted = multilineQuote || containers.some((c) => c.kind === "quote");
    if (isBlank(rest)) {
      closeLeaf();
      continue;
    }
    const fence = fenceOpener(rest);
    if (fence) {
      closeLeaf();
      leaf = { kind: "fence", ...fence };
      continue;
    }
    const html = htmlBlockStart(rest, leaf?.kind === "para");
    if (html !== undefined) {
      closeLeaf();
      // A first line that also meets the end condition is the whole block.
      leaf = html !== "blank" && html.test(rest) ? undefined : { kind: "html", end: html };
      continue;
    }
    if (leaf?.kind === "para") {
      if (SETEXT_UNDERLINE.test(rest) || ATX_HEADING.test(rest) || isThematicBreak(rest)) {
        closeLeaf();
        continue;
      }
      leaf.lines.push({ index, text: rest.replace(/^ +/, "") });
      continue;
    }
    if (indentOf(rest, 0) >= 4) {
      closeLeaf();
      leaf = { kind: "icode" };
      continue;
    }
    if (ATX_HEADING.test(rest) || isThematicBreak(rest)) {
      closeLeaf();
      continue;
    }
    closeLeaf();
    leaf = { kind: "para", quoted, lines: [{ index, text: rest.replace(/^ +/, "") }] };
  }
  closeLeaf();
  return text;
}

const AUTOLINK =
  /<[A-Za-z][A-Za-z0-9.+-]{1,31}:[^\s<>]*>|<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*>/y;
const INLINE_HTML = new RegExp(
  String.raw`${OPEN_TAG}|${CLOSING_TAG}|<\?[\s\S]*?\?>|<![A-Za-z][^>]*>|<!\[CDATA\[[\s\S]*?\]\]>`,
  "y",
);
/**
 * Raw HTML and autolinks are matched within this many characters: a tag with an unclosed attribute quote
 * would otherwise be rescanned to the end of a 1,000,000-character note at every `<`. Longer tags are not
 * written by hand; missing one only matters to an author hiding a command from themselves.
 */
const INLINE_WINDOW = 1024;
const ASCII_PUNCTUATION = /[!-/:-@[-`{-~]/;

/**
 * Marks the paragraph's lines that start outside code spans and inline HTML (CommonMark §6.1, §6.6, §6.5:
 * leftmost first; a backtick run opens a code span only if a run of the same length follows).
 */
function markParagraph(para: Paragraph, text: boolean[]): void {
  const joined = para.lines.map((l) => l.text).join("\n");
  const starts: number[] = [];
  let offset = 0;
  for (const l of para.lines) {
    starts.push(offset);
    offset += l.text.length + 1;
  }
  // Every maximal backtick run, by length, in order: closers are found by lookup, not by rescanning.
  const runs = new Map<number, number[]>();
  for (let i = 0; i < joined.length; ) {
    if (joined[i] !== "`") {
      i++;
      continue;
    }
    let j = i;
    while (joined[j] === "`") j++;
    const list = runs.get(j - i) ?? [];
    list.push(i);
    runs.set(j - i, list);
    i = j;
  }
  const cursor = new Map<number, number>();
  const hidden: Array<[number, number]> = [];
  let commentEnd = 0;
  for (let i = 0; i < joined.length; ) {
    const ch = joined[i];
    if (ch === "\\" && ASCII_PUNCTUATION.test(joined[i + 1] ?? "")) {
      i += 2;
      continue;
    }
    if (ch === "`") {
      let j = i;
      while (joined[j] === "`") j++;
      const n = j - i;
      const list = runs.get(n) ?? [];
      let k = cursor.get(n) ?? 0;
      while (k < list.length && (list[k] as number) < j) k++;
      cursor.set(n, k);
      const close = list[k];
      if (close !== undefined) {
        hidden.push([i, close + n]);
        i = close + n;
      } else {
        i = j;
      }
      continue;
    }
    if (ch === "<") {
      // Comments may be long and run over lines; the next `-->` is looked up once, not rescanned.
      if (joined.startsWith("<!--", i)) {
        const short = joined.startsWith("<!-->", i) ? 5 : joined.startsWith("<!--->", i) ? 6 : 0;
        if (commentEnd !== -1 && commentEnd < i + 4) commentEnd = joined.indexOf("-->", i + 4);
        const stop = short ? i + short : commentEnd === -1 ? -1 : commentEnd + 3;
        if (stop !== -1) {
          hidden.push([i, stop]);
          i = stop;
          continue;
        }
      }
      const window = joined.slice(i, i + INLINE_WINDOW);
      AUTOLINK.lastIndex = 0;
      INLINE_HTML.lastIndex = 0;
      const m = AUTOLINK.exec(window) ?? INLINE_HTML.exec(window);
      if (m) {
        hidden.push([i, i + m[0].length]);
        i += m[0].length;
        continue;
      }
    }
    i++;
  }
  let h = 0;
  para.lines.forEach((line, k) => {
    const start = starts[k] as number;
    while (h < hidden.length && (hidden[h] as [number, number])[1] <= start) h++;
    const range = hidden[h];
    const inside = range !== undefined && range[0] <= start && start < range[1];
    if (!inside) text[line.index] = true;
  });
}
