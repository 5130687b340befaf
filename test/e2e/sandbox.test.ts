import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { deletePrefix, uniquePrefix } from "../helpers/redis.ts";

const MAIN = new URL("../../src/sandbox/main.ts", import.meta.url).pathname;

function runSandbox(env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [MAIN, "--tour", "--exit"], {
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  child.stderr.on("data", (d) => {
    err += String(d);
  });
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

describe("npm run sandbox -- --tour --exit", () => {
  it("plays the whole tour against the simulators and exits cleanly", async () => {
    const prefix = uniquePrefix("sandbox");
    const { code, out, err } = await runSandbox({ QUEUE_PREFIX: prefix });
    await deletePrefix(prefix);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/queue UI +http:\/\/127\.0\.0\.1:\d+\/admin\/queues/);
    expect(out).toMatch(/curl -s http:\/\/127\.0\.0\.1:\d+\/webhooks\/gitlab/);
    expect(out).toMatch(/webhook answered 202/);
    // Two teams, each in its own group through the template; no production by creating a project.
    expect(out).toMatch(/payments\/api\n +staging: app \S+ in group sg-payments-staging;/);
    expect(out).toMatch(/shop\/web\n +staging: app \S+ in group sg-shop-staging;/);
    expect(out).toMatch(/production: no identity\. The onboarding issue says: "Not set up automatically/);
    expect(out).toMatch(/production: waiting for an approver/);
    expect(out).toMatch(
      /production: app \S+ in group sg-payments-production; FIC subjects: \S+:ref_protected:true\n/,
    );
    expect(out).toMatch(/protected main -> production: 200 OK/);
    expect(out).toMatch(/fork's merge request named main \(unprotected\) -> production: 400 .*AADSTS7002/);
    expect(out).toMatch(/feature\/login -> production: 400 .*AADSTS7002/);
    expect(out).toMatch(/payments\/api-v2:ref_type:branch:ref:main:ref_protected:true/);
    // Deleted: staging's 4 credentials (2 refs, protected and not) and production's 1 are gone, both
    // principals disabled, and a token minted before the deletion no longer logs in.
    expect(out).toMatch(/federated credentials: 5 -> 0/);
    expect(out).toMatch(/enabled service principals: 2 -> 0/);
    expect(out).toMatch(/minted before the deletion: 400 unauthorized_client AADSTS7000112/);
  });

  it("starts its own redis-server when nothing answers at REDIS_URL", async () => {
    const { code, out, err } = await runSandbox({
      REDIS_URL: "redis://127.0.0.1:1",
      QUEUE_PREFIX: "sandbox",
    });
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/Redis +redis:\/\/127\.0\.0\.1:\d+ \(started by the sandbox/);
    expect(out).toMatch(/federated credentials: 5 -> 0/);
    expect(out).toMatch(/enabled service principals: 2 -> 0/);
    expect(out).toMatch(/minted before the deletion: 400 unauthorized_client AADSTS7000112/);
  });

  it("says how to get Redis when none answers and redis-server is not on PATH", async () => {
    const { code, err } = await runSandbox({ REDIS_URL: "redis://127.0.0.1:1", PATH: "/nonexistent" });
    expect(code).toBe(1);
    expect(err).toMatch(/redis-server is not on PATH\. Install it/);
  });
});
