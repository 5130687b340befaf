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
    "holds ../shared/reference/fixtures unchanged when that folder is beside the clone",
    () => {
      // Every shared original is copied byte for byte; the repository may document more (graph/index.json says
      // where each extra one comes from), and its index keeps every shared entry unchanged.
      const repo = new Set(jsonFiles(repoCopy));
      for (const f of jsonFiles(shared)) {
        expect(repo.has(f), `${f} is missing from test/fixtures/reference`).toBe(true);
        if (f === "graph/index.json") continue;
        expect(readFileSync(`${repoCopy}/${f}`, "utf8"), f).toBe(readFileSync(`${shared}/${f}`, "utf8"));
      }
      const index = (dir: string) =>
        JSON.parse(readFileSync(`${dir}/graph/index.json`, "utf8")) as Record<string, { source?: string }>;
      const repoIndex = index(repoCopy);
      expect(repoIndex).toMatchObject(index(shared));
      const sharedFiles = new Set(jsonFiles(shared));
      for (const f of repo) {
        if (sharedFiles.has(f) || !f.startsWith("graph/")) continue;
        expect(
          repoIndex[f.slice("graph/".length)]?.source,
          `${f}: add its source to graph/index.json`,
        ).toBeTruthy();
      }
    },
  );
});
