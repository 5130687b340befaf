import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { deletePrefix, uniquePrefix } from "../helpers/redis.ts";

const MAIN = new URL("../../src/sandbox/main.ts", import.meta.url).pathname;

describe("npm run sandbox -- --tour --exit", () => {
  it("plays the whole tour against the simulators and exits cleanly", async () => {
    const prefix = uniquePrefix("sandbox");
    const child = spawn(process.execPath, [MAIN, "--tour", "--exit"], {
      env: { ...process.env, PORT: "0", QUEUE_PREFIX: prefix },
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
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("exit", (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    await deletePrefix(prefix);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/queue UI +http:\/\/127\.0\.0\.1:\d+\/admin\/queues/);
    expect(out).toMatch(/curl -s http:\/\/127\.0\.0\.1:\d+\/webhooks\/gitlab/);
    expect(out).toMatch(/webhook answered 202/);
    expect(out).toMatch(/main -> production: 200 OK/);
    expect(out).toMatch(/feature\/login -> production: 400 .*AADSTS7002/);
    expect(out).toMatch(/demo\/webapp-v2:ref_type:branch:ref:main/);
    expect(out).toMatch(/app registrations: 2 -> 0/);
  });
});
