import { DoctorInputError, parseDoctorInput, redactJwts } from "./input.ts";
import { renderMarkdown } from "./render.ts";
import { type DoctorDeps, runDoctor } from "./run.ts";

/**
 * The answer to `/entra doctor <text>` in an issue of project `projectId`, as markdown. Only that project's
 * credentials are read: claims naming another project are refused rather than looked up, so a comment in
 * one project cannot inspect another. A pasted raw ID token is decoded for its claims but never echoed,
 * and the reply asks for the comment to be deleted (the token is a credential until it expires).
 */
export async function doctorReply(deps: DoctorDeps, projectId: number, text: string): Promise<string> {
  let input: ReturnType<typeof parseDoctorInput>;
  try {
    input = parseDoctorInput(text);
  } catch (e) {
    if (!(e instanceof DoctorInputError)) throw e;
    return redactJwts(
      [
        "### `/entra doctor`",
        "",
        `❌ ${e.message}.`,
        "",
        "Usage: `/entra doctor` followed by the lines the failed job printed after “Paste these claims”, the ID token's claims as JSON, or Entra's AADSTS error message.",
      ].join("\n"),
    );
  }
  const preface: string[] = [];
  if (input.containedJwt) {
    const exp = input.claims.exp;
    const until = exp !== undefined ? ` until ${new Date(exp * 1000).toISOString()}` : " until it expires";
    preface.push(
      `> **⚠️ Your comment contains a raw GitLab ID token.** It is a credential${until}: **delete that comment** (editing leaves it in the history). Next time paste only the claims the job prints. The token is not repeated here; only its decoded claims are used.`,
    );
  }
  const claimed = Number(input.claims.project_id);
  if (input.claims.project_id !== undefined && claimed !== projectId) {
    preface.push(
      `> These claims are for GitLab project ${input.claims.project_id}, not this project (${projectId}): run \`/entra doctor\` in an issue of that project. Comparing with this project's credentials anyway.`,
    );
  }
  const run = await runDoctor(deps, input, { projectId });
  return renderMarkdown(run.diagnosis, {
    preface,
    sourceNote: sourceNote(input.kinds, input.containedJwt),
  });
}

export function sourceNote(kinds: string[], jwt: boolean): string {
  const what = kinds.map((k) =>
    k === "jwt"
      ? "claims decoded from an ID token (signature not verified: doctor only reads claims)"
      : k === "claims-json"
        ? "claims JSON"
        : k === "claim-lines"
          ? "claim lines"
          : "Entra's AADSTS message",
  );
  return `Read from: ${what.join(" + ")}${jwt ? "; the token itself is not shown" : ""}.`;
}
