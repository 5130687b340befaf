import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";

/** The image's V8 flags (Dockerfile): a smaller young generation keeps RSS low at no throughput cost. */
export const NODE_FLAGS = ["--max-semi-space-size=8"];

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
  const proc = spawn(process.execPath, [...nodeFlags, entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const match = await new Promise<string[]>((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += String(d);
      const m = ready.exec(out);
      if (m) {
        proc.stdout?.off("data", onData);
        proc.stdout?.resume();
        resolve([...m]);
      }
    };
    proc.stdout?.on("data", onData);
    proc.once("exit", (code) => reject(new Error(`${entry} exited with ${code} before listening: ${out}`)));
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
