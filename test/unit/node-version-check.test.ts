import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * `npm test`, `npm start` and `npm run sandbox` first run scripts/check-node-version.cjs (npm pre-scripts), and
 * `npm ci` refuses an unsupported Node through engine-strict (.npmrc), so an old Node stops at once with a
 * message naming the Node to install. Here the script runs on this Node, once as itself and once told it is
 * Node 20 (a preloaded file changes process.versions), since the suite itself needs Node 24.
 */
const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const SCRIPT = root("scripts/check-node-version.cjs");

function run(preload?: string): Promise<{ code: number; stderr: string }> {
  const args = preload ? ["--require", preload, SCRIPT] : [SCRIPT];
  return new Promise((resolve) => {
    execFile(process.execPath, args, (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

describe("engine check", () => {
  it("passes silently on this Node (24+)", async () => {
    expect(await run()).toEqual({ code: 0, stderr: "" });
  });

  it("on Node 20 exits 1 at once, naming the Node to install, without a stack trace", async () => {
    const fake = join(tmpdir(), `geb-node20-${process.pid}.cjs`);
    writeFileSync(
      fake,
      `Object.defineProperty(process, "versions", { value: { ...process.versions, node: "20.11.1" } });\n`,
    );
    const r = await run(fake);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^gitlab-entra-bot needs Node\.js 24 or newer \(package\.json engines: ">=24"\); this is Node\.js 20\.11\.1/,
    );
    expect(r.stderr).toMatch(/Install Node\.js 24 /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("is wired before test, start and sandbox, and npm ci is engine-strict", () => {
    const pkg = JSON.parse(readFileSync(root("package.json"), "utf8")) as {
      scripts: Record<string, string>;
      engines: { node: string };
    };
    expect(pkg.engines.node).toBe(">=24");
    for (const script of ["pretest", "prestart", "presandbox"]) {
      expect(pkg.scripts[script]).toBe("node scripts/check-node-version.cjs");
    }
    expect(readFileSync(root(".npmrc"), "utf8")).toMatch(/^engine-strict=true$/m);
  });
});
