import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  appDisplayName,
  FIC_NAME_PATTERN,
  ficName,
  identityTags,
  MAX_DISPLAY_NAME,
  parseIdentityTags,
} from "../../src/onboarding/naming.ts";

const prefix = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,19}$/);
const ref = fc.oneof(
  fc.string({ minLength: 1, maxLength: 300, unit: "grapheme" }),
  fc.stringMatching(/^[a-z]+(\/[a-z0-9._-]+){0,5}$/),
);
const refRule = fc.tuple(fc.constantFrom("branch", "tag"), ref).map(([t, r]) => `${t}:${r}`);

describe("FIC names", () => {
  it("are always valid Graph FIC names (3-120 chars, [A-Za-z0-9][A-Za-z0-9_-]*)", () => {
    fc.assert(
      fc.property(prefix, refRule, (p, r) => {
        const name = ficName(p, r);
        expect(name).toMatch(FIC_NAME_PATTERN);
        expect(name.length).toBeGreaterThanOrEqual(3);
        expect(name.length).toBeLessThanOrEqual(120);
      }),
      { numRuns: 500 },
    );
  });

  it("are deterministic and unique per ref rule", () => {
    fc.assert(
      fc.property(prefix, fc.uniqueArray(refRule, { minLength: 2, maxLength: 20 }), (p, rules) => {
        const names = rules.map((r) => ficName(p, r));
        expect(new Set(names).size).toBe(rules.length);
        expect(rules.map((r) => ficName(p, r))).toEqual(names);
      }),
      { numRuns: 300 },
    );
  });

  it("keep refs that slug alike apart", () => {
    const names = ["branch:feature/a", "branch:feature-a", "branch:Feature-A", "tag:feature/a"].map((r) =>
      ficName("gitlab", r),
    );
    expect(new Set(names).size).toBe(4);
    expect(ficName("gitlab", "branch:main")).toMatch(/^gitlab-branch-main-[0-9a-f]{10}$/);
  });
});

describe("display names and tags", () => {
  it("display names stay within the limit and are distinct for distinct long paths", () => {
    fc.assert(
      fc.property(
        prefix,
        fc.string({ minLength: 1, maxLength: 400 }),
        fc.string({ minLength: 1, maxLength: 60 }),
        (p, path, env) => {
          const name = appDisplayName(p, path, env);
          expect(name.length).toBeLessThanOrEqual(MAX_DISPLAY_NAME);
          expect(appDisplayName(p, path, env)).toBe(name);
          expect(appDisplayName(p, `${path}x`, env)).not.toBe(name);
        },
      ),
    );
  });

  it("tags round-trip project id, environment and path", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.string({ minLength: 1, maxLength: 100, unit: "grapheme" }),
        fc.string({ minLength: 1, maxLength: 200, unit: "grapheme" }),
        (id, env, path) => {
          const parsed = parseIdentityTags(identityTags(id, env, path));
          expect(parsed?.projectId).toBe(id);
          expect(parsed?.environment).toBe(env);
          if (`gitlab-path:${path}`.length <= 256) expect(parsed?.path).toBe(path);
        },
      ),
    );
  });

  it("ignores apps that are not the bot's", () => {
    expect(parseIdentityTags(["gitlab-project:1", "gitlab-env:prod"])).toBeUndefined();
    expect(parseIdentityTags(["gitlab-entra-bot", "gitlab-project:x", "gitlab-env:prod"])).toBeUndefined();
  });
});
