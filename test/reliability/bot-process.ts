import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { e2ePolicyYaml } from "../helpers/policy.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const CA = fileURLToPath(new URL("../../src/sandbox/certs/ca.pem", import.meta.url));

export interface BotProcess {
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  /** Raw stdout + stderr so far. */
  output(): string;
  /** Base URL of the api, when the process runs one. */
  url?: string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
  /** Called with every JSON log line from now on. */
  onLog(listener: (rec: Record<string, unknown>) => void): void;
}

/** Resolves with the first log line (past or future) that matches: waits for the event, not for time. */
export function waitForLog(
  bot: BotProcess,
  match: (rec: Record<string, unknown> & { msg?: unknown }) => boolean,
): Promise<Record<string, unknown>> {
  const seen = bot.logs.find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    bot.onLog((rec) => {
      if (match(rec)) resolve(rec);
    });
    void bot.exited.then((code) => reject(new Error(`bot exited (${code}) before the awaited log line`)));
  });
}

/**
 * Environment for `node src/main.ts` against a sandbox stack started with startService:false: the same
 * variables startSandboxStack gave loadConfig, with the policy in a temporary file and the sandbox CA trusted
 * through NODE_EXTRA_CA_CERTS (production code never trusts it itself).
 */
export function botEnv(stack: SandboxStack, extra: Record<string, string> = {}): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "geb-reliability-"));
  const policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, e2ePolicyYaml());
  tempDirs.push(dir);
  const c = stack.config;
  return {
    PATH: process.env.PATH ?? "",
    NODE_EXTRA_CA_CERTS: CA,
    PORT: "0",
    HOST: "127.0.0.1",
    REDIS_URL: c.redisUrl,
    QUEUE_PREFIX: c.queuePrefix,
    POLICY_FILE: policyFile,
    LOG_LEVEL: "info",
    GITLAB_URL: stack.gitlab.url,
    GITLAB_TOKEN: stack.secrets.gitlabToken,
    GITLAB_WEBHOOK_SECRETS: stack.secrets.webhook,
    AZURE_TENANT_ID: c.azure.credential?.tenantId ?? "",
    AZURE_CLIENT_ID: c.azure.credential?.clientId ?? "",
    AZURE_CLIENT_SECRET: stack.secrets.azureClientSecret,
    AZURE_AUTHORITY_HOST: stack.entra.url,
    GRAPH_BASE_URL: stack.entra.url,
    DRIFT_INTERVAL_SECONDS: "0",
    GRAPH_WRITES_PER_SECOND: "0",
    ...extra,
  };
}

const tempDirs: string[] = [];
const children = new Set<ChildProcess>();

/** Starts `node src/main.ts --role=<role>` and resolves once it logged that it started. */
export async function startBot(
  role: "api" | "worker" | "all",
  env: Record<string, string>,
): Promise<BotProcess> {
  const child = spawn(process.execPath, [MAIN, `--role=${role}`], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let raw = "";
  let pending = "";
  const logs: Array<Record<string, unknown>> = [];
  const listeners: Array<(rec: Record<string, unknown>) => void> = [];
  const bot: BotProcess = {
    onLog: (listener) => {
      listeners.push(listener);
    },
    child,
    logs,
    output: () => raw,
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return bot.exited;
    },
  };
  void bot.exited.then(() => children.delete(child));
  const started = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      raw += chunk.toString("utf8");
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          for (const l of listeners) l(rec);
          if (rec.msg === "api listening" && typeof rec.url === "string") bot.url = rec.url;
          if (rec.msg === "gitlab-entra-bot started") resolve();
        } catch {
          /* not a log line */
        }
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      raw += chunk.toString("utf8");
    });
    void bot.exited.then((code) => reject(new Error(`bot exited early (${code}): ${raw.slice(-2000)}`)));
  });
  // No timer of its own: a bot that never starts exits (rejecting above) or the test's own timeout says so.
  await started;
  return bot;
}

/** For afterAll: SIGKILLs every bot still running and removes temporary policy files. */
export async function killAllBots(): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGKILL");
        }),
    ),
  );
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
