import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { forbiddenReferences, moduleReferences, typeScriptFiles } from "../helpers/imports.ts";

/**
 * The simulators are judges of the bot, not copies of it: nothing under src/sandbox may load the bot's GitLab,
 * Entra, onboarding or doctor code, in any form (value or type import, re-export, dynamic import, `import()`
 * type, require). A Biome rule cannot say this exactly: `noRestrictedImports` matches specifier strings, not
 * the files they resolve to ("../entra/x.ts" and "../../src/entra/x.ts" are the same file), so the check
 * parses every file and resolves every relative specifier.
 */
const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const SANDBOX = root("src/sandbox");
const BOT_CODE = ["src/entra", "src/gitlab", "src/onboarding", "src/doctor"].map(root);

describe("src/sandbox does not import the bot's code", () => {
  it("no file under src/sandbox references src/entra, src/gitlab, src/onboarding or src/doctor", () => {
    const files = typeScriptFiles(SANDBOX);
    expect(files.length).toBeGreaterThan(10);
    const bad = forbiddenReferences(files, BOT_CODE).map(
      (r) => `${r.file.slice(SANDBOX.length + 1)}:${r.line} ${r.kind} "${r.specifier}" -> ${r.target}`,
    );
    // Each line says where; the fix is to write the simulator's own version from GitLab's or Microsoft's docs.
    expect(bad).toEqual([]);
  });

  it("the check sees every form of import (it would fail on each)", () => {
    const file = `${SANDBOX}/probe.ts`;
    const source = [
      `import { a } from "../entra/subject.ts";`,
      `import type { B } from "../gitlab/api.ts";`,
      `export * from "../onboarding/planner.ts";`,
      `export type { C } from "../doctor/diagnose.ts";`,
      `export { d } from "../../src/entra/fic-match.ts";`,
      `const e = await import("../gitlab/events.ts");`,
      `type F = import("../onboarding/types.ts").F;`,
      `import g = require("../doctor/run.ts");`,
      `const h = require("../entra/errors.ts");`,
      `const i = await import(somewhere);`,
      // Allowed: packages, node builtins, the sandbox's own files, src/config.
      `import { z } from "zod";`,
      `import { readFileSync } from "node:fs";`,
      `import { x } from "./gitlab-sim/state.ts";`,
      `import type { Config } from "../config/env.ts";`,
      `import { entra } from "./entra-sim/entra.ts";`,
    ].join("\n");
    const refs = moduleReferences(file, source);
    expect(refs.map((r) => r.kind)).toEqual([
      "import",
      "import type",
      "export from",
      "export from",
      "export from",
      "dynamic import",
      "import type()",
      "import = require",
      "require",
      "dynamic import",
      "import",
      "import",
      "import",
      "import type",
      "import",
    ]);
    const bad = forbiddenReferences([file], BOT_CODE, () => source);
    expect(bad.map((r) => r.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
