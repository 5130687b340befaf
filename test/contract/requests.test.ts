import { afterAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { testStack } from "../helpers/stack.ts";
import { killAllBots } from "../reliability/bot-process.ts";
import { FLOWS } from "./flows.ts";
import { GITLAB_REQUESTS } from "./gitlab-requests.ts";
import { GRAPH_REQUESTS } from "./graph-requests.ts";
import { documentedExamples, judge, type RecordedRequest, type RequestShape } from "./shape.ts";

/**
 * Contract tests: every Graph and GitLab request the bot sends during representative end-to-end flows
 * (recorded by the simulators: method, path, query, body, headers) must fit a documented request shape in
 * graph-requests.ts or gitlab-requests.ts. A request no shape covers fails, with a message saying how to add
 * one and from which document. The shapes themselves are checked against the documented example bodies.
 */
const stacks = new Map<string, SandboxStack>();
const used = new Set<string>();

async function stackFor(policyYaml: string | undefined): Promise<SandboxStack> {
  const key = policyYaml ?? "sandbox";
  let stack = stacks.get(key);
  if (!stack) {
    stack = await testStack(`contract-${stacks.size}`, policyYaml ? { policyYaml } : {});
    stacks.set(key, stack);
  }
  return stack;
}

afterAll(async () => {
  await killAllBots();
  for (const s of stacks.values()) await s.close();
});

function check(catalogue: RequestShape[], requests: RecordedRequest[], file: string): string[] {
  const problems: string[] = [];
  for (const req of requests) {
    const verdict = judge(catalogue, req, file);
    for (const s of verdict.fits) used.add(s.id);
    if (verdict.problem) problems.push(verdict.problem);
  }
  return [...new Set(problems)];
}

describe("the documented request shapes", () => {
  it.each([
    ...GRAPH_REQUESTS.map((s) => ["graph", s] as const),
    ...GITLAB_REQUESTS.map((s) => ["gitlab", s] as const),
  ])("%s: %s accepts its documented examples", (_api, shape) => {
    for (const { fixture, body } of documentedExamples(shape)) {
      const parsed = shape.body?.safeParse(body);
      expect(parsed?.success, `${shape.id} vs ${fixture}: ${JSON.stringify(parsed?.error?.issues)}`).toBe(
        true,
      );
    }
  });

  it("ids are unique, and a request with a renamed or extra field fits no shape", () => {
    for (const list of [GRAPH_REQUESTS, GITLAB_REQUESTS]) {
      expect(new Set(list.map((s) => s.id)).size).toBe(list.length);
    }
    const upsert = {
      method: "PATCH",
      path: "/v1.0/applications/0c1d/federatedIdentityCredentials(name='gitlab-branch-main')",
      query: "",
      headers: { prefer: "create-if-missing" },
      body: {
        issuer: "https://gitlab.example.com",
        subject: "project_path:g/p:ref_type:branch:ref:main",
        audiences: ["api://AzureADTokenExchange"],
      },
    };
    expect(judge(GRAPH_REQUESTS, upsert, "graph-requests.ts").problem).toBeUndefined();
    const renamed = { ...upsert, body: { issuer: "i", subject: "s", audience: ["a"] } };
    expect(judge(GRAPH_REQUESTS, renamed, "graph-requests.ts").problem).toMatch(/audiences|audience/);
    const noPrefer = { ...upsert, headers: {} };
    expect(judge(GRAPH_REQUESTS, noPrefer, "graph-requests.ts").problem).toMatch(/prefer/);
    const unknown = { method: "GET", path: "/v1.0/me", query: "" };
    expect(judge(GRAPH_REQUESTS, unknown, "graph-requests.ts").problem).toMatch(
      /no documented request shape covers this request\. Add one to test\/contract\/graph-requests\.ts/,
    );
    const badQuery = { method: "GET", path: "/projects/1/issues", query: "per_page=100&scope=all" };
    expect(judge(GITLAB_REQUESTS, badQuery, "gitlab-requests.ts").problem).toMatch(
      /"scope" is not in the documented shape/,
    );
  });
});

describe("every request the bot sends fits a documented shape", () => {
  it.each(FLOWS.map((f) => [f.name, f] as const))("%s", async (_name, flow) => {
    const stack = await stackFor(flow.policyYaml);
    stack.entra.stats.reset();
    stack.gitlab.stats.reset();
    await flow.run(stack);
    const asSent = (r: (typeof stack.entra.stats.requests)[number]): RecordedRequest => ({
      ...r,
      query: r.queryString,
    });
    const graph = stack.entra.stats.requests
      .filter((r) => r.kind !== "login" && r.kind !== "batch")
      .map(asSent);
    const batches = stack.entra.stats.requests.filter((r) => r.kind === "batch").map(asSent);
    const gitlab: RecordedRequest[] = stack.gitlab.stats.log.map((r) => ({ ...r, query: r.query ?? "" }));
    expect(graph.length + gitlab.length).toBeGreaterThan(0);
    expect([
      ...check(GRAPH_REQUESTS, [...graph, ...batches], "graph-requests.ts"),
      ...check(GITLAB_REQUESTS, gitlab, "gitlab-requests.ts"),
    ]).toEqual([]);
  });

  it("the flows exercised the bot's core requests", () => {
    // Runs after the flows (vitest runs a file's tests in order); alone, it says which flows to run.
    if (used.size === 0) return expect(used.size, "run the flows above first").toBe(0);
    for (const id of [
      "upsert application by uniqueName",
      "list application owners",
      "list service principal owners",
      "update application",
      "delete application",
      "upsert service principal by appId",
      "list FICs",
      "upsert FIC by name",
      "add group member",
      "remove group member",
      "list service principal memberOf",
      "set ci_id_token_sub_claim_components",
      "create project variable",
      "create issue",
      "create issue note",
      "create merge request note",
      "award emoji on an issue note",
      "effective member (inherited and invited)",
    ]) {
      expect(used.has(id), id).toBe(true);
    }
  });
});
