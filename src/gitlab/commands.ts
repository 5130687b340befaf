import type { Policy } from "../config/policy.ts";
import { isPrivilegedSetting } from "../config/policy-schema.ts";
import { desiredComponents } from "../policy/protection.ts";
import { projectRule } from "../policy/rules.ts";
import { cell, code, join, md, plain, type SafeMarkdown, trusted } from "./markdown-inert.ts";
import { LINE_BREAK, ownTextLines } from "./markdown-lines.ts";

/**
 * `/entra ...` slash commands in issue comments. GitLab runs its own quick actions server-side, one per
 * line; `/entra` is not one of them, so the bot owns exactly the lines that start with it.
 */

export const COMMAND_WORDS = [
  "onboard",
  "plan",
  "status",
  "offboard",
  "approve",
  "help",
  "doctor",
  "snippet",
] as const;
export type CommandWord = (typeof COMMAND_WORDS)[number];

export type ParsedCommand =
  | { kind: "onboard" | "plan" | "offboard" | "approve"; environments: string[] }
  | { kind: "status" }
  | { kind: "help" }
  /** `rest`: everything after the word, raw (claims pasted from a failed pipeline span several lines). */
  | { kind: "doctor"; rest: string }
  /** `args`: the words after `snippet` on its line (variant and environments; see snippet-command.ts). */
  | { kind: "snippet"; args: string[] }
  | { kind: "unknown"; word: string; suggestion?: CommandWord };

/** At most 3 spaces of indentation: 4 make an indented code block (or continue a paragraph's text). */
const PREFIX = /^ {0,3}\/entra(?=\s|$)/i;
/** Cheap test before the Markdown pass: most notes, and most huge ones, never mention the bot. */
const CANDIDATE = /(?:^|[\r\n]) {0,3}\/entra(?=\s|$)/i;
/** The intake puts this in job data; commands never need more. */
export const MAX_COMMAND_LENGTH = 4000;

/**
 * The command as the intake should forward it: the first line starting with `/entra` that is the author's
 * own text (not code, a quote or an HTML comment; see markdown-lines.ts), trimmed; for `doctor` also the
 * remaining lines of the comment. null when there is none.
 */
export function findCommandLine(note: string): string | null {
  if (!CANDIDATE.test(note)) return null;
  const lines = note.split(LINE_BREAK);
  const own = ownTextLines(lines);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (!own[i] || !PREFIX.test(line)) continue;
    const head = line.trim();
    const word = head.split(/\s+/)[1]?.toLowerCase();
    const text = word === "doctor" ? [head, ...lines.slice(i + 1)].join("\n").trimEnd() : head;
    return text.slice(0, MAX_COMMAND_LENGTH);
  }
  return null;
}

/** Parses a comment (or the line findCommandLine returned). null when it holds no `/entra` command. */
export function parseCommand(note: string): ParsedCommand | null {
  const text = findCommandLine(note);
  if (text === null) return null;
  const afterPrefix = text.replace(PREFIX, "");
  const match = afterPrefix.match(/^\s*(\S+)/);
  if (!match?.[1]) return { kind: "help" };
  const word = match[1].toLowerCase();
  const rest = afterPrefix.slice((match.index ?? 0) + match[0].length);
  switch (word) {
    case "onboard":
    case "plan":
    case "offboard":
    case "approve":
      return { kind: word, environments: environmentArgs(rest.split("\n")[0] ?? "") };
    case "status":
      return { kind: "status" };
    case "help":
      return { kind: "help" };
    case "doctor":
      return { kind: "doctor", rest: rest.replace(/^[ \t]+/, "") };
    case "snippet":
      return { kind: "snippet", args: environmentArgs(rest.split("\n")[0] ?? "") };
    default: {
      const suggestion = suggest(word);
      return suggestion ? { kind: "unknown", word, suggestion } : { kind: "unknown", word };
    }
  }
}

/** `staging, production review/x` -> ["staging", "production", "review/x"], order kept, duplicates dropped. */
function environmentArgs(text: string): string[] {
  const names = text
    .split(/[\s,]+/)
    .map((s) => s.replace(/^[`"']+|[`"']+$/g, ""))
    .filter(Boolean);
  return [...new Set(names)];
}

/** Optimal-string-alignment distance (Damerau-Levenshtein with adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = v;
    }
  }
  return at(a.length, b.length);
}

function suggest(word: string): CommandWord | undefined {
  let best: { w: CommandWord; d: number } | undefined;
  for (const w of COMMAND_WORDS) {
    const dist = editDistance(word, w);
    if (dist <= 2 && (!best || dist < best.d)) best = { w, d: dist };
  }
  return best?.w;
}

const ROLE_LABEL: Record<string, string> = {
  guest: "Guest",
  reporter: "Reporter",
  developer: "Developer",
  maintainer: "Maintainer",
  owner: "Owner",
};

export function roleLabel(name: string): string {
  return ROLE_LABEL[name] ?? name;
}

/** Markdown answer to `/entra help`, built from the policy so it always tells the truth about this install. */
export function helpText(policy: Policy, projectPath?: string): SafeMarkdown {
  // With the project's path, the rule that governs that project; else the top-level environments.
  const rule = projectPath === undefined ? undefined : projectRule(policy, projectPath);
  const environments = rule ? [...rule.environments] : Object.entries(policy.environments);
  const envRows = environments.map(([name, env]) => {
    const refs = join(env.refs.map(cell), ", ");
    const privileged = isPrivilegedSetting(name, env);
    const approval = env.approvers?.length
      ? md`yes: ${join(env.approvers.map(cell), ", ")}`
      : privileged
        ? trusted("no (privileged)")
        : trusted("no");
    const first = env.onFirstDeployment && (!privileged || env.autoOnboard) ? trusted("yes") : trusted("no");
    return md`| ${cell(name)} | ${refs} | ${plain(roleLabel(env.minAccessLevel))} | ${approval} | ${first} |`;
  });
  const defaults = (rule?.onProjectCreate ?? policy.onProjectCreate).environments;
  return join([
    trusted("### `/entra` commands"),
    trusted(""),
    trusted("Write the command on its own line in a comment on any issue of this project."),
    trusted(""),
    trusted("| Command | What it does |"),
    trusted("|---|---|"),
    trusted(
      "| `/entra onboard [env ...]` | Creates or repairs the Azure identity of each environment and posts the CI snippet |",
    ),
    trusted("| `/entra plan [env ...]` | Shows what `onboard` would change, without changing anything |"),
    trusted("| `/entra status` | Shows the identities and federated credentials this project has |"),
    trusted(
      "| `/entra offboard [env ...]` | Removes the identities (pipelines of those environments can no longer log in) |",
    ),
    trusted(
      "| `/entra approve <env ...>` | An approver consents to setting up a privileged environment (the request, or the next `onboard`, then proceeds) |",
    ),
    trusted(
      "| `/entra snippet <azure-cli\\|terraform\\|azure-sdk> [env ...]` | Shows the CI snippet for the Azure CLI, Terraform (azurerm) or the Azure SDK |",
    ),
    trusted(
      "| `/entra doctor <claims>` | Explains a failed `az login`: paste the decoded iss/sub/aud the CI snippet prints |",
    ),
    trusted("| `/entra help` | This message |"),
    trusted(""),
    defaults.length
      ? md`Without environment names, \`onboard\` and \`plan\` use: ${join(defaults.map(code), ", ")}.`
      : trusted("Name the environments to onboard, e.g. `/entra onboard staging`."),
    trusted(""),
    trusted("#### Environments the policy allows"),
    trusted(""),
    trusted(
      "| Environment | Refs that may log in | Minimum role to run commands | Approval needed | Onboarded on first deployment |",
    ),
    trusted("|---|---|---|---|---|"),
    ...envRows,
    trusted(""),
    // The layout the bot asks GitLab for in this project (with ref_protected where its rule binds refs).
    md`Token subject: ${code((rule ? desiredComponents(policy, rule) : policy.gitlab.subClaimComponents).join(", "))}; audience: ${code(policy.gitlab.audience)}.`,
  ]);
}
