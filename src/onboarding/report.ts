import type { GitLabApi, GitLabIssue, ProjectId } from "../gitlab/api.ts";
import type { SafeMarkdown } from "../gitlab/markdown-inert.ts";
import type { Change, EnvironmentOutcome } from "./types.ts";

/**
 * Writes the bot's results back into GitLab. Every function is idempotent (jobs are retried and replayed):
 * the bot finds its earlier issue/note by a hidden marker and edits it, and skips writes that would change
 * nothing. Each returns the Changes it made (none when everything was already as wanted).
 */

export const ONBOARDING_MARKER = "<!-- gitlab-entra-bot:onboarding -->";
export const STATUS_MARKER = "<!-- gitlab-entra-bot:status -->";
/** The status note answering internal commands: a separate note, itself internal (GitLab cannot flip a note). */
export const INTERNAL_STATUS_MARKER = "<!-- gitlab-entra-bot:status:internal -->";
export const MR_REPLY_MARKER = "<!-- gitlab-entra-bot:mr-reply -->";
export const ONBOARDING_ISSUE_TITLE = "Azure access for CI/CD (Entra workload identity federation)";

function withMarker(markdown: SafeMarkdown, marker: string): string {
  return `${markdown.trimEnd()}\n\n${marker}\n`;
}

/**
 * The bot's onboarding issue, if any: search by marker, then (search backends differ: GitLab.com may use
 * advanced search) fall back to listing the bot's own issues. The oldest wins, so a duplicate can never
 * take over.
 */
export async function findOnboardingIssue(
  gitlab: GitLabApi,
  projectId: ProjectId,
): Promise<GitLabIssue | null> {
  const me = await gitlab.currentUser();
  const mine = (issues: GitLabIssue[]) =>
    issues
      .filter((i) => i.authorId === me.id && i.description.includes(ONBOARDING_MARKER))
      .sort((a, b) => a.iid - b.iid)[0] ?? null;
  const searched = mine(
    await gitlab.findIssues(projectId, {
      search: "gitlab-entra-bot:onboarding",
      searchIn: "description",
      authorId: me.id,
      state: "all",
    }),
  );
  if (searched) return searched;
  return mine(await gitlab.findIssues(projectId, { authorId: me.id, state: "all" }));
}

export async function upsertOnboardingIssue(
  gitlab: GitLabApi,
  projectId: ProjectId,
  markdown: SafeMarkdown,
  /** confidential: a new issue is created confidential (the command that asked for it was internal). */
  opts: { title?: string; confidential?: boolean } = {},
): Promise<Change[]> {
  const description = withMarker(markdown, ONBOARDING_MARKER);
  const existing = await findOnboardingIssue(gitlab, projectId);
  if (existing) {
    if (existing.description === description) return [];
    const updated = await gitlab.editIssue(projectId, existing.iid, { description });
    return [
      {
        op: "update",
        kind: "issue",
        target: `issue #${updated.iid}`,
        objectId: String(updated.iid),
        detail: updated.webUrl,
      },
    ];
  }
  const created = await gitlab.createIssue(projectId, {
    title: opts.title ?? ONBOARDING_ISSUE_TITLE,
    description,
    ...(opts.confidential ? { confidential: true } : {}),
  });
  return [
    {
      op: "create",
      kind: "issue",
      target: `issue #${created.iid}`,
      objectId: String(created.iid),
      detail: created.webUrl,
    },
  ];
}

export interface ReplyInput {
  projectId: ProjectId;
  issueIid: number;
  /** The command's note, which gets the reaction. */
  noteId: number;
  body: SafeMarkdown;
  /** Answer with an internal note, kept apart from the public status note. */
  internal?: boolean;
  /** Emoji on the command note once the command is accepted; false for none. Default "thumbsup". */
  react?: "thumbsup" | "eyes" | false;
}

/**
 * One status note per issue and visibility, edited in place on re-runs; optionally reacts on the command note.
 * Internal commands are answered in an internal note of their own: editing the public status note would
 * publish internal detail, and GitLab cannot turn a note internal afterwards.
 */
export async function replyToCommand(gitlab: GitLabApi, input: ReplyInput): Promise<Change[]> {
  const me = await gitlab.currentUser();
  const internal = input.internal === true;
  const marker = internal ? INTERNAL_STATUS_MARKER : STATUS_MARKER;
  const body = withMarker(input.body, marker);
  const changes: Change[] = [];
  const notes = await gitlab.listIssueNotes(input.projectId, input.issueIid);
  const mine = notes.find(
    (n) =>
      n.authorId === me.id &&
      !n.system &&
      n.body.includes(marker) &&
      // A note's visibility is what GitLab says, not what its text says.
      (n.internal === true) === internal,
  );
  if (!mine) {
    const note = await gitlab.createIssueNote(
      input.projectId,
      input.issueIid,
      body,
      internal ? { internal: true } : {},
    );
    changes.push({
      op: "create",
      kind: "note",
      target: `${internal ? "internal " : ""}note on issue #${input.issueIid}`,
      objectId: String(note.id),
    });
  } else if (mine.body !== body) {
    await gitlab.editIssueNote(input.projectId, input.issueIid, mine.id, body);
    changes.push({
      op: "update",
      kind: "note",
      target: `note on issue #${input.issueIid}`,
      objectId: String(mine.id),
    });
  }
  const react = input.react ?? "thumbsup";
  if (react) {
    const result = await gitlab.awardEmojiOnNote(input.projectId, input.issueIid, input.noteId, react);
    if (result === "awarded") {
      changes.push({
        op: "add",
        kind: "note",
        target: `reaction on note ${input.noteId}`,
        objectId: String(input.noteId),
        detail: `:${react}:`,
      });
    }
  }
  return changes;
}

/** Environments whose identity exists and may be used by pipelines. */
function usable(
  outcomes: readonly EnvironmentOutcome[],
): (EnvironmentOutcome & { identity: NonNullable<EnvironmentOutcome["identity"]> })[] {
  return outcomes.filter(
    (o): o is EnvironmentOutcome & { identity: NonNullable<EnvironmentOutcome["identity"]> } =>
      o.identity !== undefined && (o.status === "changed" || o.status === "unchanged"),
  );
}

/**
 * AZURE_CLIENT_ID scoped to each environment (a job sees it only with a matching `environment:`), and
 * AZURE_TENANT_ID for all scopes. Client and tenant ids are not secrets: neither masked nor protected,
 * so refs the policy allows reach them whether or not they are protected branches.
 */
export async function setCiVariables(
  gitlab: GitLabApi,
  projectId: ProjectId,
  outcomes: readonly EnvironmentOutcome[],
  tenantId: string,
): Promise<Change[]> {
  const ready = usable(outcomes);
  if (ready.length === 0) return [];
  const wanted = [
    ...ready.map((o) => ({
      key: "AZURE_CLIENT_ID",
      value: o.identity.appId,
      environmentScope: o.environment,
    })),
    { key: "AZURE_TENANT_ID", value: tenantId, environmentScope: "*" },
  ];
  const changes: Change[] = [];
  for (const v of wanted) {
    const result = await gitlab.upsertVariable(projectId, {
      ...v,
      masked: false,
      protected: false,
      description: "Managed by gitlab-entra-bot",
    });
    if (result.op !== "unchanged") {
      changes.push({
        op: result.op === "created" ? "create" : "update",
        kind: "ciVariable",
        target: `${v.key} (${v.environmentScope})`,
        detail: v.value,
      });
    }
  }
  return changes;
}

/**
 * The answer to a command in a merge-request comment: commands run in issues only (the onboarding issue holds
 * the project's snippet), so the bot says where to go and does nothing else. One note per command note.
 */
export async function replyOnMergeRequest(
  gitlab: GitLabApi,
  input: { projectId: ProjectId; mergeRequestIid: number; body: SafeMarkdown; internal?: boolean },
): Promise<Change[]> {
  const body = withMarker(input.body, MR_REPLY_MARKER);
  const me = await gitlab.currentUser();
  const existing = await gitlab.listMergeRequestNotes(input.projectId, input.mergeRequestIid);
  if (
    existing.some(
      (n) => n.authorId === me.id && n.body === body && (n.internal === true) === !!input.internal,
    )
  )
    return [];
  const note = await gitlab.createMergeRequestNote(
    input.projectId,
    input.mergeRequestIid,
    body,
    input.internal ? { internal: true } : {},
  );
  return [
    {
      op: "create",
      kind: "note",
      target: `${input.internal ? "internal " : ""}note on merge request !${input.mergeRequestIid}`,
      objectId: String(note.id),
    },
  ];
}
