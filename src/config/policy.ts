import { readFileSync } from "node:fs";
import picomatch from "picomatch";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { type EnvironmentPolicy, type Policy, policySchema } from "./policy-schema.ts";
import { ConfigError, problemsFromZod } from "./problems.ts";

export type { EnvironmentPolicy, Policy } from "./policy-schema.ts";

/** Parses policy YAML text; throws ConfigError listing every problem with its path. */
export function parsePolicy(text: string, source = "policy"): Policy {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : "";
    throw new ConfigError([
      {
        name: source,
        problem: `is not valid YAML${where}: ${(err as Error).message.split("\n")[0]}`,
        example: "see policy.example.yaml",
      },
    ]);
  }
  const result = policySchema.safeParse(raw ?? {});
  if (!result.success)
    throw new ConfigError(problemsFromZod(result.error, source, "see policy.example.yaml"));
  return result.data;
}

export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([
      {
        name: "POLICY_FILE",
        problem: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
        example: "POLICY_FILE=./policy.yaml (copy policy.example.yaml)",
      },
    ]);
  }
  return parsePolicy(text, path);
}

export interface ResolvedEnvironment {
  name: string;
  /** The policy key that matched: the name itself or a glob such as "review/*". */
  rule: string;
  policy: EnvironmentPolicy;
}

/** Finds the rule for an environment name: an exact key wins over globs; globs in file order. */
export function environmentRule(
  policy: Policy,
  name: string,
  tier?: string | null,
): ResolvedEnvironment | undefined {
  // Own keys only: a typed name such as "constructor" or "__proto__" must not reach Object.prototype.
  const exact = Object.hasOwn(policy.environments, name) ? policy.environments[name] : undefined;
  if (exact) return { name, rule: name, policy: exact };
  for (const [key, rule] of Object.entries(policy.environments)) {
    if (picomatch.isMatch(name, key)) return { name, rule: key, policy: rule };
  }
  if (tier) {
    for (const [key, rule] of Object.entries(policy.environments)) {
      if (rule.tier === tier) return { name, rule: key, policy: rule };
    }
  }
  return undefined;
}

type Matcher = (path: string) => boolean;
const scopeMatchers = new WeakMap<Policy, { include: Matcher[]; exclude: Matcher[] }>();

/** Whether a project path is in the policy's scope (exclude wins over include; case-insensitive). */
export function inScope(policy: Policy, pathWithNamespace: string): boolean {
  // Compiled once per policy: compiling globs on every webhook was a measurable share of intake CPU.
  let m = scopeMatchers.get(policy);
  if (!m) {
    // Case-insensitive like GitLab paths: an exclude must not be dodged by capitalising a group name.
    const opts = { nocase: true, dot: true };
    m = {
      include: policy.scope.include.map((g) => picomatch(g, opts)),
      exclude: policy.scope.exclude.map((g) => picomatch(g, opts)),
    };
    scopeMatchers.set(policy, m);
  }
  if (m.exclude.some((match) => match(pathWithNamespace))) return false;
  return m.include.some((match) => match(pathWithNamespace));
}
