import type { Policy } from "../config/policy.ts";
import {
  GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS,
  type SubClaimComponent,
  subClaimComponentsSchema,
} from "../config/policy-schema.ts";
import type { GitLabApi, GitLabProject, SubClaimUpdate } from "../gitlab/api.ts";
import { isGitLabError } from "../gitlab/errors.ts";
import { code, md, plain, type SafeMarkdown } from "../gitlab/markdown-inert.ts";
import type { Change } from "./types.ts";

/**
 * Which `sub` layout the federated credentials of one project must use. A credential only works if its subject
 * is exactly what GitLab will mint, and GitLab mints from the project's `ci_id_token_sub_claim_components`, so
 * the policy says what the bot asks GitLab for and GitLab's answer decides:
 * - the project already has the policy's layout: use it;
 * - otherwise (apply) the bot sets it first, before any Entra write; accepted: use it;
 * - refused (GitLab before project_id-first support, older than 17.10, or the bot below Maintainer):
 *   - policy default (no `gitlab.subClaimComponents` in the file): use what GitLab mints, the project's own
 *     layout or GitLab's default `project_path, ref_type, ref`, and say so. Path-headed credentials are
 *     then kept honest by the fail-closed rules (renames re-subject, freed paths lose their credentials);
 *   - explicit choice: refuse. Credentials that cannot match would be useless, and silently weakening a
 *     rename-proof choice to path subjects is a decision for the platform team, not the bot.
 * In plan mode nothing is written: the layout last written (the registry's record) or the policy's is predicted.
 */
export type SubjectResolution =
  | { ok: true; components: SubClaimComponent[]; changes: Change[]; notice?: SafeMarkdown }
  | { ok: false; message: SafeMarkdown };

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** A layout the bot can build subjects for (GitLab also allows components the bot does not model). */
function usable(components: readonly string[] | undefined): SubClaimComponent[] | undefined {
  if (!components) return undefined;
  const parsed = subClaimComponentsSchema.safeParse(components);
  return parsed.success ? parsed.data : undefined;
}

export async function resolveSubjectComponents(
  gitlab: Pick<GitLabApi, "setSubClaimComponents">,
  policy: Policy,
  live: Pick<GitLabProject, "id" | "ciIdTokenSubClaimComponents">,
  opts: {
    write: boolean /** The layout the credentials were last written with (registry). */;
    recorded?: readonly string[];
  },
): Promise<SubjectResolution> {
  const wanted = [...policy.gitlab.subClaimComponents];
  const current = live.ciIdTokenSubClaimComponents;
  if (current ? same(current, wanted) : same(wanted, GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS)) {
    return { ok: true, components: wanted, changes: [] };
  }
  // Plan mode writes nothing: the credentials keep the layout they were written with, else the policy's.
  if (!opts.write) return { ok: true, components: usable(opts.recorded) ?? wanted, changes: [] };

  let r: SubClaimUpdate;
  try {
    r = await gitlab.setSubClaimComponents(live.id, wanted);
  } catch (err) {
    // 403: the bot is below Maintainer (authorize_admin_project); it cannot change what GitLab mints.
    if (!isGitLabError(err) || err.status !== 403) throw err;
    r = {
      status: "unsupported",
      reason:
        "GitLab answered 403: the bot user needs at least the Maintainer role on this project to set it",
    };
  }
  if (r.status === "unsupported" && /at least one parameter/i.test(r.reason)) {
    r = {
      status: "unsupported",
      reason:
        "this GitLab does not know the setting: GitLab before 17.10 answers 400 at least one parameter must be provided",
    };
  }
  if (r.status !== "unsupported") {
    return {
      ok: true,
      components: wanted,
      changes:
        r.status === "updated"
          ? [
              {
                op: "update",
                kind: "projectSetting",
                target: "ci_id_token_sub_claim_components",
                detail: wanted.join(","),
              },
            ]
          : [],
    };
  }
  if (policy.gitlab.subClaimComponentsExplicit) {
    return {
      ok: false,
      message: md`**Action needed**: the policy requires ${code(wanted.join(", "))} token subjects (gitlab.subClaimComponents), but GitLab did not set them for this project (${plain(r.reason)}). No credential was written: it could never match the tokens GitLab mints. An administrator can set \`ci_id_token_sub_claim_components\` with \`PUT /projects/${live.id}\`, or the platform team can change gitlab.subClaimComponents in the policy.`,
    };
  }
  // What GitLab mints: the project's own layout when the bot can see it, else GitLab's default.
  const minted = current === undefined ? [...GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS] : usable(current);
  if (!minted) {
    return {
      ok: false,
      message: md`**Action needed**: this project's ID tokens use the subject layout ${code((current ?? []).join(", "))}, which the bot cannot build credentials for, and GitLab did not accept ${code(wanted.join(", "))} (${plain(r.reason)}). Set \`ci_id_token_sub_claim_components\` to ${code(wanted.join(", "))} or \`project_path, ref_type, ref\`.`,
    };
  }
  return {
    ok: true,
    components: minted,
    changes: [],
    notice: md`> **Note**: GitLab did not accept ${code(wanted.join(", "))} token subjects for this project (${plain(r.reason)}), so the credentials use ${code(minted.join(", "))}, exactly as GitLab mints this project's tokens. They name the project path: the bot re-subjects them after a rename and removes them at once when the path is freed.`,
  };
}
