/**
 * Checks the live configuration before the bot runs:
 *   npm run preflight [-- --sandbox-ca]
 * Reads the same environment as the worker (AZURE_*, GRAPH_BASE_URL, GITLAB_*, REDIS_URL, POLICY_FILE) and
 * checks: the policy is valid; the bot gets a Graph token and its `roles` claim has the application
 * permissions the policy needs; GitLab GET /user works with GITLAB_TOKEN (and the token's scopes, where
 * GitLab reports them); the OIDC issuer's discovery document is reachable over HTTPS; Redis answers.
 * `--sandbox-ca` trusts the sandbox CA, for use against the simulators only.
 * Exit codes: 0 all checks passed, 1 something is missing (printed precisely), 2 configuration error.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config/env.ts";
import { loadPolicyFile, type Policy } from "../config/policy.ts";
import { ConfigError, formatProblem } from "../config/problems.ts";
import { renderChecks, runPreflight } from "../preflight/checks.ts";
import { trustSandboxCa } from "../sandbox/tls.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { "sandbox-ca": { type: "boolean" } }, strict: true });
  if (values["sandbox-ca"]) trustSandboxCa();
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, "all");
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write("preflight: configuration is invalid\n");
    for (const p of err.problems) process.stderr.write(`  - ${formatProblem(p)}\n`);
    return 2;
  }
  let policy: Policy | { error: string };
  try {
    policy = loadPolicyFile(config.policyFile);
  } catch (err) {
    policy = {
      error:
        err instanceof ConfigError
          ? `${config.policyFile} is invalid: ${err.problems.map(formatProblem).join("; ")}`
          : `${config.policyFile}: ${(err as Error).message}`,
    };
  }
  const results = await runPreflight({ config, policy });
  process.stdout.write(renderChecks(results));
  return results.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`preflight crashed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
