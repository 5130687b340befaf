import type { Policy } from "../config/policy.ts";
import { ACCESS_LEVELS, type AccessLevelName } from "../config/policy-schema.ts";
import type { GitLabApi } from "../gitlab/api.ts";
import { roleLabel } from "../gitlab/commands.ts";
import { code, join, md, plain, type SafeMarkdown, trusted } from "../gitlab/markdown-inert.ts";
import { allRules, defaultRule, environmentIn, projectRule } from "../policy/rules.ts";

/**
 * Who may run a slash command: a public project lets any signed-in user comment, so the commenter's
 * effective role (members/all: inherited and invited memberships count) must meet each named environment's
 * `minAccessLevel`. This runs before any Entra call; a refusal changes nothing.
 */

export type AuthorizeResult = { ok: true; accessLevel: number } | { ok: false; message: SafeMarkdown };

/** Role required when a command names no environment (status, help): reading the project's setup. */
export const MIN_LEVEL_WITHOUT_ENVIRONMENTS: AccessLevelName = "reporter";

const LEVEL_NAMES: Record<number, string> = {
  5: "Minimal Access",
  10: "Guest",
  15: "Planner",
  20: "Reporter",
  30: "Developer",
  40: "Maintainer",
  50: "Owner",
};

export function accessLevelName(level: number): string {
  return LEVEL_NAMES[level] ?? `access level ${level}`;
}

/**
 * The role needed to act on an environment the policy no longer has (offboarding an orphaned identity): the
 * strictest role any rule asks for, and never less than Maintainer.
 */
function strictestRole(policy: Policy): AccessLevelName {
  let name: AccessLevelName = "maintainer";
  for (const rule of allRules(policy)) {
    for (const env of rule.environments.values()) {
      if (ACCESS_LEVELS[env.minAccessLevel] > ACCESS_LEVELS[name]) name = env.minAccessLevel;
    }
  }
  return name;
}

export async function authorizeCommand(
  gitlab: GitLabApi,
  policy: Policy,
  projectId: number,
  userId: number,
  environments: readonly string[],
  opts: { removal?: boolean; projectPath?: string } = {},
): Promise<AuthorizeResult> {
  // Membership first: a stranger hears only that commands are for members, never anything about the
  // environments they typed (nor is their text repeated back to them).
  const level = await gitlab.memberAccessLevel(projectId, userId);
  if (level === null) {
    return {
      ok: false,
      message: trusted("Sorry, only members of this project can use `/entra` commands here."),
    };
  }
  // The rule that governs this project (the top-level default rule when no path is given).
  const rule = opts.projectPath === undefined ? defaultRule(policy) : projectRule(policy, opts.projectPath);
  const ruleFor = (env: string) => environmentIn(rule, env);
  const unknown = environments.filter((env) => !ruleFor(env));
  // Removing an identity whose rule was deleted must stay possible, but not for less than it took to create.
  if (unknown.length > 0 && !opts.removal) {
    const allowed = join([...rule.environments.keys()].map(code), ", ");
    return {
      ok: false,
      message: md`The platform policy has no rule for ${join(unknown.map(code), ", ")}, so the bot cannot set up Azure access for ${unknown.length === 1 ? trusted("it") : trusted("them")}. Environments the policy allows: ${allowed}. Ask your platform team to add a rule if you need one.`,
    };
  }

  // The strictest environment decides; the first one demanding that role is named in a refusal.
  let required: { name: AccessLevelName; env?: string } = { name: MIN_LEVEL_WITHOUT_ENVIRONMENTS };
  const perEnv = environments.map((env) => ({
    env,
    name: ruleFor(env)?.settings.minAccessLevel ?? strictestRole(policy),
  }));
  if (perEnv.length > 0) {
    const max = Math.max(...perEnv.map((e) => ACCESS_LEVELS[e.name]));
    required = perEnv.find((e) => ACCESS_LEVELS[e.name] === max) ?? required;
  }

  const needed = ACCESS_LEVELS[required.name];
  if (level < needed) {
    return {
      ok: false,
      message: md`Sorry, this needs the ${plain(roleLabel(required.name))} role or higher in this project${required.env ? md` (policy for ${code(required.env)})` : trusted("")}; your role is ${plain(accessLevelName(level))}. A project Maintainer can run the command instead.`,
    };
  }
  return { ok: true, accessLevel: level };
}
