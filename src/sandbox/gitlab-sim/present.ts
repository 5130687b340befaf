import {
  findUser,
  type SimAward,
  type SimEnvironment,
  type SimIssue,
  type SimMergeRequest,
  type SimNote,
  type SimProject,
  type SimState,
  type SimUser,
  type SimVariable,
} from "./state.ts";

/** JSON entities in GitLab's documented shapes (doc/api/*.md), trimmed to plausible fields. */

export function presentUser(baseUrl: string, user: SimUser | undefined, id: number) {
  const username = user?.username ?? `user${id}`;
  return {
    id,
    username,
    name: user?.name ?? username,
    state: "active",
    locked: false,
    avatar_url: `https://www.gravatar.com/avatar/${id}?s=80&d=identicon`,
    web_url: `${baseUrl}/${username}`,
  };
}

export function presentProject(baseUrl: string, p: SimProject, viewerLevel: number | null) {
  const slash = p.path.lastIndexOf("/");
  const namespacePath = slash >= 0 ? p.path.slice(0, slash) : p.path;
  const path = p.path.slice(slash + 1);
  const nsLeaf = namespacePath.slice(namespacePath.lastIndexOf("/") + 1);
  const body: Record<string, unknown> = {
    id: p.id,
    description: null,
    name: path,
    name_with_namespace: p.path.split("/").join(" / "),
    path,
    path_with_namespace: p.path,
    created_at: p.createdAt,
    default_branch: "main",
    ssh_url_to_repo: `git@${new URL(baseUrl).host}:${p.path}.git`,
    http_url_to_repo: `${baseUrl}/${p.path}.git`,
    web_url: `${baseUrl}/${p.path}`,
    visibility: p.visibility,
    namespace: {
      id: p.namespaceId,
      name: nsLeaf,
      path: nsLeaf,
      kind: "group",
      full_path: namespacePath,
      web_url: `${baseUrl}/groups/${namespacePath}`,
    },
    // doc/api/projects.md "Get a single project": null unless the project waits out its deletion delay.
    marked_for_deletion_at: p.markedForDeletionOn,
    marked_for_deletion_on: p.markedForDeletionOn,
  };
  // Like GitLab, CI settings are only shown to users who may change them; older versions lack the field.
  if (p.subClaimSupport !== "absent" && (viewerLevel ?? 0) >= 40) {
    body.ci_id_token_sub_claim_components = [...p.subClaimComponents];
  }
  return body;
}

export function presentMember(baseUrl: string, state: SimState, userId: number, level: number) {
  return {
    ...presentUser(baseUrl, findUser(state, userId), userId),
    access_level: level,
    created_at: "2024-01-01T00:00:00.000Z",
    expires_at: null,
    email: undefined,
    group_saml_identity: null,
  };
}

export function presentIssue(baseUrl: string, state: SimState, p: SimProject, i: SimIssue) {
  return {
    id: i.id,
    iid: i.iid,
    project_id: p.id,
    title: i.title,
    description: i.description,
    state: i.state,
    created_at: i.createdAt,
    updated_at: i.updatedAt,
    closed_at: null,
    closed_by: null,
    labels: [...i.labels],
    milestone: null,
    assignees: [],
    assignee: null,
    author: presentUser(baseUrl, findUser(state, i.authorId), i.authorId),
    type: "ISSUE",
    user_notes_count: i.notes.filter((n) => !n.system).length,
    confidential: i.confidential,
    discussion_locked: null,
    issue_type: "issue",
    web_url: `${baseUrl}/${p.path}/-/issues/${i.iid}`,
    references: { short: `#${i.iid}`, relative: `#${i.iid}`, full: `${p.path}#${i.iid}` },
  };
}

export function presentNote(baseUrl: string, state: SimState, p: SimProject, i: SimIssue, n: SimNote) {
  return {
    id: n.id,
    type: null,
    body: n.body,
    attachment: null,
    author: presentUser(baseUrl, findUser(state, n.authorId), n.authorId),
    created_at: n.createdAt,
    updated_at: n.updatedAt,
    system: n.system,
    noteable_id: i.id,
    noteable_type: "Issue",
    project_id: p.id,
    noteable_iid: i.iid,
    resolvable: false,
    confidential: n.internal,
    internal: n.internal,
    imported: false,
    imported_from: "none",
  };
}

export function presentAward(baseUrl: string, state: SimState, n: SimNote, a: SimAward) {
  return {
    id: a.id,
    name: a.name,
    user: presentUser(baseUrl, findUser(state, a.userId), a.userId),
    created_at: a.createdAt,
    updated_at: a.createdAt,
    awardable_id: n.id,
    awardable_type: "Note",
  };
}

export function presentVariable(v: SimVariable) {
  return {
    variable_type: v.variableType,
    key: v.key,
    value: v.value,
    protected: v.protected,
    masked: v.masked,
    hidden: false,
    raw: v.raw,
    environment_scope: v.environmentScope,
    description: v.description,
  };
}

export function presentEnvironment(e: SimEnvironment) {
  return {
    id: e.id,
    name: e.name,
    slug: e.slug,
    external_url: e.externalUrl,
    state: e.state,
    tier: e.tier,
    created_at: e.createdAt,
    updated_at: e.updatedAt,
    auto_stop_at: null,
  };
}

export function presentMergeRequestNote(
  baseUrl: string,
  state: SimState,
  p: SimProject,
  m: SimMergeRequest,
  n: SimNote,
) {
  return {
    id: n.id,
    type: null,
    body: n.body,
    attachment: null,
    author: presentUser(baseUrl, findUser(state, n.authorId), n.authorId),
    created_at: n.createdAt,
    updated_at: n.updatedAt,
    system: n.system,
    noteable_id: m.id,
    noteable_type: "MergeRequest",
    project_id: p.id,
    noteable_iid: m.iid,
    resolvable: false,
    confidential: n.internal,
    internal: n.internal,
    imported: false,
    imported_from: "none",
  };
}
