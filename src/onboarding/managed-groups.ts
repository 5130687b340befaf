import type { Policy } from "../config/policy.ts";
import { isGroupId } from "../policy/templates.ts";

/**
 * The Entra groups the bot manages memberships in: those some current policy rule names. Only there does the
 * bot remove its identities' memberships (when the identity's own rule does not list the group). A membership
 * in any other group, whoever added it, is reported as drift and left alone: removing it would need
 * GroupMember.ReadWrite.All on a group the platform team never handed to the bot, and the bot cannot tell a
 * deliberate grant from a stray one.
 *
 * A group the policy used to name and no longer does still counts for the identities the bot itself put there
 * (memberships.ts records them): after a rule drops a group, drift repair removes those memberships, and
 * `npm run policy -- diff` shows it beforehand. Memberships in it that the bot did not make are reported.
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
