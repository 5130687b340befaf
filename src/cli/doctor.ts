/**
 * Explains why a GitLab ID token does not (or does) log in to Entra through the bot's credentials:
 *   node src/cli/doctor.ts [--project ID] [--environment NAME] [--check-issuer] [--file PATH | TEXT]
 * TEXT (or the file, or stdin when neither is given) is an ID token, its claims as JSON, the claim lines
 * the CI snippet prints, or an AADSTS error message. The token is decoded without verification and never
 * printed. Reads the worker's environment (AZURE_*, GRAPH_BASE_URL, POLICY_FILE, GITLAB_*) for Graph and the
 * policy; REDIS_URL + QUEUE_PREFIX, when reachable, add the registry and the audit trail (credential ages).
 * `--sandbox-ca` trusts the sandbox CA, for use against the simulators only.
 * Exit codes: 0 the token would log in, 1 a problem was found, 2 usage or configuration error.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { type Config, loadConfig } from "../config/env.ts";
import { loadPolicyFile } from "../config/policy.ts";
import { ConfigError } from "../config/problems.ts";
import { DoctorInputError, parseDoctorInput } from "../doctor/input.ts";
import { renderTerminal } from "../doctor/render.ts";
import { sourceNote } from "../doctor/reply.ts";
import { type DoctorDeps, runDoctor } from "../doctor/run.ts";
import { createGraphApiFromConfig } from "../entra/graph-client.ts";
import { BotServicePrincipal } from "../entra/self.ts";
import { AuditLog } from "../onboarding/audit.ts";
import { resolveIssuer } from "../onboarding/planner.ts";
import { Registry } from "../onboarding/registry.ts";
import { trustSandboxCa } from "../sandbox/tls.ts";

const USAGE =
  "usage: node src/cli/doctor.ts [--project ID] [--environment NAME] [--check-issuer] [--sandbox-ca] [--file PATH | TEXT]\n" +
  "TEXT: a GitLab ID token, its claims JSON, the claim lines the CI snippet printed, or an AADSTS message (stdin when omitted)";

export interface DoctorArgs {
  text?: string;
  file?: string;
  projectId?: number;
  environment?: string;
  checkIssuer: boolean;
  sandboxCa: boolean;
}

export class UsageError extends Error {}

export function parseDoctorArgs(argv: string[]): DoctorArgs {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    // parseArgs quotes the offending argument, which could be a token: keep only its first words.
    const msg = e instanceof Error ? e.message.split("'")[0] : "bad arguments";
    throw new UsageError(`${msg}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) throw new UsageError(USAGE);
  const out: DoctorArgs = {
    checkIssuer: values["check-issuer"] ?? false,
    sandboxCa: values["sandbox-ca"] ?? false,
  };
  if (values.project !== undefined) {
    const n = Number(values.project);
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new UsageError(`--project must be a positive integer\n${USAGE}`);
    out.projectId = n;
  }
  if (values.environment !== undefined) out.environment = values.environment;
  if (values.file !== undefined) out.file = values.file;
  if (positionals.length > 0) out.text = positionals.join(" ");
  if (out.file && out.text)
    throw new UsageError(`give the input as an argument or with --file, not both\n${USAGE}`);
  return out;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      project: { type: "string" },
      environment: { type: "string" },
      file: { type: "string" },
      "check-issuer": { type: "boolean" },
      "sandbox-ca": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Registry and audit trail when Redis answers quickly; doctor still works from Graph alone otherwise. */
async function optionalRedis(config: Config): Promise<Redis | undefined> {
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 1500,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return redis;
  } catch {
    process.stderr.write(
      "note: Redis not reachable; credential ages and path lookups from the registry are skipped\n",
    );
    redis.disconnect();
    return undefined;
  }
}

async function main(): Promise<number> {
  let args: DoctorArgs;
  try {
    args = parseDoctorArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  if (args.sandboxCa) trustSandboxCa();
  let text: string;
  try {
    text = args.file ? readFileSync(args.file, "utf8") : (args.text ?? (await readStdin()));
  } catch (e) {
    process.stderr.write(`cannot read ${args.file}: ${(e as NodeJS.ErrnoException).code ?? "error"}\n`);
    return 2;
  }
  let input: ReturnType<typeof parseDoctorInput>;
  try {
    input = parseDoctorInput(text);
  } catch (e) {
    if (e instanceof DoctorInputError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let config: Config;
  let deps: DoctorDeps;
  try {
    config = loadConfig(process.env, "worker");
    const policy = loadPolicyFile(config.policyFile);
    const graph = createGraphApiFromConfig(config);
    deps = {
      graph,
      policy,
      issuer: resolveIssuer(policy, config),
      // Only the bot's own apps are compared: tags alone prove nothing (run.ts).
      ...(config.azure.credential
        ? { botSp: new BotServicePrincipal(graph, config.azure.credential.clientId) }
        : {}),
    };
  } catch (e) {
    process.stderr.write(`${e instanceof ConfigError || e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  const redis = await optionalRedis(config);
  try {
    if (redis) {
      deps.registry = new Registry(redis, config.queuePrefix);
      deps.audit = new AuditLog(redis, { key: `${config.queuePrefix}:audit` });
    }
    const run = await runDoctor(deps, input, {
      ...(args.projectId !== undefined ? { projectId: args.projectId } : {}),
      ...(args.environment ? { environment: args.environment } : {}),
      checkIssuer: args.checkIssuer,
    });
    const project = run.project
      ? `GitLab project ${run.project.id}${run.project.path ? ` (${run.project.path})` : ""}, found from ${run.projectSource}`
      : "GitLab project unknown";
    process.stdout.write(
      renderTerminal(run.diagnosis, {
        colour: process.stdout.isTTY === true,
        sourceNote: `${sourceNote(input.kinds, input.containedJwt)} ${project}.`,
      }),
    );
    return run.diagnosis.verdicts.some((v) => v.severity !== "info") ? 1 : 0;
  } catch (e) {
    process.stderr.write(`doctor failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  } finally {
    redis?.disconnect();
  }
}

if (import.meta.main) {
  process.exitCode = await main();
}
