import type { Policy } from "../config/policy.ts";
import { isGroupId } from "../policy/templates.ts";

/**
 * The Entra groups the bot manages memberships in: those some current policy rule names. Only there does the
 * bot remove its identities' memberships (when the identity's own rule does not list the group). A membership
 * in any other group, whoever added it, is reported as drift and left alone: removing it would need
 * GroupMember.ReadWrite.All on a group the platform team never handed to the bot, and the bot cannot tell a
 * deliberate grant from a stray one.
 *
 * A group the policy used to name and no longer does counts as unmanaged from that moment: its memberships are
 * reported, not removed. Removing a group from the policy is a decision for the platform team to finish by
 * hand (or by a future policy-diff rollout, issue 13), not something the bot infers from a missing line.
 */
export function managedGroups(policy: Policy): ReadonlySet<string> {
  const groups = new Set<string>();
  // Every rule's object ids; groups named by template count once resolved (the caller adds the ones it
  // resolved, and the memberships the bot made: memberships.ts).
  for (const envs of [policy.environments, ...policy.rules.map((r) => r.environments)]) {
    for (const env of Object.values(envs))
      for (const g of env.groups) if (isGroupId(g)) groups.add(g.toLowerCase());
  }
  return groups;
}
