import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Policy } from "../../src/config/policy.ts";
import { parsePolicy } from "../../src/config/policy.ts";
import type { Diagnosis } from "../../src/doctor/diagnose.ts";
import { renderMarkdown } from "../../src/doctor/render.ts";
import { doctorReply } from "../../src/doctor/reply.ts";
import type { GraphApi } from "../../src/entra/graph.ts";
import type { GitLabApi } from "../../src/gitlab/api.ts";
import { NAME_ENVIRONMENTS, unknownCommandPreface } from "../../src/gitlab/command-replies.ts";
import { helpText, parseCommand } from "../../src/gitlab/commands.ts";
import { GitLabError } from "../../src/gitlab/errors.ts";
import { mergeRequestReplyText } from "../../src/gitlab/merge-request-command.ts";
import { authorizeCommand } from "../../src/onboarding/authorize.ts";
import { withRegisteredEnvironments } from "../../src/onboarding/describe.ts";
import { BOT_TAG, environmentTag, projectTag } from "../../src/onboarding/naming.ts";
import { renderOnboardingMarkdown, SNIPPET_VARIANTS } from "../../src/onboarding/snippet.ts";
import { parseSnippetArgs, snippetReply } from "../../src/onboarding/snippet-command.ts";
import { resolveSubjectComponents, type SubjectResolution } from "../../src/onboarding/subject-components.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";
import { inertnessProblems } from "../helpers/gitlab-markdown-oracle.ts";

/**
 * Hostile strings through EVERY note and issue template the bot renders; the rendered Markdown is judged by
 * an oracle written from GitLab's rules (test/helpers/gitlab-markdown-oracle.ts), not by the escaper.
 */

const FRAGMENTS = [
  "/move mallory/exfil",
  "\n/close",
  "\r/confidential",
  "\r\n/label ~x",
  "\n  /assign @mallory",
  "@all",
  "@mallory",
  "x`@all",
  "![](https://evil/p.png)",
  "[click](https://evil.example/x)",
  "[x][r]\n\n[r]: https://evil.example",
  "<https://evil.example>",
  "https://evil.example/x",
  "www.evil.com",
  "<img src=x onerror=alert(1)>",
  "<details><summary>x</summary>",
  "<!--",
  "-->",
  "`",
  "``",
  "```",
  "````",
  "~~~",
  "#12",
  "!3",
  "&4",
  "$5",
  "~bug",
  '~"to do"',
  "%v1",
  "group/proj#7",
  "|",
  "\\",
  "\u2028/move x",
  "\u2029",
  "\u0085/close",
  "\u202e",
  "\u2066",
  "\u200b",
  "\ufeff",
  "\u000b/close",
  " ",
  "\t",
  ":",
  "'",
  '"',
  "}",
  "{",
];

const hostile = fc
  .array(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...FRAGMENTS) }, { weight: 1, arbitrary: fc.string() }),
    {
      minLength: 1,
      maxLength: 8,
    },
  )
  .map((parts) => parts.join(""));
/** Backtick runs of every length up to 12, on their own or inside other text. */
const backticks = fc
  .tuple(fc.integer({ min: 1, max: 12 }), hostile)
  .map(([n, h]) => `${"`".repeat(n)}${h}${"`".repeat(Math.max(1, 13 - n))}`);
const anyHostile = fc.oneof(hostile, backticks);
/** An environment key of a policy (the schema requires at least one character). */
const policyKey = anyHostile.filter((s) => s.length > 0);
/** A ref rule as GitLab and the snippet allow (no both quote kinds in one ref). */
const hostileRef = anyHostile.map((h) => `branch:${h.replace(/'/g, "")}`);

function expectInert(markdown: string, allowedReferences: string[] = []): void {
  const problems = inertnessProblems(markdown, { allowedReferences });
  if (problems.length) throw new Error(`${problems.join("\n")}\n--- rendered:\n${markdown}`);
}

const APP = "11111111-2222-3333-4444-555555555555";
const BASE_ENVIRONMENTS = `environments:\n  production:\n    refs: ["branch:main"]\n    minAccessLevel: maintainer\n  staging:\n    refs: ["branch:main"]\n    minAccessLevel: developer\nonProjectCreate:\n  environments: [staging]\n`;
const basePolicy = parsePolicy(BASE_ENVIRONMENTS, "test");

function hostilePolicy(env: string, ref: string, audience: string): Policy {
  return {
    ...basePolicy,
    gitlab: { ...basePolicy.gitlab, audience },
    onProjectCreate: { ...basePolicy.onProjectCreate, environments: [env] },
    environments: {
      ...basePolicy.environments,
      [env]: {
        refs: [ref],
        groups: [],
        minAccessLevel: "developer",
        onFirstDeployment: true,
        autoOnboard: false,
        allowUnprotectedRefs: false,
      },
    },
  };
}

function result(path: string, env: string, ref: string, text: string, mode: "apply" | "plan"): OnboardResult {
  return {
    project: { id: 42, path },
    mode,
    tenantId: text,
    issuer: text,
    audience: text,
    subClaimComponents: ["project_id", "ref_type", "ref"],
    environments: [
      {
        environment: env,
        status: mode === "plan" ? "would-change" : "changed",
        identity: { environment: env, appObjectId: "o1", appId: text, spObjectId: "s1", displayName: text },
        refs: [ref],
        subjects: [`project_path:${path}:ref_type:branch:ref:${text}`],
        groups: ["g"],
        changes: [],
      },
      {
        environment: text,
        status: "refused",
        refs: [],
        subjects: [],
        groups: [],
        changes: [],
        message: text,
      },
      {
        environment: `${env}-b`,
        status: "failed",
        refs: [],
        subjects: [],
        groups: [],
        changes: [],
        message: text,
      },
    ],
  };
}

const RUNS = { numRuns: 150 };

describe("every note and issue the bot writes is inert, whatever users typed", () => {
  it("the oracle itself catches each kind of breakage (so a passing property means something)", () => {
    const bad = [
      "hello\n/move group/x",
      "text @all",
      "x`@all",
      "see #12",
      "![](https://evil/p.png)",
      "[x](https://evil)",
      "https://evil.example/x",
      "<img src=x>",
      "<!-- hidden -->",
      "```\nnot closed",
      "a\u202eb",
      "a\u2028/close",
      "| h |\n|---|\n| `x|@all` |",
    ];
    for (const b of bad) expect(inertnessProblems(b), b).not.toEqual([]);
    expect(inertnessProblems("fine `@all` and ```` ``` ```` <!-- gitlab-entra-bot:status -->")).toEqual([]);
  });

  it("onboarding issue and status replies (apply, plan, every snippet variant, rename)", () => {
    fc.assert(
      fc.property(
        anyHostile,
        policyKey,
        hostileRef,
        anyHostile,
        fc.constantFrom(...SNIPPET_VARIANTS),
        (path, env, ref, text, variant) => {
          for (const mode of ["apply", "plan"] as const) {
            const r = result(path, env, ref, text, mode);
            expectInert(renderOnboardingMarkdown(r, { ciVariablesSet: mode === "apply", variant }));
            const full = withRegisteredEnvironments(
              r,
              {
                projectId: 42,
                path,
                environments: {
                  [text]: {
                    environment: text,
                    appObjectId: "o",
                    appId: APP,
                    spObjectId: "s",
                    displayName: "d",
                  },
                },
              },
              hostilePolicy(env, ref, text),
              text,
            );
            expectInert(renderOnboardingMarkdown(full, { ciVariablesSet: true, variant }));
          }
        },
      ),
      RUNS,
    );
  });

  it("help, unknown commands and the bare-onboard answer", () => {
    fc.assert(
      fc.property(policyKey, hostileRef, anyHostile, (env, ref, word) => {
        expectInert(helpText(hostilePolicy(env, ref, word)));
        expectInert(`${unknownCommandPreface(word, "onboard")}${helpText(basePolicy)}`);
        const parsed = parseCommand(`/entra ${word}`);
        if (parsed?.kind === "unknown") expectInert(unknownCommandPreface(parsed.word, parsed.suggestion));
        expectInert(NAME_ENVIRONMENTS);
      }),
      RUNS,
    );
  });

  it("refusals (no rule, not a member, role too low)", async () => {
    for (const level of [null, 10]) {
      const gitlab = { memberAccessLevel: async () => level } as unknown as GitLabApi;
      await fc.assert(
        fc.asyncProperty(anyHostile, policyKey, async (unknownEnv, env) => {
          const policy = hostilePolicy(env, "branch:main", "api://AzureADTokenExchange");
          for (const envs of [[unknownEnv], [env], []]) {
            const auth = await authorizeCommand(gitlab, policy, 42, 7, envs);
            if (!auth.ok) expectInert(auth.message);
          }
        }),
        { numRuns: 60 },
      );
    }
  });

  it("doctor: pasted claims, AADSTS text and credentials with hostile values", async () => {
    await fc.assert(
      fc.asyncProperty(anyHostile, anyHostile, anyHostile, async (a, b, c) => {
        const graph = {
          listApplicationsByTag: async () => [
            { id: "o1", appId: APP, displayName: "d", tags: [BOT_TAG, projectTag(42), environmentTag(a)] },
          ],
          listFederatedCredentials: async () => [
            { id: "f1", name: b, issuer: c, subject: a, audiences: [b] },
          ],
        } as unknown as GraphApi;
        const deps = { graph, policy: basePolicy, issuer: "https://gitlab.example.com" };
        const inputs = [
          `{"iss":"https://x\\n/move mallory/exfil\\n/confidential\\n@all","sub":${JSON.stringify(a)},"aud":${JSON.stringify(b)}}`,
          `iss: ${a}\nsub: ${b}\naud: ${c}`,
          `AADSTS700213: No matching federated identity record found for presented assertion subject '${a}'. Trace ID: ${b}`,
          a,
        ];
        for (const text of inputs) expectInert(await doctorReply(deps, 42, text));
      }),
      { numRuns: 60 },
    );
  });

  it("doctor's renderer with hostile verdicts, rows and Entra messages", () => {
    fc.assert(
      fc.property(anyHostile, anyHostile, (a, b) => {
        const cellOf = { expected: a, actual: b, diff: { kind: "different" as const, index: 0 } };
        const d = {
          token: { iss: a, sub: b, aud: [a], exp: 1e20 },
          aadsts: { code: "AADSTS70021", message: a, traceId: b },
          rows: [
            {
              fic: { name: a, environment: b, issuer: a, subject: b, audiences: [a] },
              issuer: cellOf,
              subject: cellOf,
              audience: cellOf,
              matches: false,
              nearest: true,
              ageSeconds: 3,
            },
          ],
          verdicts: [{ code: "subject-different", severity: "error", message: a, fix: b }],
        } as unknown as Diagnosis;
        expectInert(renderMarkdown(d, { sourceNote: a }));
      }),
      RUNS,
    );
  });

  it("/entra snippet answers, the MR-comment pointer and the sub-claim Action needed line", async () => {
    await fc.assert(
      fc.asyncProperty(anyHostile, policyKey, hostileRef, async (path, env, ref) => {
        const policy = hostilePolicy(env, ref, "api://AzureADTokenExchange");
        for (const variant of SNIPPET_VARIANTS) {
          const body = snippetReply({
            project: { id: 42, path },
            registered: {
              projectId: 42,
              path,
              environments: {
                [env]: { environment: env, appObjectId: "o", appId: APP, spObjectId: "s", displayName: "d" },
              },
            },
            policy,
            issuer: "https://gitlab.example.com",
            tenantId: "t",
            request: parseSnippetArgs([variant, env, path], "azure-cli"),
          });
          expectInert(body);
        }
        expectInert(mergeRequestReplyText(12), ["#12"]);
        expectInert(mergeRequestReplyText(undefined));
        const refusing = {
          setSubClaimComponents: async () => {
            throw new GitLabError({
              code: "forbidden",
              status: 403,
              message: path,
              gitlabMessage: { [env]: [path] },
            });
          },
        } as unknown as GitLabApi;
        const unsupported = {
          setSubClaimComponents: async () => ({ status: "unsupported", reason: env }),
        } as unknown as GitLabApi;
        // GitLab's refusal reason reaches the notice (default policy) or the Action needed line (explicit).
        const explicit = parsePolicy(
          `gitlab:\n  subClaimComponents: [project_id, ref_type, ref]\n${BASE_ENVIRONMENTS}`,
          "test",
        );
        for (const gl of [refusing, unsupported]) {
          for (const policy of [basePolicy, explicit]) {
            const live = { id: 42, pathWithNamespace: "g/p", ciIdTokenSubClaimComponents: [env] };
            const r: SubjectResolution = await resolveSubjectComponents(gl, policy, live, {
              write: true,
            });
            const text = r.ok ? r.notice : r.message;
            expect(text).toBeDefined();
            expectInert(text ?? "");
          }
        }
      }),
      { numRuns: 80 },
    );
  });

  it("the injection attempts quoted in issue 14 come out inert", async () => {
    const word = "x`@all`![](https://evil/p.png)";
    const parsed = parseCommand(`/entra ${word}`);
    expect(parsed?.kind).toBe("unknown");
    if (parsed?.kind === "unknown") expectInert(unknownCommandPreface(parsed.word, parsed.suggestion));
    const graph = {
      listApplicationsByTag: async () => [],
      listFederatedCredentials: async () => [],
    } as unknown as GraphApi;
    const body = await doctorReply(
      { graph, policy: basePolicy, issuer: "https://gitlab.example.com" },
      42,
      '{"iss":"https://x\n/move mallory/exfil\n/confidential\n@all", "sub":"project_path:a/b:ref_type:branch:ref:main", "aud":"api://AzureADTokenExchange"}',
    );
    expectInert(body);
  });
});
