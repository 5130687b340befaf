import type { Policy } from "../config/policy.ts";
import {
  GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS,
  type SubClaimComponent,
  subClaimComponentsSchema,
} from "../config/policy-schema.ts";
import type { GitLabApi, GitLabProject, SubClaimUpdate } from "../gitlab/api.ts";
import { isGitLabError } from "../gitlab/errors.ts";
import { code, md, plain, type SafeMarkdown } from "../gitlab/markdown-inert.ts";
import { desiredComponents, type ProjectBinding, ruleBindsRefs } from "../policy/protection.ts";
import { projectRule } from "../policy/rules.ts";
import type { Change } from "./types.ts";

/**
 * The one place that decides which `sub` layout a project's federated credentials use. A credential only works
 * if its subject is exactly what GitLab mints, and GitLab mints from the project's
 * `ci_id_token_sub_claim_components`, so the bot asks GitLab for the layout it wants and GitLab's answer decides.
 *
 * Wanted: the policy's components (default `project_id, ref_type, ref`), plus `ref_protected` when the project's
 * rule has a privileged environment (policy/protection.ts), so that its credentials accept protected refs only.
 * - GitLab already mints the wanted layout: used, nothing written;
 * - otherwise (apply) the bot sets it first, before any Entra write; accepted: used;
 * - refused, and the bot had added ref_protected: the policy's own components are tried. Accepted: used, and
 *   privileged environments are refused with GitLab's reason (bindingRefusal); the others carry on;
 * - the policy's own components refused (GitLab before project_id-first support, older than 17.10, or the bot
 *   below Maintainer):
 *   - policy default (no `gitlab.subClaimComponents` in the file): what GitLab mints, the project's own layout
 *     or GitLab's default `project_path, ref_type, ref`, and a notice says so. Where the rule binds refs,
 *     ref_protected is asked for on top of it (GitLab 18.7 to 19.x take it with project_path first).
 *     Path-headed credentials are kept honest by the fail-closed rules (renames re-subject, freed paths lose
 *     their credentials);
 *   - explicit choice: refused. Credentials that cannot match would be useless, and silently weakening a
 *     rename-proof choice to path subjects is a decision for the platform team, not the bot.
 * What was established is recorded in the registry (Registry.setSubjectLayout) once credentials are written;
 * plans (`/entra plan` and status, drift's plan, `npm run policy -- diff`, `policy explain --project-id`) read
 * that record instead of writing to GitLab (plannedSubjectLayout).
 */

/** The registry's record of what was established for a project. */
export interface SubjectLayout {
  /** What GitLab mints for the project, as established: the credentials' subjects use exactly these. */
  components: SubClaimComponent[];
  /** What the bot wanted then; absent in records written before bindings existed (the policy's components). */
  wanted?: SubClaimComponent[];
  /** Why GitLab did not take the wanted ref_protected: privileged environments are refused with this reason. */
  unsupported?: string;
}

export type SubjectResolution =
  | ({ ok: true; wanted: SubClaimComponent[]; changes: Change[]; notice?: SafeMarkdown } & ProjectBinding)
  | {
      ok: false;
      message: SafeMarkdown;
      /**
       * What a re-subjection that cannot wait (a moved project's old path must lose its subjects) uses anyway:
       * the policy's components, with the refusal as the reason privileged environments are refused.
       */
      fallback: ProjectBinding;
    };

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** The components the bot wants for a project at this path: the policy's, plus ref_protected where its rule binds refs. */
export function wantedComponents(policy: Policy, projectPath: string): SubClaimComponent[] {
  return desiredComponents(policy, projectRule(policy, projectPath));
}

/** A layout the bot can build subjects for (GitLab also allows components the bot does not model). */
function usable(components: readonly string[] | undefined): SubClaimComponent[] | undefined {
  if (!components) return undefined;
  const parsed = subClaimComponentsSchema.safeParse(components);
  return parsed.success ? parsed.data : undefined;
}

/** Whether GitLab mints exactly this layout for the project (its setting, or GitLab's default when unset/hidden). */
function mints(current: readonly string[] | undefined, list: readonly string[]): boolean {
  return current ? same(current, list) : same(list, GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS);
}

type Attempt = SubClaimUpdate & { forbidden?: boolean };

async function trySet(
  gitlab: Pick<GitLabApi, "setSubClaimComponents">,
  projectId: number,
  list: readonly SubClaimComponent[],
): Promise<Attempt> {
  let r: SubClaimUpdate;
  try {
    r = await gitlab.setSubClaimComponents(projectId, list);
  } catch (err) {
    // 403: the bot is below Maintainer (authorize_admin_project); it cannot change what GitLab mints.
    if (!isGitLabError(err) || err.status !== 403) throw err;
    r = { status: "unsupported", reason: "GitLab answered 403 Forbidden to PUT /projects/:id" };
  }
  if (r.status !== "unsupported") return r;
  if (/\b403\b/.test(r.reason)) {
    return {
      status: "unsupported",
      forbidden: true,
      reason:
        "GitLab answered 403: the bot user needs at least the Maintainer role on this project to set ci_id_token_sub_claim_components",
    };
  }
  if (/at least one parameter/i.test(r.reason)) {
    return {
      status: "unsupported",
      reason:
        "this GitLab does not know the setting: GitLab before 17.10 answers 400 at least one parameter must be provided",
    };
  }
  return r;
}

function setting(r: Attempt, list: readonly SubClaimComponent[]): Change[] {
  return r.status === "updated"
    ? [
        {
          op: "update",
          kind: "projectSetting",
          target: "ci_id_token_sub_claim_components",
          detail: list.join(","),
        },
      ]
    : [];
}

/**
 * Apply: establishes the layout in GitLab (see the module comment) before any Entra write. Throws only what is
 * worth a retry (GitLab unreachable, 5xx): the caller's job is retried and nothing was written to Entra.
 */
export async function establishSubjectLayout(
  gitlab: Pick<GitLabApi, "setSubClaimComponents">,
  policy: Policy,
  live: Pick<GitLabProject, "id" | "pathWithNamespace" | "ciIdTokenSubClaimComponents">,
): Promise<SubjectResolution> {
  const wanted = wantedComponents(policy, live.pathWithNamespace);
  const base = [...policy.gitlab.subClaimComponents];
  const current = live.ciIdTokenSubClaimComponents;
  const ok = (
    components: SubClaimComponent[],
    changes: Change[],
    extra: { unsupported?: string | undefined; notice?: SafeMarkdown } = {},
  ): SubjectResolution => ({
    ok: true,
    components,
    wanted,
    changes,
    ...(extra.unsupported ? { unsupported: extra.unsupported } : {}),
    ...(extra.notice ? { notice: extra.notice } : {}),
  });
  if (mints(current, wanted)) return ok(wanted, []);

  const first = await trySet(gitlab, live.id, wanted);
  if (first.status !== "unsupported") return ok(wanted, setting(first, wanted));
  let refusal: Attempt = first;
  if (!same(wanted, base)) {
    // The bot added ref_protected for the rule's privileged environments: the policy's own components without it.
    if (mints(current, base)) return ok(base, [], { unsupported: first.reason });
    if (!first.forbidden) {
      const second = await trySet(gitlab, live.id, base);
      if (second.status !== "unsupported")
        return ok(base, setting(second, base), { unsupported: first.reason });
      refusal = second;
    }
  }

  // GitLab refused the policy's own components.
  if (policy.gitlab.subClaimComponentsExplicit) {
    return {
      ok: false,
      message: md`**Action needed**: the policy requires ${code(base.join(", "))} token subjects (gitlab.subClaimComponents), but GitLab did not set them for this project (${plain(refusal.reason)}). No credential was written: it could never match the tokens GitLab mints. An administrator can set \`ci_id_token_sub_claim_components\` with \`PUT /projects/${live.id}\`, or the platform team can change gitlab.subClaimComponents in the policy.`,
      fallback: { components: base, unsupported: refusal.reason },
    };
  }
  // What GitLab mints: the project's own layout when the bot can see it, else GitLab's default.
  const minted = current === undefined ? [...GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS] : usable(current);
  if (!minted) {
    return {
      ok: false,
      message: md`**Action needed**: this project's ID tokens use the subject layout ${code((current ?? []).join(", "))}, which the bot cannot build credentials for, and GitLab did not accept ${code(base.join(", "))} (${plain(refusal.reason)}). Set \`ci_id_token_sub_claim_components\` to ${code(base.join(", "))} or \`project_path, ref_type, ref\`.`,
      fallback: { components: base, unsupported: refusal.reason },
    };
  }
  let components = minted;
  let changes: Change[] = [];
  let unsupported: string | undefined;
  if (ruleBindsRefs(projectRule(policy, live.pathWithNamespace)) && !minted.includes("ref_protected")) {
    const bound: SubClaimComponent[] = [...minted, "ref_protected"];
    const third = refusal.forbidden ? refusal : await trySet(gitlab, live.id, bound);
    if (third.status !== "unsupported") {
      components = bound;
      changes = setting(third, bound);
    } else {
      unsupported = third.reason;
    }
  }
  return ok(components, changes, {
    unsupported,
    notice: md`> **Note**: GitLab did not accept ${code(base.join(", "))} token subjects for this project (${plain(refusal.reason)}), so the credentials use ${code(components.join(", "))}, exactly as GitLab mints this project's tokens. They name the project path: the bot re-subjects them after a rename and removes them at once when the path is freed.`,
  });
}

/**
 * Plan: the layout applying would use, written nowhere and asking GitLab nothing. GitLab already minting the
 * wanted layout (when the project was just read) decides; else the registry's record, as long as the bot still
 * wants what it wanted then; else the wanted layout (what applying will ask GitLab for).
 */
export function plannedSubjectLayout(
  policy: Policy,
  projectPath: string,
  recorded: SubjectLayout | undefined,
  current?: readonly string[] | null,
): ProjectBinding {
  const wanted = wantedComponents(policy, projectPath);
  if (current !== null && current !== undefined && same(current, wanted)) return { components: wanted };
  if (recorded && same(recorded.wanted ?? policy.gitlab.subClaimComponents, wanted)) {
    return {
      components: [...recorded.components],
      ...(recorded.unsupported ? { unsupported: recorded.unsupported } : {}),
    };
  }
  return { components: wanted };
}

/**
 * The layout establishSubjectLayout would settle on without asking GitLab anything, when that is certain:
 * GitLab already mints the wanted layout, or the registry recorded establishing exactly the wanted layout
 * (nothing refused) and GitLab, where it shows the setting, still mints it. Otherwise undefined: the caller
 * must establish it (drift's bulk sweep then takes the project through the live path).
 */
export function settledSubjectLayout(
  policy: Policy,
  projectPath: string,
  recorded: SubjectLayout | undefined,
  current: readonly string[] | null | undefined,
): ProjectBinding | undefined {
  const wanted = wantedComponents(policy, projectPath);
  if (current !== null && current !== undefined && same(current, wanted)) return { components: wanted };
  if (!recorded || recorded.unsupported) return undefined;
  if (!same(recorded.wanted ?? policy.gitlab.subClaimComponents, wanted)) return undefined;
  if (!same(recorded.components, wanted)) return undefined;
  if (current !== null && current !== undefined) return undefined;
  return { components: wanted };
}

/** Apply establishes (writes GitLab); plan predicts from the record. */
export async function resolveSubjectComponents(
  gitlab: Pick<GitLabApi, "setSubClaimComponents">,
  policy: Policy,
  live: Pick<GitLabProject, "id" | "pathWithNamespace" | "ciIdTokenSubClaimComponents">,
  opts: { write: boolean; recorded?: SubjectLayout | undefined },
): Promise<SubjectResolution> {
  if (opts.write) return establishSubjectLayout(gitlab, policy, live);
  const planned = plannedSubjectLayout(
    policy,
    live.pathWithNamespace,
    opts.recorded,
    live.ciIdTokenSubClaimComponents,
  );
  return { ok: true, wanted: wantedComponents(policy, live.pathWithNamespace), changes: [], ...planned };
}

/** The record of an established layout (what the registry keeps). */
export function layoutRecord(r: Extract<SubjectResolution, { ok: true }>): SubjectLayout {
  return {
    components: [...r.components],
    wanted: [...r.wanted],
    ...(r.unsupported ? { unsupported: r.unsupported } : {}),
  };
}
