import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { FIXTURES_DIR } from "../helpers/fixtures.ts";

/**
 * The suite reads documented payloads from the repository's copy only. Where the project's reference folder
 * sits beside the clone (../shared/reference/fixtures, as in development and CI), the copy must equal it, file
 * for file; in a user's clone there is nothing to compare and the copy is checked to be complete JSON.
 */
const repoCopy = fileURLToPath(FIXTURES_DIR);
const shared = fileURLToPath(new URL("../../../shared/reference/fixtures/", import.meta.url));
const jsonFiles = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".json"))
    .map((e) => `${e.parentPath}/${e.name}`.slice(dir.length).replace(/^\//, ""))
    .sort();

describe("test/fixtures/reference", () => {
  it("holds the documented GitLab and Graph payloads, each valid JSON", () => {
    const files = jsonFiles(repoCopy);
    expect(files.filter((f) => f.startsWith("gitlab/")).length).toBeGreaterThanOrEqual(20);
    expect(files.filter((f) => f.startsWith("graph/")).length).toBeGreaterThanOrEqual(27);
    for (const f of files)
      expect(() => JSON.parse(readFileSync(`${repoCopy}/${f}`, "utf8")), f).not.toThrow();
  });

  it.runIf(existsSync(shared))(
    "equals ../shared/reference/fixtures when that folder is beside the clone",
    () => {
      expect(jsonFiles(repoCopy)).toEqual(jsonFiles(shared));
      for (const f of jsonFiles(shared)) {
        expect(readFileSync(`${repoCopy}/${f}`, "utf8"), f).toBe(readFileSync(`${shared}/${f}`, "utf8"));
      }
    },
  );
});
