import pino from "pino";
import { loadConfig, type Role } from "./config/env.ts";
import { loadPolicyFile } from "./config/policy.ts";
import { ConfigError, formatProblem } from "./config/problems.ts";
import { createLogger } from "./logging.ts";
import { startService } from "./service.ts";
import { tracingRequested } from "./telemetry/enabled.ts";

/** Exit code for configuration errors: distinct from crashes (1) so orchestrators can tell them apart. */
const EXIT_CONFIG = 2;

function roleFromArgs(argv: string[]): Role | undefined {
  const arg = argv.find((a) => a.startsWith("--role="));
  if (!arg) return undefined;
  const role = arg.slice("--role=".length);
  if (role === "api" || role === "worker" || role === "all") return role;
  process.stderr.write(`--role must be api, worker or all (got "${role}")\n`);
  process.exit(EXIT_CONFIG);
}

async function main(): Promise<void> {
  // OpenTelemetry only when OTEL_* asks for traces: otherwise not one of its modules is loaded. First, so that
  // the queues and the server the service builds pick up the tracing hooks.
  const tracing = tracingRequested(process.env)
    ? (await import("./telemetry/tracing.ts")).startTracing()
    : undefined;
  let config: ReturnType<typeof loadConfig>;
  let policy: ReturnType<typeof loadPolicyFile>;
  try {
    config = loadConfig(process.env, roleFromArgs(process.argv.slice(2)));
    policy = loadPolicyFile(config.policyFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write("gitlab-entra-bot cannot start: configuration is invalid\n");
      for (const p of err.problems) process.stderr.write(`  - ${formatProblem(p)}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
  // Asynchronous stdout: a synchronous write per log line was the largest single cost on the webhook path.
  // pino flushes it on exit.
  const logger = createLogger(config.logLevel, pino.destination({ dest: 1, sync: false }));
  const service = await startService({ config, policy, logger });
  logger.info({ role: config.role }, "gitlab-entra-bot started");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: stopping intake, finishing running jobs");
    const force = setTimeout(() => {
      logger.error("shutdown took longer than 60 s; exiting");
      process.exit(1);
    }, 60_000);
    force.unref();
    await service.close();
    await tracing?.shutdown().catch(() => {});
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`gitlab-entra-bot crashed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
