import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findCommandLine, parseCommand } from "../../src/gitlab/commands.ts";

/** Commands are taken only from the author's own text lines, never from code, quotes or HTML comments. */
const NOT_TAKEN: Array<[string, string]> = [
  ["backtick fence", "```\n/entra offboard production\n```"],
  ["tilde fence", "~~~\n/entra offboard production\n~~~"],
  ["long fence with info string", "`````yaml title=x\n/entra offboard production\n```\n`````"],
  ["fence closed only by a fence as long", "````\n```\n/entra offboard production\n````"],
  ["unclosed fence runs to the end", "text\n\n```sh\necho\n/entra offboard production"],
  ["indented fence", "   ```\n/entra offboard production\n   ```"],
  ["fence inside a list item", "- steps:\n  ```\n  /entra offboard production\n  ```"],
  ["fence inside a list item, command flush in the item", "1. x\n   ~~~\n   /entra offboard production"],
  ["fence in a quote", "> ```\n> /entra offboard production\n> ```"],
  ["indented code block", "Paste:\n\n    /entra offboard production"],
  ["tab-indented code block", "Paste:\n\n\t/entra offboard production"],
  ["block quote", "> /entra offboard production"],
  ["quote with leading spaces", "   > /entra offboard production"],
  ["nested quote", "> > /entra offboard production"],
  ["quote lazy continuation", "> Mallory wrote:\n/entra offboard production"],
  ["quote inside a list", "- > quoted\n  /entra offboard production"],
  ["GitLab multi-line quote", ">>>\nMallory wrote:\n\n/entra offboard production\n>>>"],
  ["after a multi-line quote fence", "hi\n\n>>>\n/entra offboard production"],
  ["inline code", "`/entra offboard production`"],
  ["code span over lines", "see `` the\n/entra offboard production\n`` docs"],
  ["code span over lines, single backticks", "a `b\n/entra offboard production\nc` d"],
  ["HTML comment block", "<!--\n/entra offboard production\n-->"],
  ["HTML comment block, indented", "  <!-- hint:\n/entra offboard production -->"],
  ["inline HTML comment over lines", "Hello <!-- hidden\n/entra offboard production\n--> there"],
  ["HTML block", "<details>\n/entra offboard production\n</details>"],
  ["pre block", "<pre>\n\n/entra offboard production\n\n</pre>"],
  ["raw HTML tag over lines", 'text <span title="a\n/entra offboard production">x</span>'],
  ["four spaces of indentation", "    /entra offboard production"],
  ["not at the start of the line", "please run /entra offboard production"],
  ["a longer word", "/entrance"],
  ["Unicode line separator is no line break", "hi\u2028/entra offboard production"],
];

/** Constructs whose end a naive toggle gets wrong: the command after them is still code or quote. */
const STILL_CODE: Array<[string, string]> = [
  [
    "a fence in a quote ends with the quote; the next fence opens",
    "> ```\n```\n/entra offboard production\n```",
  ],
  ["a fence in a list item ends with the item", "- ```\n```\n/entra offboard production\n```"],
  ["``` inside an indented code block opens nothing", "    ```\n```\n/entra offboard production\n```"],
  ["a shorter fence does not close a longer one", "````\n```\n/entra offboard production\n```"],
  ["tilde does not close backticks", "```\n~~~\n/entra offboard production\n~~~"],
  ["backticks in an autolink open no code span", "<http://x`> `\n/entra offboard production\n`"],
];

const TAKEN: Array<[string, string, string]> = [
  ["plain", "/entra onboard staging", "/entra onboard staging"],
  ["after text", "Thanks!\n  /ENTRA onboard staging\n/entra plan", "/ENTRA onboard staging"],
  ["after a fence", "```\n/entra offboard production\n```\n/entra plan", "/entra plan"],
  ["after a tilde fence", "~~~\n/entra offboard production\n~~~\n/entra plan", "/entra plan"],
  ["after a quote", "> /entra offboard production\n\n/entra plan", "/entra plan"],
  ["after an HTML comment", "<!--\n/entra offboard production\n-->\n/entra plan", "/entra plan"],
  ["after inline code", "`/entra offboard production`\n/entra plan", "/entra plan"],
  ["after an indented block", "    /entra offboard production\n\n/entra plan", "/entra plan"],
  ["an unmatched backtick is literal", "a ` b\n/entra plan", "/entra plan"],
  ["a comment that never closes is literal", "a <!-- b\n/entra plan", "/entra plan"],
  ["inside a list item's text", "- first\n  /entra plan", "/entra plan"],
  ["CR line endings", "hi\r/entra plan\r", "/entra plan"],
  ["CRLF line endings", "```\r\n/entra offboard production\r\n```\r\n/entra plan", "/entra plan"],
  [
    "after a closed details block",
    "<details>\n/entra offboard production\n</details>\n\n/entra plan",
    "/entra plan",
  ],
];

describe("commands only from the author's own text lines", () => {
  for (const [name, note] of [...NOT_TAKEN, ...STILL_CODE]) {
    it(`not taken: ${name}`, () => {
      expect(findCommandLine(note)).toBeNull();
      expect(parseCommand(note)).toBeNull();
    });
  }
  for (const [name, note, line] of TAKEN) {
    it(`taken: ${name}`, () => {
      expect(findCommandLine(note)).toBe(line);
    });
  }

  it("every hiding construct followed by a plain command: the plain one is taken", () => {
    for (const [name, hidden] of NOT_TAKEN.filter(([n]) => !/unclosed|multi-line|after a multi/.test(n))) {
      expect(findCommandLine(`${hidden}\n\n/entra plan staging`), name).toBe("/entra plan staging");
    }
  });

  it("parseCommand on the whole note agrees with the intake's line (the worker re-parses the API's body)", () => {
    const note = "> /entra offboard production\n\n```\n/entra offboard staging\n```\n/entra onboard staging";
    expect(parseCommand(note)).toEqual({ kind: "onboard", environments: ["staging"] });
    const line = findCommandLine(note);
    expect(line).not.toBeNull();
    expect(parseCommand(line as string)).toEqual(parseCommand(note));
  });

  it("is linear on GitLab's 1,000,000-character notes, also hostile ones", () => {
    const huge = [
      `${"a `b <!-- <span title='x ".repeat(40_000)}\n/entra plan`,
      `${"> ".repeat(200_000)}x\n/entra plan`,
      `${"- ".repeat(200_000)}x\n/entra plan`,
      `${"```\n/entra x\n".repeat(50_000)}`,
      `${"`".repeat(500_000)}\n/entra plan\n${"`".repeat(499_999)}`,
    ];
    for (const note of huge) {
      expect(note.length).toBeGreaterThan(400_000);
      // No assertion on time (CI is loaded): the test would time out if a pass were quadratic.
      findCommandLine(note);
    }
    expect(findCommandLine(`${"x".repeat(999_000)}\n/entra plan`)).toBe("/entra plan");
  });

  it("property: any text wrapped in a fence, a quote or a comment yields no command from it", () => {
    const arbitraryLine = fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, " "));
    fc.assert(
      fc.property(
        fc.array(arbitraryLine, { maxLength: 6 }),
        fc.constantFrom("fence", "quote", "comment"),
        (ls, how) => {
          const body = [...ls, "/entra offboard production"];
          const wrapped =
            how === "fence"
              ? `\`\`\`\`\`\`\`\`\`\`\n${body.join("\n")}\n\`\`\`\`\`\`\`\`\`\``
              : how === "quote"
                ? body.map((l) => `> ${l}`).join("\n")
                : `<!--\n${body.join("\n").replaceAll("-->", "")}\n-->`;
          const found = findCommandLine(wrapped);
          return found === null;
        },
      ),
      { numRuns: 500 },
    );
  });
});
