/**
 * See what a policy does before rolling it out:
 *   npm run policy -- explain <project path> [--policy <file>] [--project-id <id>] [--offline] [--sandbox-ca]
 *   npm run policy -- diff <new policy file> [--sandbox-ca]
 * explain: the rule that matches the project and, per environment, refs, subjects, groups (templates resolved
 * through Graph when AZURE_* is configured and --offline is not given) and who may onboard it. Reads
 * POLICY_FILE (or --policy); needs no other configuration offline. With --project-id (and the worker's
 * configuration), the subjects follow the layout the registry recorded as established in GitLab for it.
 * diff: for every project the bot manages (the registry in Redis, plus Entra's tags), what applying the new
 * policy file would change in Entra. Reads only: Graph and Redis are read, GitLab is not called. Needs the
 * worker's configuration (AZURE_*, GRAPH_BASE_URL, REDIS_URL, QUEUE_PREFIX, GITLAB_URL for the issuer).
 * Exit codes: 0 done, 1 Graph or Redis failed, 2 configuration or policy error.
 */
import { parseArgs } from "node:util";
import { type Config, loadConfig } from "../config/env.ts";
import { loadPolicyFile, type Policy } from "../config/policy.ts";
import { ConfigError, formatProblem } from "../config/problems.ts";
import { createGraphApiFromConfig } from "../entra/graph-client.ts";
import { BotServicePrincipal } from "../entra/self.ts";
import { resolveIssuer } from "../onboarding/planner.ts";
import { Registry } from "../onboarding/registry.ts";
import type { SubjectLayout } from "../onboarding/subject-components.ts";
import { policyDiff, renderPolicyDiff } from "../policy/diff.ts";
import { explainProject } from "../policy/explain.ts";
import { GroupResolver } from "../policy/group-resolver.ts";
import { policyWarnings } from "../policy/rules.ts";
import { createWorkerConnection } from "../queue/connection.ts";
import { trustSandboxCa } from "../sandbox/tls.ts";

const USAGE =
  "usage: npm run policy -- explain <project path> [--policy <file>] [--project-id <id>] [--offline]\n       npm run policy -- diff <new policy file>\n";

function configError(err: unknown, what: string): number {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`policy ${what}: configuration is invalid\n`);
  for (const p of err.problems) process.stderr.write(`  - ${formatProblem(p)}\n`);
  return 2;
}

async function explain(path: string, values: Record<string, string | boolean | undefined>): Promise<number> {
  let policy: Policy;
  try {
    policy = loadPolicyFile(String(values.policy ?? process.env.POLICY_FILE ?? "./policy.yaml"));
  } catch (err) {
    return configError(err, "explain");
  }
  let config: Config | undefined;
  try {
    config = values.offline ? undefined : loadConfig(process.env, "worker");
  } catch {
    config = undefined;
  }
  const issuer =
    policy.gitlab.issuer ?? process.env.GITLAB_OIDC_ISSUER ?? process.env.GITLAB_URL ?? "<GitLab issuer>";
  const projectId = values["project-id"] === undefined ? undefined : Number(values["project-id"]);
  if (projectId !== undefined && (!Number.isSafeInteger(projectId) || projectId <= 0)) {
    process.stderr.write("--project-id must be a positive integer\n");
    return 2;
  }
  const resolver = config ? new GroupResolver(createGraphApiFromConfig(config)) : undefined;
  // With a project id and Redis: the layout established in GitLab for it, the record status and diff read.
  const established = config && projectId !== undefined ? await recordedLayout(config, projectId) : undefined;
  for (const w of policyWarnings(policy)) process.stdout.write(`warning: ${w}\n`);
  process.stdout.write(
    await explainProject({
      policy,
      projectPath: path,
      issuer,
      ...(projectId !== undefined ? { projectId } : {}),
      ...(established ? { established } : {}),
      ...(resolver ? { resolveGroups: (refs, v, where) => resolver.resolve(refs, v, where) } : {}),
    }),
  );
  if (!resolver)
    process.stdout.write("\n(offline: group templates shown as names, not resolved through Graph)\n");
  return 0;
}

async function recordedLayout(config: Config, projectId: number): Promise<SubjectLayout | undefined> {
  const redis = createWorkerConnection(config.redisUrl, { maxRetriesPerRequest: 3 }, config.redisSentinel);
  try {
    return (await new Registry(redis, config.queuePrefix).get(projectId))?.subjectLayout;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

async function diff(file: string): Promise<number> {
  let next: Policy;
  let config: Config;
  try {
    next = loadPolicyFile(file);
    config = loadConfig(process.env, "worker");
  } catch (err) {
    return configError(err, "diff");
  }
  const credential = config.azure.credential;
  if (!credential) {
    process.stderr.write(
      "policy diff: AZURE_TENANT_ID and AZURE_CLIENT_ID (and a credential) are required\n",
    );
    return 2;
  }
  const redis = createWorkerConnection(config.redisUrl, { maxRetriesPerRequest: 3 }, config.redisSentinel);
  try {
    for (const w of policyWarnings(next)) process.stdout.write(`warning: ${w}\n`);
    const graph = createGraphApiFromConfig(config);
    const result = await policyDiff(
      {
        graph,
        botSp: new BotServicePrincipal(graph, credential.clientId),
        redis,
        keyPrefix: config.queuePrefix,
        issuer: resolveIssuer(next, config),
        tenantId: credential.tenantId,
      },
      next,
    );
    process.stdout.write(renderPolicyDiff(result, file));
    return 0;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    strict: true,
    options: {
      policy: { type: "string" },
      "project-id": { type: "string" },
      offline: { type: "boolean" },
      "sandbox-ca": { type: "boolean" },
    },
  });
  if (values["sandbox-ca"]) trustSandboxCa();
  const [verb, arg] = positionals;
  if (verb === "explain" && arg) return explain(arg, values);
  if (verb === "diff" && arg) return diff(arg);
  process.stderr.write(USAGE);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`policy failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
