import fc from "fast-check";
import MarkdownIt from "markdown-it";
import { describe, expect, it } from "vitest";
import {
  assertInert,
  cell,
  code,
  fenced,
  md,
  neutraliseInline,
  pasted,
  plain,
  trusted,
} from "../../src/gitlab/markdown-inert.ts";

/** The escaper shows values faithfully: what a CommonMark parser reads back is the (neutralised) value. */
const parser = new MarkdownIt();
const inlineCode = (markdown: string) =>
  parser
    .parseInline(markdown, {})[0]
    ?.children?.filter((t) => t.type === "code_inline")
    .map((t) => t.content);

describe("markdown-inert keeps values readable while making them inert", () => {
  it("a code span reads back as exactly the value, whatever backticks and spaces it holds", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), (s) => {
        expect(inlineCode(code(s))).toEqual([neutraliseInline(s)]);
      }),
      { numRuns: 500 },
    );
    expect(code("a `b` c")).toBe("``a `b` c``");
    expect(code("`x")).toBe("`` `x ``");
  });

  it("a table cell escapes pipes; a pasted block keeps every line behind a gutter in a longer fence", () => {
    expect(cell("a|b")).toBe("`a\\|b`");
    const block = pasted("x\n/close\n```\n````");
    expect(block.split("\n")[0]).toBe("`````text");
    expect(block.split("\n").slice(1, -1)).toEqual(["│ x", "│ /close", "│ ```", "│ ````"]);
    expect(block.split("\n").at(-1)).toBe("`````");
  });

  it("fenced code falls back to the gutter rather than carry a line starting with /", () => {
    expect(fenced("a: 1\nb: 2", "yaml")).toBe("```yaml\na: 1\nb: 2\n```");
    expect(fenced("ok\n  /close", "yaml")).toContain("│   /close");
  });

  it("hidden and line-separating characters become visible", () => {
    expect(neutraliseInline("a\r\nb\u2028c\u0085d\u202ee\u200bf")).toBe("a⏎b⏎c⏎d<U+202E>e<U+200B>f");
  });

  it("plain prose passes only when it has nothing GitLab would act on", () => {
    expect(plain("no identity exists for environment staging")).toBe(
      "no identity exists for environment staging",
    );
    for (const s of ["@all", "see #1", "www.evil.com", "a/b", "x~y", "<b>"])
      expect(plain(s).startsWith("`")).toBe(true);
  });

  it("md takes only SafeMarkdown and numbers; assertInert re-checks text that crossed a boundary", () => {
    expect(md`n=${3} ${code("@x")}`).toBe("n=3 `@x`");
    expect(trusted("ok")).toBe("ok");
    expect(() => assertInert("fine\n/close")).toThrow(/quick action/);
    expect(() => assertInert("a\u202eb")).toThrow(/bidi/);
    expect(assertInert("fine `@all`")).toBe("fine `@all`");
    // @ts-expect-error a plain string is not SafeMarkdown: interpolating it unescaped does not compile
    md`${"raw user text"}`;
    const dynamic: string = String(Math.random());
    // @ts-expect-error only string literals may be trusted: a runtime string does not compile
    trusted(dynamic);
  });
});
