import { readFileSync } from "node:fs";

/**
 * GitLab's and Microsoft's documented payloads, as copied into the repository (test/fixtures/reference; sources
 * in its README and graph/index.json). Tests read only this copy, so a fresh clone runs the whole suite;
 * test/unit/reference-fixtures.test.ts checks the copy against ../shared/reference/fixtures when that exists.
 */
export const FIXTURES_DIR = new URL("../fixtures/reference/", import.meta.url);

export function fixturePath(relative: string): URL {
  return new URL(relative, FIXTURES_DIR);
}

export function fixtureText(relative: string): string {
  return readFileSync(fixturePath(relative), "utf8");
}

export function fixtureJson<T = Record<string, unknown>>(relative: string): T {
  return JSON.parse(fixtureText(relative)) as T;
}
