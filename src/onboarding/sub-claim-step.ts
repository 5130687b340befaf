import type { GitLabApi, ProjectId } from "../gitlab/api.ts";
import { describeGitLabMessage, isGitLabError } from "../gitlab/errors.ts";
import { code, md, plain, type SafeMarkdown, trusted } from "../gitlab/markdown-inert.ts";
import type { Change } from "./types.ts";

/**
 * Setting the project's `ci_id_token_sub_claim_components` is one step of a report, and never a fatal one:
 * what the bot wants GitLab to do may be impossible on this GitLab (before 17.10 a PUT with only this
 * attribute fails Grape's at_least_one_of with 400 "… are missing, at least one parameter must be provided")
 * or for this bot user (403 below Maintainer, `authorize_admin_project`). Either way the operator gets an
 * "Action needed" line and the report goes on (variables, issue, reply). Only transient failures (429,
 * 5xx, network) are thrown, so the job is retried as a whole, idempotently.
 */
export interface SubClaimStep {
  changes: Change[];
  actionNeeded?: SafeMarkdown;
  /** Why it could not be set, for the log. */
  reason?: string;
}

function actionNeeded(components: readonly string[], projectId: ProjectId, why: SafeMarkdown): SafeMarkdown {
  return md`> **Action needed**: the policy issues credentials for ${code(components.join(", "))} subjects, but the bot could not set this project's ID-token subject: ${why} Until it is set, pipelines' tokens will not match. A project Maintainer (or an administrator) can set \`ci_id_token_sub_claim_components\` with \`PUT /projects/${typeof projectId === "number" ? projectId : 0}\` or in Settings > CI/CD, or the platform team can switch the policy to \`project_path\` subjects.`;
}

const AT_LEAST_ONE = /at least one parameter must be provided/i;
const TOO_OLD = trusted(
  "this GitLab does not know the setting (GitLab before 17.10 answers 400 “at least one parameter must be provided”); upgrade GitLab to 17.10 or later.",
);

export async function applySubClaimComponents(
  gitlab: GitLabApi,
  projectId: ProjectId,
  components: readonly string[],
): Promise<SubClaimStep> {
  try {
    const r = await gitlab.setSubClaimComponents(projectId, components);
    if (r.status === "updated") {
      return {
        changes: [
          {
            op: "update",
            kind: "projectSetting",
            target: "ci_id_token_sub_claim_components",
            detail: components.join(","),
          },
        ],
      };
    }
    if (r.status !== "unsupported") return { changes: [] };
    const why = AT_LEAST_ONE.test(r.reason) ? TOO_OLD : md`GitLab refused it (${plain(r.reason)}).`;
    return { changes: [], reason: r.reason, actionNeeded: actionNeeded(components, projectId, why) };
  } catch (err) {
    if (!isGitLabError(err) || err.retryable) throw err;
    const said = describeGitLabMessage(err.gitlabMessage);
    const why =
      err.status === 403
        ? trusted(
            "GitLab answered 403: the bot user needs at least the Maintainer role on this project to change its CI/CD settings.",
          )
        : err.status === 400 && AT_LEAST_ONE.test(said)
          ? TOO_OLD
          : md`GitLab answered ${err.status ?? 0}: ${code(said.slice(0, 300) || err.code)}.`;
    return { changes: [], reason: err.message, actionNeeded: actionNeeded(components, projectId, why) };
  }
}
