/**
 * Rebuilds the bot's Redis registry (GitLab project -> identities) from Entra, after Redis was lost or
 * restored from an old backup:
 *   npm run registry:rebuild [-- --sandbox-ca]
 * Reads only what the bot's own service principal owns (GET /servicePrincipals/{bot}/ownedObjects), never a
 * tag search: an owned app carries its GitLab project id, environment and path in its tags, and is restored
 * when the bot alone owns it (and its service principal) and it holds no secret or certificate. Anything else
 * the bot owns is listed as skipped, with the reason. Replaces the registry with what it finds.
 * Reads the worker's environment (AZURE_*, GRAPH_BASE_URL, REDIS_URL or REDIS_SENTINELS, QUEUE_PREFIX).
 * Exit codes: 0 rebuilt, 1 Graph or Redis failed, 2 configuration error.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config/env.ts";
import { ConfigError, formatProblem } from "../config/problems.ts";
import { createGraphApiFromConfig } from "../entra/graph-client.ts";
import { BotServicePrincipal } from "../entra/self.ts";
import { Registry } from "../onboarding/registry.ts";
import { createWorkerConnection } from "../queue/connection.ts";
import { trustSandboxCa } from "../sandbox/tls.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { "sandbox-ca": { type: "boolean" } }, strict: true });
  if (values["sandbox-ca"]) trustSandboxCa();
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, "worker");
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write("registry:rebuild: configuration is invalid\n");
    for (const p of err.problems) process.stderr.write(`  - ${formatProblem(p)}\n`);
    return 2;
  }
  const redis = createWorkerConnection(config.redisUrl, { maxRetriesPerRequest: 3 }, config.redisSentinel);
  try {
    const graph = createGraphApiFromConfig(config);
    const clientId = config.azure.credential?.clientId ?? "";
    const { projects, skipped } = await new Registry(redis, config.queuePrefix).rebuildFromEntra(
      graph,
      new BotServicePrincipal(graph, clientId),
    );
    for (const p of projects) {
      process.stdout.write(`${p.projectId}\t${p.path}\t${Object.keys(p.environments).sort().join(",")}\n`);
    }
    for (const s of skipped) process.stdout.write(`skipped\t${s.reason}\n`);
    process.stdout.write(
      `registry rebuilt from Entra: ${projects.length} project(s)${skipped.length ? `, ${skipped.length} owned object(s) skipped` : ""}\n`,
    );
    return 0;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`registry:rebuild failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
