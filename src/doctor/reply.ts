import { code, join, md, plain, type SafeMarkdown, trusted } from "../gitlab/markdown-inert.ts";
import { DoctorInputError, parseDoctorInput, redactJwts } from "./input.ts";
import { renderMarkdown } from "./render.ts";
import { type DoctorDeps, runDoctor } from "./run.ts";

/**
 * The answer to `/entra doctor <text>` in an issue of project `projectId`, as markdown. Only that project's
 * credentials are read: claims naming another project are refused rather than looked up, so a comment in
 * one project cannot inspect another. A pasted raw ID token is decoded for its claims but never echoed,
 * and the reply asks for the comment to be deleted (the token is a credential until it expires).
 */
export async function doctorReply(deps: DoctorDeps, projectId: number, text: string): Promise<SafeMarkdown> {
  let input: ReturnType<typeof parseDoctorInput>;
  try {
    input = parseDoctorInput(text);
  } catch (e) {
    if (!(e instanceof DoctorInputError)) throw e;
    return join([
      trusted("### `/entra doctor`"),
      trusted(""),
      md`❌ ${plain(redactJwts(e.message))}.`,
      trusted(""),
      trusted(
        "Usage: `/entra doctor` followed by the lines the failed job printed after “Paste these claims”, the ID token's claims as JSON, or Entra's AADSTS error message.",
      ),
    ]);
  }
  const preface: SafeMarkdown[] = [];
  if (input.containedJwt) {
    const exp = input.claims.exp;
    const until =
      exp !== undefined && Number.isFinite(exp * 1000) && Math.abs(exp) < 1e11
        ? md` until ${code(new Date(exp * 1000).toISOString())}`
        : trusted(" until it expires");
    preface.push(
      md`> **⚠️ Your comment contains a raw GitLab ID token.** It is a credential${until}: **delete that comment** (editing leaves it in the history). Next time paste only the claims the job prints. The token is not repeated here; only its decoded claims are used.`,
    );
  }
  const claimed = Number(input.claims.project_id);
  if (input.claims.project_id !== undefined && claimed !== projectId) {
    preface.push(
      md`> These claims are for GitLab project ${code(String(input.claims.project_id))}, not this project (${projectId}): run \`/entra doctor\` in an issue of that project. Comparing with this project's credentials anyway.`,
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
