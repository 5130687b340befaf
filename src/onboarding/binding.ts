import type { Redis } from "ioredis";
import { z } from "zod";
import type { Policy } from "../config/policy.ts";
import { SUB_CLAIM_HEADS, SUB_CLAIM_TAILS, type SubClaimComponent } from "../config/policy-schema.ts";
import type { GitLabApi } from "../gitlab/api.ts";
import type { ProjectRef } from "../gitlab/intents.ts";
import { desiredComponents, type ProjectBinding } from "../policy/protection.ts";
import { projectRule } from "../policy/rules.ts";
import type { Mode } from "./reconciler.ts";

/**
 * Establishes what GitLab puts in a project's `sub` before its credentials are planned: the components the
 * project's rule asks for (protection.ts), set with PUT /projects/:id and feature-detected (GitLab before
 * 18.7 refuses ref_protected; before 17.10 ignores the setting; a bot below Maintainer gets 403). The answer
 * is remembered per project, so plans (status, drift, `policy diff`) know it without writing to GitLab.
 */

export type BindingSource = (project: ProjectRef, mode: Mode) => Promise<ProjectBinding>;

const component = z.enum([...SUB_CLAIM_HEADS, ...SUB_CLAIM_TAILS]);
const recordSchema = z.object({
  /** What the rule asked for when GitLab was last asked. */
  desired: z.array(component),
  /** What GitLab uses now, as far as the bot established it. */
  components: z.array(component),
  unsupported: z.string().optional(),
  at: z.string(),
});
type BindingRecord = z.infer<typeof recordSchema>;

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);
/** Remembered for a month after the last onboarding; a lost record only costs one GitLab read. */
const TTL_SECONDS = 30 * 24 * 3600;

export function bindingKey(prefix: string, projectId: number): string {
  return `${prefix}:sub-claims:${projectId}`;
}

export async function readBinding(redis: Redis, prefix: string, projectId: number) {
  const raw = await redis.get(bindingKey(prefix, projectId));
  if (!raw) return undefined;
  try {
    const parsed = recordSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function createBindingSource(deps: {
  policy: Policy;
  gitlab: Pick<GitLabApi, "setSubClaimComponents">;
  redis: Redis;
  keyPrefix: string;
  log?: (line: string) => void;
}): BindingSource {
  const { policy, gitlab, redis, keyPrefix } = deps;
  const base = [...policy.gitlab.subClaimComponents];
  return async (project, mode) => {
    const desired = desiredComponents(policy, projectRule(policy, project.path));
    const known = await readBinding(redis, keyPrefix, project.id);
    if (mode === "plan") {
      if (known && same(known.desired, desired)) {
        return {
          components: known.components,
          ...(known.unsupported ? { unsupported: known.unsupported } : {}),
        };
      }
      // Nothing set yet and nothing to set: GitLab's (and the policy's) components, as before binding existed.
      if (!known && same(desired, base)) return { components: desired };
      return { components: desired, planned: true };
    }
    // The policy's components with no binding and nothing set by the bot: leave GitLab alone (the report
    // job sets project_id subjects, as it always did).
    if (!known && same(desired, base)) return { components: desired };
    const r = await gitlab.setSubClaimComponents(project.id, desired);
    let record: BindingRecord;
    if (r.status === "unsupported") {
      // GitLab keeps minting what it minted: the policy's components unless an earlier run set others.
      const current: SubClaimComponent[] = known && !known.unsupported ? known.components : base;
      record = { desired, components: current, unsupported: r.reason, at: new Date().toISOString() };
      deps.log?.(`sub-claim components [${desired.join(", ")}] not set: ${r.reason}`);
    } else {
      record = { desired, components: desired, at: new Date().toISOString() };
      if (r.status === "updated") deps.log?.(`sub-claim components set to [${desired.join(", ")}]`);
    }
    await redis.set(bindingKey(keyPrefix, project.id), JSON.stringify(record), "EX", TTL_SECONDS);
    return {
      components: record.components,
      ...(record.unsupported ? { unsupported: record.unsupported } : {}),
    };
  };
}
