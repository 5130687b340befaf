import type { AuditRecord } from "../../src/onboarding/audit.ts";
import type { Delivery } from "../../src/sandbox/gitlab-driver.ts";
import type { SimIssue, SimNote } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";

/** Shared reading helpers for end-to-end tests on the sandbox stack (they inspect the simulators' state). */

export const AUD = "api://AzureADTokenExchange";
export const STATUS_MARKER = "gitlab-entra-bot:status";
export const ONBOARDING_MARKER = "gitlab-entra-bot:onboarding";

/** Owned by the bot's service principal alone: tags anyone can copy, ownership only the bot has. */
const botOwned = (stack: SandboxStack, a: { owners: string[] }) =>
  a.owners.length === 1 && a.owners[0] === stack.entra.botServicePrincipalId;

/** The bot's app registration for (project, environment): the bot-owned app carrying its tags. */
export function appFor(stack: SandboxStack, projectId: number, env: string) {
  return [...stack.entra.state.applications.values()].find(
    (a) =>
      botOwned(stack, a) &&
      a.tags.includes(`gitlab-project:${projectId}`) &&
      a.tags.includes(`gitlab-env:${env}`),
  );
}

export function appsOf(stack: SandboxStack, projectId: number) {
  return [...stack.entra.state.applications.values()].filter(
    (a) => botOwned(stack, a) && a.tags.includes(`gitlab-project:${projectId}`),
  );
}

export function subjectsOf(stack: SandboxStack, projectId: number, env: string): string[] {
  return [...(appFor(stack, projectId, env)?.fics.values() ?? [])].map((f) => String(f.subject)).sort();
}

/** A pipeline of the project (as GitLab sees it now) logs in with its ID token for `ref`. */
export async function exchange(
  stack: SandboxStack,
  projectId: number,
  env: string,
  ref: string,
  clientId?: string,
) {
  const appId = clientId ?? appFor(stack, projectId, env)?.appId;
  if (!appId) throw new Error(`no app for ${projectId}/${env}`);
  const assertion = await stack.gitlab.mintIdToken({ projectId, ref, refType: "branch", audience: AUD });
  return stack.entra.exchange({ clientId: appId, assertion });
}

export function onboardingIssues(stack: SandboxStack, projectId: number): SimIssue[] {
  return (stack.gitlab.project(projectId)?.issues ?? []).filter((i) =>
    i.description.includes(ONBOARDING_MARKER),
  );
}

export function issueOf(stack: SandboxStack, projectId: number, iid: number): SimIssue {
  const issue = stack.gitlab.project(projectId)?.issues.find((i) => i.iid === iid);
  if (!issue) throw new Error(`no issue #${iid} in project ${projectId}`);
  return issue;
}

/** Notes the bot wrote in an issue. */
export function botNotes(stack: SandboxStack, projectId: number, iid: number): SimNote[] {
  return issueOf(stack, projectId, iid).notes.filter((n) => n.authorId === stack.gitlab.botUser.id);
}

/** The bot's status note in an issue (there must be at most one). */
export function statusNotes(stack: SandboxStack, projectId: number, iid: number): SimNote[] {
  return botNotes(stack, projectId, iid).filter((n) => n.body.includes(STATUS_MARKER));
}

/** An issue a person opened (GitLab's side only: opening an issue sends nothing the bot acts on). */
export function openIssue(
  stack: SandboxStack,
  projectId: number,
  authorId: number,
  title: string,
  opts: { confidential?: boolean } = {},
): SimIssue {
  const project = stack.gitlab.project(projectId);
  if (!project) throw new Error(`no project ${projectId}`);
  const created = new Date().toISOString();
  const issue: SimIssue = {
    id: ++stack.gitlab.state.seq.issue,
    iid: Math.max(0, ...project.issues.map((i) => i.iid)) + 1,
    projectId,
    title,
    description: "",
    state: "opened",
    labels: [],
    authorId,
    confidential: opts.confidential ?? false,
    createdAt: created,
    updatedAt: created,
    notes: [],
  };
  project.issues.push(issue);
  return issue;
}

/** GitLab (16.11+) sends a Note Hook with action "update" when a comment is edited. */
export async function editComment(
  stack: SandboxStack,
  projectId: number,
  iid: number,
  noteId: number,
  text: string,
): Promise<Delivery> {
  const project = stack.gitlab.project(projectId);
  const issue = issueOf(stack, projectId, iid);
  const note = issue.notes.find((n) => n.id === noteId);
  const user = stack.gitlab.state.users.find((u) => u.id === note?.authorId);
  if (!project || !note || !user) throw new Error("no such note");
  note.body = text;
  note.updatedAt = new Date().toISOString();
  return stack.driver.send("Note Hook", {
    object_kind: "note",
    event_type: "note",
    user: { id: user.id, name: user.name, username: user.username, avatar_url: null },
    project_id: project.id,
    project: { id: project.id, name: project.path.split("/").pop(), path_with_namespace: project.path },
    object_attributes: {
      id: note.id,
      note: text,
      noteable_type: "Issue",
      author_id: user.id,
      created_at: note.createdAt,
      updated_at: note.updatedAt,
      project_id: project.id,
      noteable_id: issue.id,
      system: false,
      action: "update",
    },
    issue: { id: issue.id, iid: issue.iid, title: issue.title, confidential: issue.confidential },
  });
}

/** Graph requests other than the bot's own token requests. */
export function graphCalls(stack: SandboxStack): number {
  return stack.entra.stats.requests.filter((r) => r.kind !== "login").length;
}

/** The service principal of the bot's app for (project, environment). */
export function spFor(stack: SandboxStack, projectId: number, env: string) {
  const app = appFor(stack, projectId, env);
  return [...stack.entra.state.servicePrincipals.values()].find((s) => s.appId === app?.appId);
}

/**
 * A retired identity, as the Entra simulator holds it: the app registration and its principal still exist
 * (the audit trail), with no federated credential, the principal disabled, in no group, tagged retired.
 */
export function retiredState(stack: SandboxStack, projectId: number, env: string) {
  const app = appFor(stack, projectId, env);
  const sp = spFor(stack, projectId, env);
  const groups = [...stack.entra.state.groups.values()].filter((g) => (sp ? g.members.has(sp.id) : false));
  return {
    exists: Boolean(app && sp),
    fics: app?.fics.length ?? -1,
    accountEnabled: sp?.accountEnabled,
    groups: groups.length,
    retiredTag: app?.tags.includes("gitlab-retired") ?? false,
  };
}

export const RETIRED = { exists: true, fics: 0, accountEnabled: false, groups: 0, retiredTag: true } as const;

/** Entra's AADSTS code in a token-endpoint error body. */
export function aadsts(body: unknown): number | undefined {
  return (body as { error_codes?: number[] } | undefined)?.error_codes?.[0];
}

/**
 * Everything in the Entra simulator that decides who can log in and with which rights, in a stable order:
 * apps (name, tags, federated credentials), service principals (enabled or not), group members. Two equal
 * snapshots mean no identity, credential or membership changed.
 */
export function entraSnapshot(stack: SandboxStack): string {
  const { applications, servicePrincipals, groups } = stack.entra.state;
  return JSON.stringify({
    apps: [...applications.values()]
      .map((a) => ({
        id: a.id,
        displayName: a.displayName,
        tags: [...a.tags].sort(),
        fics: a.fics
          .map((f) => ({ name: f.name, issuer: f.issuer, subject: f.subject, audiences: f.audiences }))
          .sort((x, y) => x.name.localeCompare(y.name)),
      }))
      .sort((x, y) => x.id.localeCompare(y.id)),
    sps: [...servicePrincipals.values()]
      .map((s) => ({ id: s.id, appId: s.appId, accountEnabled: s.accountEnabled, tags: [...s.tags].sort() }))
      .sort((x, y) => x.id.localeCompare(y.id)),
    groups: [...groups.values()].map((g) => ({ id: g.id, members: [...g.members].sort() })),
  });
}

/** The audit trail of one project, as an operator reads it (GET /admin/audit). */
export async function auditOf(stack: SandboxStack, projectId: number): Promise<AuditRecord[]> {
  const res = await fetch(`${stack.service.url}/admin/audit?project=${projectId}&limit=500`, {
    headers: { Authorization: `Bearer ${stack.secrets.adminToken}` },
  });
  if (res.status !== 200) throw new Error(`GET /admin/audit answered ${res.status}`);
  return ((await res.json()) as { records: AuditRecord[] }).records;
}

/** One sample of a Prometheus series from GET /metrics; 0 when the series does not exist yet. */
export async function metricValue(
  stack: SandboxStack,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await (await fetch(`${stack.service.url}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const [series, value] = line.split(/\s+/);
    if (want.every((l) => series?.includes(l))) return Number(value);
  }
  return 0;
}
