import { code, md, type SafeMarkdown, trusted } from "../gitlab/markdown-inert.ts";
import type { OnboardResult } from "./types.ts";

/** Graph object ids are GUIDs; anything else is dropped rather than echoed into GitLab. */
const guid = (s: string) => (/^[0-9a-f-]{36}$/i.test(s) ? s : "(unreadable id)");

/**
 * One line in the onboarding issue per app registration tagged as one of this project's identities that the
 * bot does not own alone (the reconciler's "refuse application" changes). Only the object id and the
 * environment are shown: the look-alike's name and tags are someone else's text.
 */
export function collisionNotes(result: OnboardResult): SafeMarkdown[] {
  const lines: SafeMarkdown[] = [];
  for (const env of result.environments) {
    for (const c of env.changes) {
      if (c.op !== "refuse" || c.kind !== "application") continue;
      lines.push(
        // Environment names come from GitLab: inert code spans (markdown-inert.ts), whatever they hold.
        md`> **Warning**: app registration ${code(guid(c.target))} is tagged as this project's ${code(env.environment.slice(0, 100))} identity but is not owned by the bot alone. The bot did not use it and never writes to it${env.identity ? trusted("; the identity below is the bot's own") : trusted("")}. Ask your Entra administrators to review or delete it: whoever owns it controls its credentials.`,
      );
    }
  }
  return lines;
}
