import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The image's V8 flags (Dockerfile): a smaller young generation keeps RSS low at no throughput cost. */
export const NODE_FLAGS = ["--max-semi-space-size=8"];
/**
 * The worker role's flags (deploy/kubernetes worker command, docker-compose worker entrypoint): V8's
 * optimize-for-size heap heuristics collect sooner. Measured in bench:drift (3,000 projects): the bulk sweep's
 * worker peaked at 309 MB without it and 181 MB with it, at the same sweep time; the live heap after a full
 * collection is 50-70 MB either way, the difference is garbage V8 let build up between collections.
 */
export const WORKER_NODE_FLAGS = [...NODE_FLAGS, "--optimize-for-size"];

export interface Child {
  proc: ChildProcess;
  url: string;
  /** The stdout match that signalled readiness (extra groups carry more than the URL). */
  ready: string[];
  /** Peak resident set size (VmHWM) in MB, read from /proc while the process is alive. */
  peakRssMb(): number;
  stop(): Promise<void>;
}

/** A line containing `"url":"http(s)://..."`: what the api and the simulator entry print once they listen. */
export const LISTENING = /"url":"(https?:\/\/[^"]+)"/;

/**
 * Starts a Node entry point and resolves once its stdout matches `ready` (default: it logs its URL; group 1,
 * if any, becomes `url`). Workers have no URL: wait for their start line instead.
 */
export async function startNode(
  entry: string,
  args: string[],
  env: Record<string, string>,
  nodeFlags: string[] = NODE_FLAGS,
  ready: RegExp = LISTENING,
): Promise<Child> {
  // stdout goes to a file, not a pipe: reading a busy api's log lines would cost the load generator (this
  // process) CPU and tilt comparisons against whichever process logs more.
  const logPath = join(mkdtempSync(join(tmpdir(), "geb-bench-")), "stdout.log");
  const proc = spawn(process.execPath, [...nodeFlags, entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", openSync(logPath, "w"), "inherit"],
  });
  const match = await new Promise<string[]>((resolve, reject) => {
    const onExit = (code: number | null) => {
      clearInterval(timer);
      reject(new Error(`${entry} exited with ${code} before it was ready: ${readFileSync(logPath, "utf8")}`));
    };
    const timer = setInterval(() => {
      const m = ready.exec(readFileSync(logPath, "utf8"));
      if (m) {
        clearInterval(timer);
        proc.off("exit", onExit);
        resolve([...m]);
      }
    }, 25);
    proc.once("exit", onExit);
  });
  return {
    proc,
    url: match[1] ?? "",
    ready: match,
    peakRssMb() {
      const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
      const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      return kb / 1024;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
      }),
  };
}
