import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { GitLabApi } from "../gitlab/api.ts";

/**
 * Approvals for privileged environments. A person with the environment's role asks (`/entra onboard
 * production`); one of the policy's approvers consents (`/entra approve production`). Whichever comes
 * second triggers the onboarding. Both are bound to one project and one environment, valid for a bounded
 * time, and used once (GETDEL), so an approval cannot be replayed for a later onboarding.
 */

const personSchema = z.object({ id: z.number().int(), username: z.string() });
const approvalSchema = z.object({
  projectId: z.number().int(),
  environment: z.string(),
  approver: personSchema,
  /** How the approver qualified: "user alice" or "group payments/leads". */
  via: z.string(),
  noteId: z.number().int(),
  validUntil: z.number(),
  /**
   * What the approver consented to: the policy's grant for the project's path then (policy/grants.ts). A
   * project moved since (another rule, other template groups) no longer matches it, so the approval is void.
   */
  grant: z.string().optional(),
});
const requestSchema = z.object({
  projectId: z.number().int(),
  environment: z.string(),
  requester: personSchema,
  issueIid: z.number().int(),
  noteId: z.number().int(),
  validUntil: z.number(),
});
export type Approval = z.infer<typeof approvalSchema>;
export type ApprovalRequest = z.infer<typeof requestSchema>;

const envHash = (env: string) => createHash("sha256").update(env, "utf8").digest("hex").slice(0, 32);

export class ApprovalStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #now: () => number;

  constructor(redis: Redis, keyPrefix: string, now: () => number = Date.now) {
    this.#redis = redis;
    this.#prefix = keyPrefix;
    this.#now = now;
  }

  #key(kind: "approval" | "request", projectId: number, environment: string): string {
    return `${this.#prefix}:${kind}:${projectId}:${envHash(environment)}`;
  }

  async #put(kind: "approval" | "request", rec: Approval | ApprovalRequest): Promise<void> {
    const ttl = Math.max(1, Math.ceil(rec.validUntil - this.#now()));
    await this.#redis.set(this.#key(kind, rec.projectId, rec.environment), JSON.stringify(rec), "PX", ttl);
  }

  async #take<S extends z.ZodType<Approval | ApprovalRequest>>(
    kind: "approval" | "request",
    schema: S,
    projectId: number,
    environment: string,
  ): Promise<z.infer<S> | undefined> {
    const raw = await this.#redis.getdel(this.#key(kind, projectId, environment));
    if (!raw) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return undefined;
    }
    const rec = schema.safeParse(parsed);
    if (!rec.success) return undefined;
    // The record names its own scope: a key collision or a planted value cannot move it elsewhere.
    if (rec.data.projectId !== projectId || rec.data.environment !== environment) return undefined;
    return rec.data.validUntil > this.#now() ? rec.data : undefined;
  }

  recordApproval(rec: Approval): Promise<void> {
    return this.#put("approval", approvalSchema.parse(rec));
  }

  recordRequest(rec: ApprovalRequest): Promise<void> {
    return this.#put("request", requestSchema.parse(rec));
  }

  /**
   * The valid approval for this project and environment, removed so it serves one onboarding only. With
   * `grant`, an approval given for another grant (the project has moved to another rule since) is void.
   */
  async takeApproval(projectId: number, environment: string, grant?: string): Promise<Approval | undefined> {
    const approval = await this.#take("approval", approvalSchema, projectId, environment);
    if (approval && grant !== undefined && approval.grant !== grant) return undefined;
    return approval;
  }

  takeRequest(projectId: number, environment: string): Promise<ApprovalRequest | undefined> {
    return this.#take("request", requestSchema, projectId, environment);
  }
}

/**
 * Lowest access level that makes a member of an approvers group an approver: Developer, as in GitLab's own
 * eligible approvers of a group (inherited members included, Developer or higher: gitlab-org/gitlab!92659).
 * Membership is inherited by every subgroup, so anything lower would let a Guest or Reporter of the parent
 * group (a contractor reading issues) approve production for the whole team.
 */
const MIN_GROUP_LEVEL = 30;

/**
 * Whether the user is one of the approvers: a username (compared with the user's current username, re-read
 * from GitLab, case-insensitively as GitLab does) or a group path whose effective members include the user.
 * GitLab usernames and top-level group paths share one namespace, so a one-segment entry that is not the
 * user's own name is asked as a group.
 */
export async function approverMatch(
  gitlab: Pick<GitLabApi, "getUser" | "groupMemberAccessLevel">,
  approvers: readonly string[],
  userId: number,
): Promise<{ ok: true; via: string; username: string } | { ok: false; username?: string }> {
  const user = await gitlab.getUser(userId);
  if (!user) return { ok: false };
  const username = user.username.toLowerCase();
  for (const entry of approvers) {
    const name = entry.replace(/^@/, "");
    if (!name.includes("/") && name.toLowerCase() === username) {
      return { ok: true, via: `user ${name}`, username: user.username };
    }
  }
  for (const entry of approvers) {
    const name = entry.replace(/^@/, "");
    if (!name.includes("/") && name.toLowerCase() === username) continue;
    const level = await gitlab.groupMemberAccessLevel(name, userId);
    if (level !== null && level >= MIN_GROUP_LEVEL) {
      return { ok: true, via: `group ${name}`, username: user.username };
    }
  }
  return { ok: false, username: user.username };
}
