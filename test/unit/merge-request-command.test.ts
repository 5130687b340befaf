import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { parseCommand } from "../../src/gitlab/commands.ts";
import { normalise } from "../../src/gitlab/normalise.ts";
import { parseSnippetArgs } from "../../src/onboarding/snippet-command.ts";

const policy = parsePolicy(`environments:\n  staging: { refs: ["branch:main"] }\n`);
const issueNote = JSON.parse(
  readFileSync(new URL("../fixtures/reference/gitlab/note-hook-issue.json", import.meta.url), "utf8"),
) as Record<string, unknown>;

/** The documented issue-comment payload turned into a merge-request comment (webhook_events.md). */
function mrNote(text: string, extra: Record<string, unknown> = {}) {
  const { issue: _issue, ...rest } = issueNote;
  return {
    ...rest,
    object_attributes: {
      ...(issueNote.object_attributes as object),
      note: text,
      noteable_type: "MergeRequest",
      system: false,
      action: "create",
    },
    merge_request: { id: 301, iid: 3, title: "Add deploy job", state: "opened" },
    ...extra,
  };
}

describe("commands written in merge-request comments", () => {
  it("become a mergeRequest.comment intent (answered with a pointer, never run)", () => {
    const out = normalise("Note Hook", mrNote("LGTM\n/entra onboard production"), policy);
    expect(out.kind).toBe("intent");
    if (out.kind !== "intent") return;
    expect(out.intent).toMatchObject({
      type: "mergeRequest.comment",
      mergeRequestIid: 3,
      confidential: false,
    });
    const internal = normalise("Confidential Note Hook", mrNote("/entra status"), policy);
    expect(
      internal.kind === "intent" &&
        internal.intent.type === "mergeRequest.comment" &&
        internal.intent.confidential,
    ).toBe(true);
  });

  it("MR comments without a command, edits, system notes and the bot's own notes are ignored", () => {
    expect(normalise("Note Hook", mrNote("just a review comment"), policy)).toMatchObject({
      kind: "ignored",
    });
    const edited = mrNote("/entra help");
    (edited.object_attributes as Record<string, unknown>).action = "update";
    expect(normalise("Note Hook", edited, policy)).toMatchObject({ kind: "ignored" });
    expect(
      normalise("Note Hook", mrNote("<!-- gitlab-entra-bot:mr-reply -->\n/entra help"), policy),
    ).toMatchObject({
      kind: "ignored",
    });
  });
});

describe("/entra snippet arguments", () => {
  it("a variant word anywhere, the rest are environments; default from the policy", () => {
    expect(parseCommand("/entra snippet terraform staging")).toEqual({
      kind: "snippet",
      args: ["terraform", "staging"],
    });
    expect(parseSnippetArgs(["staging", "Azure-SDK"], "azure-cli")).toEqual({
      variant: "azure-sdk",
      environments: ["staging"],
    });
    expect(parseSnippetArgs([], "terraform")).toEqual({ variant: "terraform", environments: [] });
    expect(parseSnippetArgs(["review/x"], "azure-cli")).toEqual({
      variant: "azure-cli",
      environments: ["review/x"],
    });
  });

  it("the policy's snippet.variant is validated", () => {
    expect(parsePolicy(`environments: {}\nsnippet: { variant: terraform }\n`).snippet.variant).toBe(
      "terraform",
    );
    expect(parsePolicy(`environments: {}\n`).snippet.variant).toBe("azure-cli");
    expect(() => parsePolicy(`environments: {}\nsnippet: { variant: pulumi }\n`)).toThrow(
      /azure-cli.*terraform.*azure-sdk/,
    );
  });
});
