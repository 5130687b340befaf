import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import type { GitLabApi, SubClaimUpdate } from "../../src/gitlab/api.ts";
import { hasDeletionScheduledSegment, isPendingDeletion, isUnderNamespace } from "../../src/gitlab/paths.ts";
import { resolveSubjectComponents } from "../../src/onboarding/subject-components.ts";
import { policyWarning } from "../../src/preflight/checks.ts";

describe("namespace bounds (which projects a namespace-bound secret may speak for)", () => {
  it("covers the namespace's projects, case-insensitively, on a / boundary only", () => {
    expect(isUnderNamespace("acme/api", "acme")).toBe(true);
    expect(isUnderNamespace("ACME/Team/api", "acme/team")).toBe(true);
    expect(isUnderNamespace("acme/team/api", "Acme/")).toBe(true);
    expect(isUnderNamespace("acme-evil/api", "acme")).toBe(false);
    expect(isUnderNamespace("acmeevil/api", "acme")).toBe(false);
    expect(isUnderNamespace("acme", "acme")).toBe(false);
    expect(isUnderNamespace("other/acme/api", "acme")).toBe(false);
    expect(isUnderNamespace("acme/api", "")).toBe(false);
  });
});

describe("pending deletion as GitLab shows it", () => {
  it("a marked-for-deletion date, or a -deletion_scheduled-<id> segment (project or group)", () => {
    expect(isPendingDeletion({ pathWithNamespace: "g/p", markedForDeletionOn: "2026-11-30" })).toBe(true);
    expect(isPendingDeletion({ pathWithNamespace: "g/project-1-deletion_scheduled-177483" })).toBe(true);
    expect(isPendingDeletion({ pathWithNamespace: "grp-deletion_scheduled-452/some-repo" })).toBe(true);
    expect(isPendingDeletion({ pathWithNamespace: "g/p" })).toBe(false);
    expect(hasDeletionScheduledSegment("g/deletion_scheduled-notes")).toBe(false);
    expect(hasDeletionScheduledSegment("g/p-deletion_scheduled-x1")).toBe(false);
  });
});

/** A GitLab whose answer to setting the sub-claim components is given. */
function gitlabAnswering(answer: SubClaimUpdate | Error) {
  const calls: string[][] = [];
  const gitlab: Pick<GitLabApi, "setSubClaimComponents"> = {
    async setSubClaimComponents(_id, components) {
      calls.push([...components]);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  return { gitlab, calls };
}

const DEFAULT_POLICY = parsePolicy("environments:\n  prod:\n    refs: ['branch:main']\n");
const EXPLICIT_ID = parsePolicy(
  "gitlab:\n  subClaimComponents: [project_id, ref_type, ref]\nenvironments:\n  prod:\n    refs: ['branch:main']\n",
);
const EXPLICIT_PATH = parsePolicy(
  "gitlab:\n  subClaimComponents: [project_path, ref_type, ref]\nenvironments:\n  prod:\n    refs: ['branch:main']\n",
);
const refused: SubClaimUpdate = { status: "unsupported", reason: "project_path must be the first element" };

describe("which sub layout the credentials use (what GitLab will mint)", () => {
  it("the project already has the policy's layout: used, nothing written", async () => {
    const { gitlab, calls } = gitlabAnswering(new Error("must not be called"));
    const r = await resolveSubjectComponents(
      gitlab,
      DEFAULT_POLICY,
      { id: 1, pathWithNamespace: "g/p", ciIdTokenSubClaimComponents: ["project_id", "ref_type", "ref"] },
      { write: true },
    );
    expect(r).toEqual({
      ok: true,
      components: ["project_id", "ref_type", "ref"],
      wanted: ["project_id", "ref_type", "ref"],
      changes: [],
    });
    expect(calls).toEqual([]);
  });

  it("default policy, GitLab accepts project_id: set first, then used, and the setting change is reported", async () => {
    const { gitlab, calls } = gitlabAnswering({
      status: "updated",
      components: ["project_id", "ref_type", "ref"],
    });
    const r = await resolveSubjectComponents(
      gitlab,
      DEFAULT_POLICY,
      { id: 1, pathWithNamespace: "g/p", ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref"] },
      { write: true },
    );
    expect(calls).toEqual([["project_id", "ref_type", "ref"]]);
    expect(r).toMatchObject({ ok: true, components: ["project_id", "ref_type", "ref"] });
    expect(r.ok && r.changes).toEqual([
      expect.objectContaining({ kind: "projectSetting", target: "ci_id_token_sub_claim_components" }),
    ]);
  });

  it("default policy, GitLab refuses: what GitLab mints (the project's layout, else GitLab's default), with a notice", async () => {
    const { gitlab } = gitlabAnswering(refused);
    const shown = await resolveSubjectComponents(
      gitlab,
      DEFAULT_POLICY,
      {
        id: 1,
        pathWithNamespace: "g/p",
        ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref", "deployment_tier"],
      },
      { write: true },
    );
    expect(shown).toMatchObject({
      ok: true,
      components: ["project_path", "ref_type", "ref", "deployment_tier"],
    });
    expect(shown.ok && shown.notice).toMatch(/did not accept `project_id, ref_type, ref`/);
    const hidden = await resolveSubjectComponents(
      gitlab,
      DEFAULT_POLICY,
      { id: 1, pathWithNamespace: "g/p" },
      { write: true },
    );
    expect(hidden).toMatchObject({ ok: true, components: ["project_path", "ref_type", "ref"] });
    // A layout the bot cannot build subjects for (a component it does not model) is refused rather than guessed.
    const odd = await resolveSubjectComponents(
      gitlab,
      DEFAULT_POLICY,
      {
        id: 1,
        pathWithNamespace: "g/p",
        ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref", "job_kind"],
      },
      { write: true },
    );
    expect(odd.ok).toBe(false);
  });

  it("explicit project_id, GitLab refuses: refused with Action needed, never weakened to path subjects", async () => {
    const { gitlab } = gitlabAnswering(refused);
    const r = await resolveSubjectComponents(
      gitlab,
      EXPLICIT_ID,
      { id: 7, pathWithNamespace: "g/p", ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref"] },
      { write: true },
    );
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(/\*\*Action needed\*\*.*PUT \/projects\/7/);
  });

  it("explicit project_path on GitLab's default: nothing to set", async () => {
    const { gitlab, calls } = gitlabAnswering(new Error("must not be called"));
    const r = await resolveSubjectComponents(
      gitlab,
      EXPLICIT_PATH,
      { id: 1, pathWithNamespace: "g/p" },
      { write: true },
    );
    expect(r).toMatchObject({ ok: true, components: ["project_path", "ref_type", "ref"] });
    expect(calls).toEqual([]);
  });

  it("plan mode writes nothing and predicts the layout last written, else the policy's", async () => {
    const { gitlab, calls } = gitlabAnswering(new Error("must not be called"));
    const live = {
      id: 1,
      pathWithNamespace: "g/p",
      ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref"],
    };
    expect(await resolveSubjectComponents(gitlab, DEFAULT_POLICY, live, { write: false })).toMatchObject({
      components: ["project_id", "ref_type", "ref"],
    });
    expect(
      await resolveSubjectComponents(gitlab, DEFAULT_POLICY, live, {
        write: false,
        recorded: { components: ["project_path", "ref_type", "ref"] },
      }),
    ).toMatchObject({ components: ["project_path", "ref_type", "ref"] });
    expect(calls).toEqual([]);
  });
});

describe("preflight policy warning", () => {
  it("warns about project_path subjects and not about the default", () => {
    expect(policyWarning(EXPLICIT_PATH)).toMatch(/starts with project_path/);
    expect(policyWarning(DEFAULT_POLICY)).toBeUndefined();
    expect(policyWarning(EXPLICIT_ID)).toBeUndefined();
  });
});

/**
 * One decision for both features: project_id-headed subjects by default (issue 11) and ref_protected where a
 * rule has a privileged environment (issue 13). GitLab's answer to each list decides, as the GitLab versions
 * would give it: "modern" takes all, 18.7..19.x ("legacy") wants project_path first but knows ref_protected,
 * 17.10..18.6 ("basic") knows neither.
 */
describe("the sub layout of a project whose rule binds protected refs", () => {
  const BINDING =
    "environments:\n  production:\n    refs: ['branch:main']\n  staging:\n    refs: ['branch:main']\n";
  const DEFAULT_BOUND = parsePolicy(BINDING);
  const EXPLICIT_ID_BOUND = parsePolicy(
    `gitlab:\n  subClaimComponents: [project_id, ref_type, ref]\n${BINDING}`,
  );
  const EXPLICIT_PATH_BOUND = parsePolicy(
    `gitlab:\n  subClaimComponents: [project_path, ref_type, ref]\n${BINDING}`,
  );
  const live = {
    id: 5,
    pathWithNamespace: "team/app",
    ciIdTokenSubClaimComponents: ["project_path", "ref_type", "ref"],
  };

  function gitlabVersion(kind: "modern" | "legacy" | "basic" | "forbidden") {
    const calls: string[][] = [];
    const gitlab: Pick<GitLabApi, "setSubClaimComponents"> = {
      async setSubClaimComponents(_id, components) {
        calls.push([...components]);
        if (kind === "forbidden")
          return { status: "unsupported", reason: "GitLab answered 403 Forbidden to PUT /projects/:id" };
        if (kind !== "modern" && components[0] !== "project_path")
          return { status: "unsupported", reason: "project_path must be the first element of the sub claim" };
        if (kind === "basic" && components.includes("ref_protected"))
          return { status: "unsupported", reason: "ref_protected is not an allowed sub claim component" };
        return { status: "updated", components: [...components] };
      },
    };
    return { gitlab, calls };
  }

  it("modern GitLab: project_id first, plus ref_protected, set in one write", async () => {
    const { gitlab, calls } = gitlabVersion("modern");
    const r = await resolveSubjectComponents(gitlab, DEFAULT_BOUND, live, { write: true });
    expect(r).toMatchObject({ ok: true, components: ["project_id", "ref_type", "ref", "ref_protected"] });
    expect(r.ok && r.unsupported).toBeUndefined();
    expect(calls).toEqual([["project_id", "ref_type", "ref", "ref_protected"]]);
  });

  it("GitLab 18.7..19.x, default policy: GitLab's path layout plus ref_protected, with the notice", async () => {
    const { gitlab, calls } = gitlabVersion("legacy");
    const r = await resolveSubjectComponents(gitlab, DEFAULT_BOUND, live, { write: true });
    expect(r).toMatchObject({ ok: true, components: ["project_path", "ref_type", "ref", "ref_protected"] });
    expect(r.ok && r.unsupported).toBeUndefined();
    expect(r.ok && r.notice).toMatch(/did not accept `project_id, ref_type, ref`/);
    expect(calls).toEqual([
      ["project_id", "ref_type", "ref", "ref_protected"],
      ["project_id", "ref_type", "ref"],
      ["project_path", "ref_type", "ref", "ref_protected"],
    ]);
  });

  it("GitLab 17.10..18.6, default policy: GitLab's path layout, ref_protected refused with GitLab's reason", async () => {
    const { gitlab } = gitlabVersion("basic");
    const r = await resolveSubjectComponents(gitlab, DEFAULT_BOUND, live, { write: true });
    expect(r).toMatchObject({ ok: true, components: ["project_path", "ref_type", "ref"] });
    expect(r.ok && r.unsupported).toMatch(/ref_protected is not an allowed sub claim component/);
  });

  it("explicit project_path on GitLab 17.10..18.6: the policy's components, ref_protected refused", async () => {
    const { gitlab, calls } = gitlabVersion("basic");
    const r = await resolveSubjectComponents(gitlab, EXPLICIT_PATH_BOUND, live, { write: true });
    expect(r).toMatchObject({ ok: true, components: ["project_path", "ref_type", "ref"] });
    expect(r.ok && r.unsupported).toMatch(/ref_protected is not an allowed sub claim component/);
    // The project already mints the policy's own components: only the one refused write.
    expect(calls).toEqual([["project_path", "ref_type", "ref", "ref_protected"]]);
  });

  it("explicit project_id on GitLab 18.7..19.x: refused with Action needed, never weakened", async () => {
    const { gitlab } = gitlabVersion("legacy");
    const r = await resolveSubjectComponents(gitlab, EXPLICIT_ID_BOUND, live, { write: true });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(/\*\*Action needed\*\*/);
    // A move that cannot wait re-subjects with the policy's components; privileged ones are refused.
    expect(!r.ok && r.fallback).toMatchObject({ components: ["project_id", "ref_type", "ref"] });
    expect(!r.ok && r.fallback.unsupported).toBeTruthy();
  });

  it("a bot below Maintainer: one refused write, GitLab's default layout, the reason kept", async () => {
    const { gitlab, calls } = gitlabVersion("forbidden");
    const r = await resolveSubjectComponents(
      gitlab,
      DEFAULT_BOUND,
      { id: 5, pathWithNamespace: "team/app" },
      { write: true },
    );
    expect(r).toMatchObject({ ok: true, components: ["project_path", "ref_type", "ref"] });
    expect(r.ok && r.unsupported).toMatch(/Maintainer role/);
    expect(calls).toHaveLength(1);
  });

  it("plans read the record while the bot still wants what it wanted, else predict the wanted layout", async () => {
    const { gitlab, calls } = gitlabVersion("modern");
    const recorded = {
      components: ["project_path", "ref_type", "ref"] as const,
      wanted: ["project_id", "ref_type", "ref", "ref_protected"] as const,
      unsupported: "ref_protected is not an allowed sub claim component",
    };
    const same = await resolveSubjectComponents(gitlab, DEFAULT_BOUND, live, {
      write: false,
      recorded: { ...recorded, components: [...recorded.components], wanted: [...recorded.wanted] },
    });
    expect(same).toMatchObject({
      components: ["project_path", "ref_type", "ref"],
      unsupported: recorded.unsupported,
    });
    // The policy changed (no privileged environment any more): the record no longer answers.
    const changed = await resolveSubjectComponents(gitlab, DEFAULT_POLICY, live, {
      write: false,
      recorded: { ...recorded, components: [...recorded.components], wanted: [...recorded.wanted] },
    });
    expect(changed).toMatchObject({ components: ["project_id", "ref_type", "ref"] });
    expect(changed.ok && changed.unsupported).toBeUndefined();
    expect(calls).toEqual([]);
  });
});
