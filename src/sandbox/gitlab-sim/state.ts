/**
 * In-memory data of the GitLab simulator. Plain objects so tests can inspect them directly and
 * GET /_sim/state can serialise them.
 */

export interface SimUser {
  id: number;
  username: string;
  name: string;
  /** A PRIVATE-TOKEN that authenticates as this user. */
  token?: string;
}

/**
 * How this project's GitLab handles `ci_id_token_sub_claim_components`:
 * - "modern": accepts project_id or project_path as the first element (the newest GitLab);
 * - "legacy": 18.7..19.x, refuses anything but project_path first (400, exact body of MR 182257);
 * - "basic": 17.10..18.6, also refuses the 18.7 components (ref_protected, environment_protected,
 *   deployment_tier) with "<x> is not an allowed sub claim component";
 * - "absent": older than 17.10: the attribute is not shown and silently ignored on PUT.
 */
export type SubClaimSupport = "modern" | "legacy" | "basic" | "absent";

/** A GitLab group (for approvers given as group paths): members/all also lists ancestors' members. */
export interface SimGroup {
  id: number;
  /** Full path, e.g. "payments/leads". */
  path: string;
  members: SimMember[];
}

export interface SimMember {
  userId: number;
  accessLevel: number;
  /** Inherited from a group: visible through /members/all only. */
  inherited: boolean;
}

export interface SimAward {
  id: number;
  name: string;
  userId: number;
  createdAt: string;
}

export interface SimNote {
  id: number;
  body: string;
  authorId: number;
  system: boolean;
  internal: boolean;
  createdAt: string;
  updatedAt: string;
  awards: SimAward[];
}

export interface SimIssue {
  id: number;
  iid: number;
  projectId: number;
  title: string;
  description: string;
  state: "opened" | "closed";
  labels: string[];
  authorId: number;
  confidential: boolean;
  createdAt: string;
  updatedAt: string;
  notes: SimNote[];
}

/** Just enough of a merge request to hold comments. */
export interface SimMergeRequest {
  id: number;
  iid: number;
  title: string;
  authorId: number;
  notes: SimNote[];
}

export interface SimVariable {
  key: string;
  value: string;
  environmentScope: string;
  masked: boolean;
  protected: boolean;
  raw: boolean;
  variableType: "env_var" | "file";
  description: string | null;
}

export interface SimEnvironment {
  id: number;
  name: string;
  slug: string;
  tier: string;
  state: "available" | "stopping" | "stopped";
  externalUrl: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface SimProject {
  id: number;
  /** path_with_namespace. */
  path: string;
  namespaceId: number;
  visibility: "private" | "internal" | "public";
  subClaimSupport: SubClaimSupport;
  subClaimComponents: string[];
  members: SimMember[];
  issues: SimIssue[];
  mergeRequests: SimMergeRequest[];
  variables: SimVariable[];
  environments: SimEnvironment[];
  createdAt: string;
  /** Earlier paths (renames), newest last. GitLab keeps redirects from them until a path is taken again. */
  previousPaths: string[];
  /** Set when the project is marked for deletion (GitLab's `marked_for_deletion_at`/`_on`, a date). */
  markedForDeletionOn: string | null;
}

export interface SimState {
  users: SimUser[];
  projects: SimProject[];
  groups: SimGroup[];
  /** Global id sequences, like GitLab's database ids. */
  seq: {
    project: number;
    issue: number;
    note: number;
    award: number;
    environment: number;
    namespace: number;
  };
}

export const DEFAULT_SUB_CLAIM = ["project_path", "ref_type", "ref"];

export function createState(): SimState {
  return {
    users: [],
    projects: [],
    groups: [],
    seq: { project: 100, issue: 5000, note: 9000, award: 700, environment: 300, namespace: 60 },
  };
}

export function now(): string {
  return new Date().toISOString();
}

export function findProject(state: SimState, idOrPath: string): SimProject | undefined {
  if (/^\d+$/.test(idOrPath)) return state.projects.find((p) => p.id === Number(idOrPath));
  return state.projects.find((p) => p.path === idOrPath);
}

/**
 * How the REST API resolves `:id` (lib/api/helpers.rb `find_project`): a number is the project id; a path is
 * looked up with `find_by_full_path(id, follow_redirects: true)`: case-insensitively among current paths
 * first, then among the redirect routes renames leave behind (the newest rename wins).
 */
export function resolveProject(state: SimState, idOrPath: string): SimProject | undefined {
  if (/^-?\d+$/.test(idOrPath)) return state.projects.find((p) => p.id === Number(idOrPath));
  if (!idOrPath.includes("/")) return undefined;
  const wanted = idOrPath.toLowerCase();
  const current = state.projects.find((p) => p.path.toLowerCase() === wanted);
  if (current) return current;
  let best: { project: SimProject; at: number } | undefined;
  for (const p of state.projects) {
    const at = p.previousPaths.map((x) => x.toLowerCase()).lastIndexOf(wanted);
    if (at >= 0 && (!best || at > best.at)) best = { project: p, at };
  }
  return best?.project;
}

export function findUser(state: SimState, id: number): SimUser | undefined {
  return state.users.find((u) => u.id === id);
}

export function memberLevel(project: SimProject, userId: number, includeInherited: boolean): number | null {
  const levels = project.members
    .filter((m) => m.userId === userId && (includeInherited || !m.inherited))
    .map((m) => m.accessLevel);
  return levels.length ? Math.max(...levels) : null;
}

/** Effective level in a group: its own members and those of every ancestor group (GitLab inheritance). */
export function groupMemberLevel(state: SimState, groupPath: string, userId: number): number | null {
  const group = state.groups.find((g) => g.path.toLowerCase() === groupPath.toLowerCase());
  if (!group) return null;
  const chain = state.groups.filter(
    (g) =>
      group.path.toLowerCase() === g.path.toLowerCase() ||
      group.path.toLowerCase().startsWith(`${g.path.toLowerCase()}/`),
  );
  const levels = chain.flatMap((g) => g.members.filter((m) => m.userId === userId).map((m) => m.accessLevel));
  return levels.length ? Math.max(...levels) : null;
}

export function slugify(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 24);
}

/** GitLab derives a default tier from the environment name (environment.rb `guess_tier`). */
export function guessTier(name: string): string {
  if (/^(production|prod|prd|live)/i.test(name)) return "production";
  if (/^(staging|stage|stg|model|pre)/i.test(name)) return "staging";
  if (/^(test|tst|int|ac(ce|)pt|qa|qc|control|quality)/i.test(name)) return "testing";
  if (/^(dev|review|trunk)/i.test(name)) return "development";
  return "other";
}

export interface NewProjectInput {
  id?: number;
  path: string;
  visibility?: SimProject["visibility"];
  subClaimSupport?: SubClaimSupport;
  subClaimComponents?: string[];
  /** userId -> access level (direct membership). */
  members?: Record<number, number>;
  /** userId -> access level (inherited from a group). */
  inheritedMembers?: Record<number, number>;
  environments?: (string | { name: string; tier?: string })[];
}

export function addProject(
  state: SimState,
  input: NewProjectInput,
  defaults: { subClaimSupport: SubClaimSupport },
) {
  const id = input.id ?? state.seq.project + 1;
  if (state.projects.some((p) => p.id === id)) throw new Error(`project ${id} already exists`);
  if (state.projects.some((p) => p.path.toLowerCase() === input.path.toLowerCase()))
    throw new Error(`project path ${input.path} is taken`);
  const project = newProject(state, { ...input, id }, defaults);
  state.projects.push(project);
  return project;
}

/**
 * Many projects at once (benchmarks seed 10,000): the same checks as addProject against indexes built once,
 * instead of a scan of every project per project.
 */
export function addProjects(
  state: SimState,
  inputs: readonly NewProjectInput[],
  defaults: { subClaimSupport: SubClaimSupport },
): SimProject[] {
  const ids = new Set(state.projects.map((p) => p.id));
  const paths = new Set(state.projects.map((p) => p.path.toLowerCase()));
  const added: SimProject[] = [];
  for (const input of inputs) {
    const id = input.id ?? state.seq.project + 1;
    if (ids.has(id)) throw new Error(`project ${id} already exists`);
    if (paths.has(input.path.toLowerCase())) throw new Error(`project path ${input.path} is taken`);
    const project = newProject(state, { ...input, id }, defaults);
    ids.add(id);
    paths.add(project.path.toLowerCase());
    state.projects.push(project);
    added.push(project);
  }
  return added;
}

function newProject(
  state: SimState,
  input: NewProjectInput & { id: number },
  defaults: { subClaimSupport: SubClaimSupport },
): SimProject {
  const id = input.id;
  state.seq.project = Math.max(state.seq.project, id);
  const created = now();
  const project: SimProject = {
    id,
    path: input.path,
    namespaceId: ++state.seq.namespace,
    visibility: input.visibility ?? "private",
    subClaimSupport: input.subClaimSupport ?? defaults.subClaimSupport,
    subClaimComponents: input.subClaimComponents ?? [...DEFAULT_SUB_CLAIM],
    members: [],
    issues: [],
    mergeRequests: [],
    variables: [],
    environments: [],
    createdAt: created,
    previousPaths: [],
    markedForDeletionOn: null,
  };
  for (const [user, level] of Object.entries(input.members ?? {}))
    project.members.push({ userId: Number(user), accessLevel: level, inherited: false });
  for (const [user, level] of Object.entries(input.inheritedMembers ?? {}))
    project.members.push({ userId: Number(user), accessLevel: level, inherited: true });
  for (const env of input.environments ?? []) addEnvironment(state, project, env);
  return project;
}

export function addEnvironment(
  state: SimState,
  project: SimProject,
  env: string | { name: string; tier?: string },
): SimEnvironment {
  const name = typeof env === "string" ? env : env.name;
  const existing = project.environments.find((e) => e.name === name);
  if (existing) return existing;
  const created = now();
  const environment: SimEnvironment = {
    id: ++state.seq.environment,
    name,
    slug: `${slugify(name)}-${(state.seq.environment * 7919).toString(36).slice(-6)}`,
    tier: (typeof env === "string" ? undefined : env.tier) ?? guessTier(name),
    state: "available",
    externalUrl: null,
    createdAt: created,
    updatedAt: created,
  };
  project.environments.push(environment);
  return environment;
}

/**
 * A deployment to an environment: GitLab creates the environment on first deployment, and a deployment to a
 * stopped one makes it available again (doc/ci/environments: "a stopped environment is started again by a
 * new deployment").
 */
export function deployToEnvironment(
  state: SimState,
  project: SimProject,
  env: string | { name: string; tier?: string },
): SimEnvironment {
  const environment = addEnvironment(state, project, env);
  if (environment.state !== "available") {
    environment.state = "available";
    environment.updatedAt = now();
  }
  return environment;
}

/**
 * `POST /projects/:id/environments/:environment_id/stop` (doc/api/environments.md): the environment is
 * `stopped` (the sim runs no on_stop job, so it never stays `stopping`). Stopping a stopped one changes nothing.
 */
export function stopEnvironment(environment: SimEnvironment): SimEnvironment {
  if (environment.state !== "stopped") {
    environment.state = "stopped";
    environment.updatedAt = now();
  }
  return environment;
}

/**
 * `DELETE /projects/:id/environments/:environment_id`: GitLab deletes only a stopped environment (its policy
 * grants destroy_environment on stopped environments; an available one answers 403). Gone from every list.
 */
export function deleteEnvironment(
  project: SimProject,
  environment: SimEnvironment,
): "deleted" | "not-stopped" {
  if (environment.state !== "stopped") return "not-stopped";
  project.environments = project.environments.filter((e) => e !== environment);
  return "deleted";
}

export function setMember(project: SimProject, userId: number, accessLevel: number, inherited = false): void {
  project.members = project.members.filter((m) => !(m.userId === userId && m.inherited === inherited));
  project.members.push({ userId, accessLevel, inherited });
}
