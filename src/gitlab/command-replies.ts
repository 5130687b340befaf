import { code, md, type SafeMarkdown, trusted } from "./markdown-inert.ts";

/** Fixed parts of command answers that quote what the user wrote (kept here so tests can reach them). */

/** Preface of the help shown for a word the bot does not know; the word is quoted inert. */
export function unknownCommandPreface(word: string, suggestion?: string): SafeMarkdown {
  const mean = suggestion ? md` Did you mean ${code(`/entra ${suggestion}`)}?` : trusted("");
  return md`${code(`/entra ${word}`)} is not a command I know.${mean}\n\n`;
}

export const NAME_ENVIRONMENTS = trusted("Name the environments, e.g. `/entra onboard staging`.");
