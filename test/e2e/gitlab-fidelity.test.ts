import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RateLimitWindow } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appFor, botNotes, onboardingIssues, openIssue } from "../helpers/e2e.ts";
import { inertnessProblems } from "../helpers/gitlab-markdown-oracle.ts";
import { e2ePolicyYaml } from "../helpers/policy.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * GitLab as it really answers (reference/gitlab.md §8b), through the whole stack: the sub-claim setting on
 * GitLab 17.9 (400) and for a bot below the needed role (403) is an "Action needed" line, not a lost report;
 * 429s with Retry-After, with RateLimit-* only, and with no header at all are waited out without hammering.
 * Also `/entra snippet`, the policy's default variant and commands written in merge-request comments.
 */
let stack: SandboxStack;
const { alice, dave } = SANDBOX.users;

beforeAll(async () => {
  // The policy without privileged-environment binding (e2ePolicyYaml), so that the only sub-claim write is
  // the report's project_id step these cases are about.
  const policyYaml = e2ePolicyYaml()
    .replace(
      "subClaimComponents: [project_path, ref_type, ref]",
      "subClaimComponents: [project_id, ref_type, ref]",
    )
    .concat("snippet:\n  variant: terraform\n");
  // 1 s is the first pause after a 429 that says nothing (then 2 s, 4 s, ... jittered down to half).
  stack = await testStack("fidelity", { policyYaml, env: { JOB_BACKOFF_MS: "1000" } });
});
afterAll(async () => {
  await stack?.close();
});

let seq = 0;
async function onboardedProject(
  opts: { subClaimSupport?: "modern" | "absent"; before?: (id: number) => void } = {},
) {
  seq += 1;
  const project = stack.gitlab.addProject({
    path: `fidelity/app-${seq}`,
    members: { [alice.id]: 40, [dave.id]: 30 },
    ...(opts.subClaimSupport ? { subClaimSupport: opts.subClaimSupport } : {}),
  });
  const issue = openIssue(stack, project.id, alice.id, "Azure please");
  opts.before?.(project.id);
  const { delivery } = await stack.driver.comment(project.id, issue.iid, alice.id, "/entra onboard staging");
  expect(delivery.status).toBe(202);
  await settled(stack);
  return { project, issue };
}

/** The rest of the report happened: variables, onboarding issue, reply. */
function expectReportComplete(projectId: number, issueIid: number) {
  const p = stack.gitlab.project(projectId);
  expect(p?.variables.map((v) => `${v.key}@${v.environmentScope}`).sort()).toEqual([
    "AZURE_CLIENT_ID@staging",
    "AZURE_TENANT_ID@*",
  ]);
  expect(onboardingIssues(stack, projectId)).toHaveLength(1);
  expect(botNotes(stack, projectId, issueIid)).toHaveLength(1);
}

/**
 * The policy names [project_id, ref_type, ref] explicitly and this GitLab cannot mint it: no credential is
 * written (it could never match GitLab's tokens, and the explicit choice is not weakened to path subjects),
 * so there is no client id for the variables; the report still goes on, saying why, and no job fails.
 */
function expectRefusedReportComplete(projectId: number, issueIid: number) {
  expect(appFor(stack, projectId, "staging")).toBeUndefined();
  expect(stack.gitlab.project(projectId)?.variables).toEqual([]);
  expect(onboardingIssues(stack, projectId)).toHaveLength(1);
  expect(botNotes(stack, projectId, issueIid)).toHaveLength(1);
}

const requests = (projectId: number, method: string, suffix: string) =>
  stack.gitlab.stats.log.filter((r) => r.method === method && r.path === `/projects/${projectId}${suffix}`);

describe("the sub-claim setting is a separate, non-fatal step", () => {
  it("GitLab 17.9 answers 400 (at least one parameter): Action needed, and the report goes on", async () => {
    stack.gitlab.stats.reset();
    const { project, issue } = await onboardedProject({ subClaimSupport: "absent" });
    expect(requests(project.id, "PUT", "").map((r) => r.status)).toEqual([400]);
    expectRefusedReportComplete(project.id, issue.iid);
    const text = onboardingIssues(stack, project.id)[0]?.description ?? "";
    expect(text).toContain("**Action needed**");
    expect(text).toContain("17.10");
    expect(botNotes(stack, project.id, issue.iid)[0]?.body).toContain("**Action needed**");
    expect(await failures(stack)).toEqual([]);
  });

  it("a bot below the required role gets 403: Action needed naming the role, the report goes on", async () => {
    stack.gitlab.stats.reset();
    const { project, issue } = await onboardedProject({
      before: (id) =>
        stack.gitlab.faults.failNext(1, 403, { pathIncludes: `/projects/${id}`, method: "PUT" }),
    });
    expect(requests(project.id, "PUT", "").map((r) => r.status)).toEqual([403]);
    expectRefusedReportComplete(project.id, issue.iid);
    expect(onboardingIssues(stack, project.id)[0]?.description).toMatch(/Action needed.*Maintainer role/s);
    expect(await failures(stack)).toEqual([]);
  });
});

describe("429s are waited out as GitLab asks, or backed off, never hammered", () => {
  const cases: [RateLimitWindow["kind"], number, number][] = [
    // kind, window (ms), most refused POSTs allowed while it lasts
    ["rack-attack", 4000, 1], // Retry-After: one refusal, then the wait covers the window
    ["ratelimit-only", 4000, 1], // RateLimit-Reset alone (a 1 s retry loop would knock 4 times)
    ["application", 6000, 4], // no header: 1, 2, 4 s (jittered >= half): at most 4 (a 1 s loop: 6)
  ];
  for (const [kind, windowMs, most] of cases) {
    it(`${kind}: the report completes with at most ${most} refused attempt(s) over a ${windowMs / 1000} s window`, async () => {
      stack.gitlab.stats.reset();
      const { project, issue } = await onboardedProject({
        before: (id) => {
          stack.gitlab.faults.rateLimitWindow = {
            kind,
            forMs: windowMs,
            pathIncludes: `/projects/${id}/issues`,
            method: "POST",
          };
        },
      });
      stack.gitlab.faults.rateLimitWindow = undefined;
      const posts = requests(project.id, "POST", "/issues").map((r) => r.status);
      const refused = posts.filter((s) => s === 429).length;
      expect(refused).toBeGreaterThanOrEqual(1);
      expect(refused).toBeLessThanOrEqual(most);
      expect(posts.at(-1)).toBe(201);
      expectReportComplete(project.id, issue.iid);
      expect(await failures(stack)).toEqual([]);
    });
  }
});

describe("/entra snippet and the policy's default variant", () => {
  it("the onboarding issue uses the policy's variant; /entra snippet shows another on demand", async () => {
    const { project, issue } = await onboardedProject();
    const description = onboardingIssues(stack, project.id)[0]?.description ?? "";
    expect(description).toContain('ARM_USE_OIDC: "true"');
    expect(description).toContain('ARM_SUBSCRIPTION_ID: "$AZURE_SUBSCRIPTION_ID"');
    for (const [variant, marker] of [
      ["azure-sdk", "WorkloadIdentityCredential"],
      ["azure-cli", "az login --service-principal"],
      ["terraform", "ARM_OIDC_TOKEN"],
    ] as const) {
      await stack.driver.comment(project.id, issue.iid, dave.id, `/entra snippet ${variant} staging`);
      await settled(stack);
      const body = botNotes(stack, project.id, issue.iid)[0]?.body ?? "";
      expect(body, variant).toContain(marker);
      expect(body).toContain("### `staging`");
      expect(inertnessProblems(body)).toEqual([]);
    }
    await stack.driver.comment(project.id, issue.iid, dave.id, "/entra snippet azure-cli production");
    await settled(stack);
    expect(botNotes(stack, project.id, issue.iid)[0]?.body).toMatch(/No Azure identity for `production`/);
  });
});

describe("commands in merge-request comments", () => {
  it("get one short reply pointing to the onboarding issue, and nothing else happens", async () => {
    const { project } = await onboardedProject();
    const onboarding = onboardingIssues(stack, project.id)[0];
    const mr = stack.gitlab.addMergeRequest(project.id, "Add deploy job", dave.id);
    stack.entra.stats.reset();
    const appsBefore = stack.entra.state.applications.size;
    const { delivery } = await stack.driver.commentOnMergeRequest(
      project.id,
      mr.iid,
      dave.id,
      "/entra onboard production",
    );
    expect(delivery.status).toBe(202);
    await settled(stack);
    const replies = mr.notes.filter((n) => n.authorId === stack.gitlab.botUser.id);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.internal).toBe(false);
    expect(replies[0]?.body).toContain(`onboarding issue #${onboarding?.iid}`);
    expect(inertnessProblems(replies[0]?.body ?? "", { allowedReferences: [`#${onboarding?.iid}`] })).toEqual(
      [],
    );
    expect(stack.entra.stats.writes()).toBe(0);
    expect(stack.entra.state.applications.size).toBe(appsBefore);
    expect(appFor(stack, project.id, "production")).toBeUndefined();

    // An internal MR note gets an internal answer.
    await stack.driver.commentOnMergeRequest(project.id, mr.iid, dave.id, "/entra status", {
      internal: true,
    });
    await settled(stack);
    const all = mr.notes.filter((n) => n.authorId === stack.gitlab.botUser.id);
    expect(all.map((n) => n.internal)).toEqual([false, true]);
    expect(await failures(stack)).toEqual([]);
  });
});
