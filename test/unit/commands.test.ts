import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { editDistance, findCommandLine, helpText, parseCommand } from "../../src/gitlab/commands.ts";

describe("findCommandLine", () => {
  it("returns the first /entra line, trimmed, ignoring other lines", () => {
    expect(findCommandLine("Hi team\n  /entra onboard staging  \n/entra status")).toBe(
      "/entra onboard staging",
    );
  });

  it("ignores /entra inside fenced code blocks and words that merely start with it", () => {
    expect(findCommandLine("```\n/entra onboard\n```\n/entrance\nno command")).toBeNull();
    expect(findCommandLine("```yaml\n/entra onboard\n```\n/entra plan")).toBe("/entra plan");
  });

  it("keeps the rest of the comment for doctor", () => {
    const note =
      "/entra doctor\niss: https://gitlab.example.com\nsub: project_path:a/b:ref_type:branch:ref:main\n";
    expect(findCommandLine(note)).toBe(note.trimEnd());
  });

  it("caps the forwarded text", () => {
    expect(findCommandLine(`/entra doctor ${"x".repeat(10_000)}`)?.length).toBe(4000);
  });
});

describe("parseCommand", () => {
  it("parses onboard/plan/offboard with environments (spaces or commas, duplicates dropped)", () => {
    expect(parseCommand("/entra onboard staging, production staging")).toEqual({
      kind: "onboard",
      environments: ["staging", "production"],
    });
    expect(parseCommand("/entra plan")).toEqual({ kind: "plan", environments: [] });
    expect(parseCommand("/entra offboard review/fix-1")).toEqual({
      kind: "offboard",
      environments: ["review/fix-1"],
    });
  });

  it("parses approve with its environments; a typo suggests it", () => {
    expect(parseCommand("/entra approve production")).toEqual({
      kind: "approve",
      environments: ["production"],
    });
    expect(parseCommand("/entra aprove production")).toEqual({
      kind: "unknown",
      word: "aprove",
      suggestion: "approve",
    });
  });

  it("is case-insensitive for the command word but keeps environment names verbatim", () => {
    expect(parseCommand("/Entra ONBOARD Production")).toEqual({
      kind: "onboard",
      environments: ["Production"],
    });
  });

  it("parses status, help, and bare /entra as help", () => {
    expect(parseCommand("/entra status")).toEqual({ kind: "status" });
    expect(parseCommand("/entra help")).toEqual({ kind: "help" });
    expect(parseCommand("please\n/entra\n")).toEqual({ kind: "help" });
  });

  it("keeps the raw rest for doctor", () => {
    expect(parseCommand("/entra doctor sub: project_path:a/b\naud: api://AzureADTokenExchange")).toEqual({
      kind: "doctor",
      rest: "sub: project_path:a/b\naud: api://AzureADTokenExchange",
    });
  });

  it("suggests the closest command for typos (distance ≤ 2) and nothing for far-off words", () => {
    expect(parseCommand("/entra onbaord staging")).toEqual({
      kind: "unknown",
      word: "onbaord",
      suggestion: "onboard",
    });
    expect(parseCommand("/entra stauts")).toEqual({ kind: "unknown", word: "stauts", suggestion: "status" });
    expect(parseCommand("/entra deploy")).toEqual({ kind: "unknown", word: "deploy" });
  });

  it("returns null when there is no command", () => {
    expect(parseCommand("looks good to me")).toBeNull();
  });
});

describe("editDistance", () => {
  it("counts an adjacent transposition as one edit", () => {
    expect(editDistance("onbaord", "onboard")).toBe(1);
    expect(editDistance("plan", "plna")).toBe(1);
    expect(editDistance("", "help")).toBe(4);
    expect(editDistance("help", "help")).toBe(0);
  });
});

describe("helpText", () => {
  it("lists every command and the policy's environments, refs and roles", () => {
    const policy = parsePolicy(`
onProjectCreate:
  environments: [staging]
environments:
  production:
    refs: ["branch:main", "tag:v1"]
    minAccessLevel: maintainer
  staging:
    refs: ["branch:develop"]
    minAccessLevel: developer
    onFirstDeployment: true
`);
    const text = helpText(policy);
    for (const cmd of ["onboard", "plan", "status", "offboard", "doctor", "help"])
      expect(text).toContain(`/entra ${cmd}`);
    expect(text).toContain("| `production` | `branch:main`, `tag:v1` | Maintainer | no (privileged) | no |");
    expect(text).toContain("| `staging` | `branch:develop` | Developer | no | yes |");
    expect(text).toContain("use: `staging`");
    expect(text).toContain("/entra approve <env ...>");
  });

  it("with the project's path, tells the rule that governs it: its environments and approvers", () => {
    const policy = parsePolicy(`
environments:
  staging: { refs: ["branch:main"] }
rules:
  - match: ["payments/**"]
    onProjectCreate: { environments: [staging] }
    environments:
      staging: { refs: ["branch:main"], minAccessLevel: developer, onFirstDeployment: true }
      production: { refs: ["branch:main"], approvers: ["alice", "payments/leads"], onFirstDeployment: true }
`);
    const text = helpText(policy, "Payments/api");
    expect(text).toContain(
      "| `production` | `branch:main` | Maintainer | yes: `alice`, `payments/leads` | no |",
    );
    expect(text).toContain("| `staging` | `branch:main` | Developer | no | yes |");
    expect(helpText(policy, "other/api")).not.toContain("`production`");
    // The token subject the bot asks GitLab for in that project: ref_protected where the rule binds refs.
    expect(text).toContain("Token subject: `project_id, ref_type, ref, ref_protected`");
    expect(helpText(policy, "other/api")).toContain("Token subject: `project_id, ref_type, ref`;");
  });
});
