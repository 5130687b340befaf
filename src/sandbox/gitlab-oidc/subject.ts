/**
 * How GitLab builds a CI ID token's `sub`, written from GitLab's documents and nothing else (the simulator is a
 * judge of the bot, so it must not share the bot's code; reference/gitlab.md §6 and §8b):
 *
 * - `lib/gitlab/ci/jwt_v2.rb` (JwtV2#initialize): `sub` is `<claim>:<value>` for each configured component,
 *   in the configured order, joined by ":", and a component whose claim is nil is left out
 *   (`sub_components.select { custom_claims[c] }`). Values are the token's own claim values; nothing is
 *   escaped, so a ref containing ":" stays as it is.
 * - The project attribute `ci_id_token_sub_claim_components` chooses the components; its default is
 *   `project_path, ref_type, ref` (doc/api/projects.md), which gives the documented
 *   `project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1`.
 * - `project_id` may lead instead of `project_path` ("Use the project ID as the subject",
 *   doc/ci/cloud_services/_index.md); GitLab 18.7+ allows `ref_protected`, `environment_protected` and
 *   `deployment_tier` after `ref`, and they appear in `sub` only when the job has an environment.
 */

/** Components that GitLab 18.7+ puts in `sub` only for jobs with an `environment:`. */
export const ENVIRONMENT_BOUND_COMPONENTS: ReadonlySet<string> = new Set([
  "ref_protected",
  "environment_protected",
  "deployment_tier",
]);

/** GitLab's default `ci_id_token_sub_claim_components`. */
export const GITLAB_DEFAULT_SUB_COMPONENTS: readonly string[] = ["project_path", "ref_type", "ref"];

/**
 * `sub` for a token whose custom claims are `claims`. `jobHasEnvironment` says whether the job declared an
 * environment (only then do the 18.7 environment-bound components count).
 */
export function gitlabSubject(
  components: readonly string[],
  claims: Readonly<Record<string, unknown>>,
  jobHasEnvironment: boolean,
): string {
  const pairs: string[] = [];
  for (const component of components) {
    if (ENVIRONMENT_BOUND_COMPONENTS.has(component) && !jobHasEnvironment) continue;
    const value = claims[component];
    // Ruby's `select { custom_claims[c] }`: only nil (and false, which GitLab never puts in a claim) drops it.
    if (value === undefined || value === null || value === false) continue;
    pairs.push(component, String(value));
  }
  return pairs.join(":");
}
