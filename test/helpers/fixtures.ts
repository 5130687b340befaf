import { existsSync, readFileSync } from "node:fs";

/**
 * GitLab's and Microsoft's documented payloads live in ../shared/reference/fixtures (beside the clone in
 * development and CI). test/fixtures/reference holds a copy so the suite also runs without it.
 */
const shared = new URL("../../../shared/reference/fixtures/", import.meta.url);
const local = new URL("../fixtures/reference/", import.meta.url);

export function fixturePath(relative: string): URL {
  const inShared = new URL(relative, shared);
  return existsSync(inShared) ? inShared : new URL(relative, local);
}

export function fixtureText(relative: string): string {
  return readFileSync(fixturePath(relative), "utf8");
}

export function fixtureJson<T = Record<string, unknown>>(relative: string): T {
  return JSON.parse(fixtureText(relative)) as T;
}
