import MarkdownIt from "markdown-it";

/**
 * Judges whether a note or issue body the bot writes is inert on GitLab, from GitLab's rules and WITHOUT the
 * bot's escaper (src/gitlab/markdown-inert.ts is never imported here):
 * - quick actions: Gitlab::QuickActions::Extractor deletes "\r" and runs every line matching `^\/<cmd>`
 *   outside exact ``` fences, backtick pairs, HTML blocks and >>> quotes. Judged stricter: no line at all
 *   (code blocks included, other line separators counted as line breaks) may start with `/` after blanks;
 * - mentions and references: GitLab's reference filters run on rendered text outside pre/code/a/style
 *   (lib/banzai/filter/references/reference_filter.rb); judged on the text tokens of a CommonMark + GFM parse
 *   (markdown-it with raw HTML and linkify on, like GLFM's autolinks): no `@name`, `#1`, `!1`, `&1`, `$1`,
 *   `~label`, `%milestone` except those the caller says the bot wrote itself;
 * - links and images: no link or image token (inline, reference, `<…>` autolink, bare URL), outside code;
 * - raw HTML: none but the bot's own `<!-- gitlab-entra-bot:… -->` markers;
 * - fences: every opened fence is closed before the end (CommonMark 4.5);
 * - hidden characters: no CR, NEL, U+2028/2029, bidi controls or zero-width characters anywhere.
 */
const parser = new MarkdownIt({ html: true, linkify: true });

const HIDDEN =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the oracle looks for exactly these characters
  /[\r\u000b\u000c\u0085\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\u2060\ufeff]/u;
const MARKER = /^<!-- gitlab-entra-bot:[a-z:-]+ -->$/;
const NOT_WORD = "(?<![\\p{L}\\p{N}_])";
const REFERENCE_PATTERNS: [string, RegExp][] = [
  ["mention", new RegExp(`${NOT_WORD}@[A-Za-z0-9_][A-Za-z0-9_.-]*`, "gu")],
  ["issue/MR/epic/snippet reference", new RegExp(`${NOT_WORD}(?:[\\w.-]+(?:/[\\w.-]+)*)?[#!&$]\\d+`, "gu")],
  ["label reference", new RegExp(`${NOT_WORD}~(?:"[^"]+"|[A-Za-z0-9_][\\w.?&-]*)`, "gu")],
  ["milestone reference", new RegExp(`${NOT_WORD}%(?:"[^"]+"|[A-Za-z0-9_][\\w.-]*)`, "gu")],
];

interface Token {
  type: string;
  content: string;
  markup: string;
  map: [number, number] | null;
  children: Token[] | null;
}

export interface OracleOptions {
  /** References the bot itself wrote (e.g. "#12" pointing to the onboarding issue). */
  allowedReferences?: string[];
}

export function inertnessProblems(markdown: string, opts: OracleOptions = {}): string[] {
  const problems: string[] = [];
  const hidden = markdown.match(HIDDEN);
  if (hidden) problems.push(`hidden or line-separator character U+${hidden[0].codePointAt(0)?.toString(16)}`);

  // biome-ignore lint/suspicious/noControlCharactersInRegex: VT and FF count as line breaks here, to be strict
  const lines = markdown.replace(/\r/g, "").split(/[\n\u000b\u000c\u0085\u2028\u2029]/);
  lines.forEach((line, i) => {
    if (/^\s*\//.test(line)) problems.push(`line ${i + 1} would be a quick action: ${line.slice(0, 80)}`);
  });

  const checkReferences = (joined: string) => {
    for (const [what, re] of REFERENCE_PATTERNS) {
      for (const m of joined.matchAll(re)) {
        if (!opts.allowedReferences?.includes(m[0])) problems.push(`${what} outside code: ${m[0]}`);
      }
    }
  };
  const tokens = parser.parse(markdown, {}) as unknown as Token[];
  const sourceLines = markdown.split("\n");
  const visit = (list: Token[], inlineText: string[]): void => {
    for (const t of list) {
      if (t.type === "html_block" || t.type === "html_inline") {
        if (!MARKER.test(t.content.trim())) problems.push(`raw HTML: ${t.content.trim().slice(0, 80)}`);
      }
      if (t.type === "link_open" || t.type === "image") problems.push(`${t.type} outside code`);
      if (t.type === "text") inlineText.push(t.content);
      if (t.type === "code_inline" || t.type === "softbreak" || t.type === "hardbreak")
        inlineText.push("\u0000");
      if (t.type === "fence") {
        const [start, end] = t.map ?? [0, 0];
        const closing = sourceLines[end - 1] ?? "";
        const m = closing.match(/^ {0,3}(`{3,}|~{3,})[ \t]*$/);
        if (end - 1 <= start || !m || m[1]?.[0] !== t.markup[0] || (m[1]?.length ?? 0) < t.markup.length)
          problems.push(`fence opened on line ${start + 1} is not closed`);
      }
      if (t.children) visit(t.children, inlineText);
    }
  };
  // GFM tables (as GitLab renders them) split a row on every unescaped `|`, even inside a code span (GFM
  // spec 4.10); markdown-it keeps code spans whole, so each cell is re-parsed the way GitLab splits it.
  for (const t of tokens) {
    if (t.type !== "table_open" || !t.map) continue;
    for (let i = t.map[0]; i < t.map[1]; i++) {
      const row = sourceLines[i] ?? "";
      if (/^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/.test(row)) continue;
      for (const cellText of row.split(/(?<!\\)\|/)) {
        const text: string[] = [];
        visit(parser.parseInline(cellText.replace(/\\\|/g, "|"), {}) as unknown as Token[], text);
        checkReferences(text.join(""));
      }
    }
  }
  for (const t of tokens) {
    const text: string[] = [];
    visit([t], text);
    checkReferences(text.join(""));
  }
  return problems;
}
