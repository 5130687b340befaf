import {
  cell,
  code,
  fenced,
  join,
  md,
  pasted,
  plain,
  type SafeMarkdown,
  trusted,
} from "../gitlab/markdown-inert.ts";
import { type Diagnosis, type DiagnosisRow, type FieldCell, formatAge, type Verdict } from "./diagnose.ts";
import { redactJwts } from "./input.ts";

/**
 * Two views of one Diagnosis: plain text for a terminal (ANSI colour only when asked, i.e. stdout is a TTY)
 * and markdown for a GitLab comment. Values are shown JSON-quoted so whitespace and control characters are
 * visible, and each differing field gets a two-line comparison with carets under the differing characters.
 */

/** JSON-quoted, so a trailing space or a tab is visible. */
export function visible(value: string): string {
  return JSON.stringify(value);
}

/** The differing middle of two strings: common prefix and suffix (not overlapping) cut off. */
export function differingSpan(a: string, b: string): { start: number; endA: number; endB: number } {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  return { start, endA, endB };
}

const FIELD_LABEL = { issuer: "issuer", subject: "subject", audience: "audience" } as const;
const KIND_NOTE = {
  case: "letter case",
  "trailing-slash": "trailing slash",
  whitespace: "whitespace",
  different: "",
} as const;

/** The three-line comparison of one field: credential, token, carets under what differs. */
export function caretLines(cell: FieldCell, colour: boolean): string[] {
  if (!cell.diff || cell.actual === undefined) return [];
  const expected = visible(cell.expected);
  const actual = visible(cell.actual);
  const { start, endA, endB } = differingSpan(expected, actual);
  const width = Math.max(endA - start, endB - start, 1);
  const paint = (s: string, end: number, code: string) =>
    colour ? `${s.slice(0, start)}\u001b[${code}m${s.slice(start, end)}\u001b[0m${s.slice(end)}` : s;
  return [
    `credential ${paint(expected, endA, "32")}`,
    `token      ${paint(actual, endB, "31;1")}`,
    `           ${" ".repeat(start)}${"^".repeat(width)}`,
  ];
}

function cellText(cell: FieldCell): string {
  if (cell.actual === undefined) return `${cell.expected} (token: ?)`;
  if (!cell.diff) return `${cell.expected} ✓`;
  const note = KIND_NOTE[cell.diff.kind];
  return `${cell.expected} ✗ at char ${cell.diff.index + 1}${note ? `, ${note}` : ""}`;
}

function age(row: DiagnosisRow): string {
  return row.ageSeconds === undefined ? "unknown" : `${formatAge(row.ageSeconds)} ago`;
}

function expiry(d: Diagnosis): string {
  if (d.token.exp === undefined) return "?";
  // A pasted exp can be anything: Date throws past ±8.64e15 ms.
  if (!(Math.abs(d.token.exp) < 8.64e12)) return String(d.token.exp);
  const at = new Date(d.token.exp * 1000).toISOString();
  const left = d.token.expiresInSeconds ?? 0;
  return left > 0 ? `${at} (in ${formatAge(left)})` : `${at} (expired ${formatAge(-left)} ago)`;
}

function rowName(row: DiagnosisRow): string {
  return `${row.fic.environment ?? "?"} / ${row.fic.name}${row.nearest ? " (nearest)" : ""}`;
}

const SYMBOL: Record<Verdict["severity"], string> = { error: "✗", warning: "!", info: "✓" };

// ------------------------------------------------------------------------------------------------ terminal

export function renderTerminal(d: Diagnosis, opts: { colour: boolean; sourceNote?: string }): string {
  const c = (code: string, s: string) => (opts.colour ? `\u001b[${code}m${s}\u001b[0m` : s);
  const out: string[] = [];
  if (opts.sourceNote) out.push(c("2", opts.sourceNote), "");
  if (d.aadsts) {
    out.push(`Entra said: ${d.aadsts.message}`);
    if (d.aadsts.traceId)
      out.push(
        `  trace id ${d.aadsts.traceId}${d.aadsts.correlationId ? `, correlation id ${d.aadsts.correlationId}` : ""}`,
      );
    out.push("");
  }
  const header = ["", "issuer", "subject", "audience", "expiry / changed"];
  const table: string[][] = [
    header,
    ["ID token", d.token.iss ?? "?", d.token.sub ?? "?", d.token.aud?.join(" ") ?? "?", expiry(d)],
    ...d.rows.map((r) => [rowName(r), cellText(r.issuer), cellText(r.subject), cellText(r.audience), age(r)]),
  ];
  const widths = header.map((_, i) => Math.max(...table.map((row) => (row[i] ?? "").length)));
  table.forEach((row, n) => {
    const line = row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
    out.push(n === 0 ? c("1", line) : /✗/.test(line) ? line.replace(/✗/g, c("31;1", "✗")) : line);
  });
  const nearest = d.rows.find((r) => r.nearest);
  if (nearest) {
    const lines = (["issuer", "subject", "audience"] as const).flatMap((f) => {
      const l = caretLines(nearest[f], opts.colour);
      return l.length ? [`${FIELD_LABEL[f]}:`, ...l.map((x) => `  ${x}`)] : [];
    });
    if (lines.length) out.push("", `Differences from ${rowName(nearest)}:`, ...lines);
  }
  out.push("", c("1", "Verdict:"));
  for (const v of d.verdicts) {
    const colour = v.severity === "error" ? "31" : v.severity === "warning" ? "33" : "32";
    out.push(`${c(colour, SYMBOL[v.severity])} ${v.message}`);
    if (v.fix !== "-") out.push(`  fix: ${v.fix}`);
  }
  return `${redactJwts(out.join("\n"))}\n`;
}

// ------------------------------------------------------------------------------------------------ markdown

/** Every value shown in markdown: a pasted ID token never comes back, and the escaper makes the rest inert. */
const valueCell = (value: string | undefined): SafeMarkdown =>
  value === undefined ? trusted("?") : cell(redactJwts(value));
const prose = (value: string): SafeMarkdown => plain(redactJwts(value));

function mdCell(c: FieldCell): SafeMarkdown {
  if (c.actual === undefined) return valueCell(c.expected);
  if (!c.diff) return md`${valueCell(c.expected)} ✅`;
  const note = KIND_NOTE[c.diff.kind];
  return md`${valueCell(c.expected)} ❌ char ${c.diff.index + 1}${note ? md` (${trusted(note)})` : trusted("")}`;
}

const MD_SYMBOL: Record<Verdict["severity"], SafeMarkdown> = {
  error: trusted("❌"),
  warning: trusted("⚠️"),
  info: trusted("✅"),
};

function mdAge(row: DiagnosisRow): SafeMarkdown {
  return row.ageSeconds === undefined ? trusted("unknown") : md`${plain(formatAge(row.ageSeconds))} ago`;
}

export function renderMarkdown(
  d: Diagnosis,
  opts: { preface?: SafeMarkdown[]; sourceNote?: string } = {},
): SafeMarkdown {
  const out: SafeMarkdown[] = [trusted("### `/entra doctor`"), trusted("")];
  if (opts.preface?.length) out.push(...opts.preface, trusted(""));
  if (opts.sourceNote) out.push(md`_${plain(opts.sourceNote)}_`, trusted(""));
  if (d.aadsts) {
    out.push(trusted("Entra said:"), trusted(""), pasted(redactJwts(d.aadsts.message)));
    if (d.aadsts.traceId) out.push(trusted(""), md`Trace id ${code(d.aadsts.traceId)}.`);
    out.push(trusted(""));
  }
  out.push(trusted("**Verdict**"), trusted(""));
  for (const v of d.verdicts) {
    out.push(md`- ${MD_SYMBOL[v.severity]} ${prose(v.message)}`);
    if (v.fix !== "-") out.push(md`  - Fix: ${prose(v.fix)}`);
  }
  out.push(
    trusted(""),
    trusted("**Token vs credentials**"),
    trusted(""),
    trusted("| | Issuer | Subject | Audience | Expiry / changed |"),
    trusted("|---|---|---|---|---|"),
    md`| ID token | ${valueCell(d.token.iss)} | ${valueCell(d.token.sub)} | ${valueCell(d.token.aud?.join(" "))} | ${plain(expiry(d))} |`,
  );
  for (const r of d.rows) {
    out.push(
      md`| ${valueCell(r.fic.environment ?? "?")} ${valueCell(r.fic.name)}${r.nearest ? trusted(" (nearest)") : trusted("")} | ${mdCell(r.issuer)} | ${mdCell(r.subject)} | ${mdCell(r.audience)} | ${mdAge(r)} |`,
    );
  }
  const nearest = d.rows.find((r) => r.nearest);
  if (nearest) {
    const lines = (["issuer", "subject", "audience"] as const).flatMap((f) => {
      const l = caretLines(nearest[f], false);
      return l.length ? [`${FIELD_LABEL[f]}:`, ...l.map((x) => `  ${x}`)] : [];
    });
    if (lines.length)
      out.push(
        trusted(""),
        md`Exact differences from ${code(nearest.fic.name)}:`,
        trusted(""),
        fenced(redactJwts(lines.join("\n")), "text"),
      );
  }
  return join(out);
}
