import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { aadsts, RETIRED, retiredState } from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

let stack: SandboxStack;
const { alice, dave, rita } = SANDBOX.users;
const AUD = "api://AzureADTokenExchange";

beforeAll(async () => {
  stack = await testStack("flow");
});
afterAll(async () => {
  await stack?.close();
});

function appFor(projectId: number, env: string) {
  return [...stack.entra.state.applications.values()].find(
    (a) => a.tags.includes(`gitlab-project:${projectId}`) && a.tags.includes(`gitlab-env:${env}`),
  );
}

async function exchange(projectId: number, env: string, ref: string) {
  const app = appFor(projectId, env);
  if (!app) throw new Error(`no app for ${projectId}/${env}`);
  const assertion = await stack.gitlab.mintIdToken({ projectId, ref, refType: "branch", audience: AUD });
  return stack.entra.exchange({ clientId: app.appId, assertion });
}

function onboardingIssue(projectId: number) {
  const issues = stack.gitlab.project(projectId)?.issues ?? [];
  return issues.filter((i) => i.description.includes("gitlab-entra-bot:onboarding"));
}

/** Each test onboards its own project, so any one of them can run alone. */
async function onboarded(path: string): Promise<number> {
  const { project, delivery } = await stack.driver.createProject(path, {
    members: { [alice.id]: 40, [dave.id]: 30, [rita.id]: 20 },
  });
  expect(delivery.status).toBe(202);
  await settled(stack);
  expect(await failures(stack)).toEqual([]);
  return project.id;
}

describe("a webhook becomes credentials and a comment", () => {
  it("project_create: two identities, FICs, groups, CI variables and one onboarding issue with a snippet", async () => {
    const projectId = await onboarded("platform/payments");

    const prod = appFor(projectId, "production");
    const staging = appFor(projectId, "staging");
    expect(prod && staging).toBeTruthy();
    expect([...(prod?.fics.values() ?? [])].map((f) => f.subject)).toEqual([
      "project_path:platform/payments:ref_type:branch:ref:main",
    ]);
    expect([...(staging?.fics.values() ?? [])].map((f) => f.subject).sort()).toEqual([
      "project_path:platform/payments:ref_type:branch:ref:develop",
      "project_path:platform/payments:ref_type:branch:ref:main",
    ]);

    const issues = onboardingIssue(projectId);
    expect(issues).toHaveLength(1);
    const yamlBlocks = [...(issues[0]?.description ?? "").matchAll(/```yaml\n([\s\S]*?)```/g)].map(
      (m) => m[1] ?? "",
    );
    expect(yamlBlocks).toHaveLength(2);
    for (const block of yamlBlocks) expect(() => parseYaml(block)).not.toThrow();
    expect(issues[0]?.description).toContain(prod?.appId);

    // The job log tells an operator what was planned and written, one line per write.
    const events = await stack.service.queues.events.getCompleted();
    const created = events.find(
      (j) => j.name === "project.created" && j.data.intent?.project?.id === projectId,
    );
    const log = (await stack.service.queues.events.getJobLogs(created?.id as string)).logs.join("\n");
    expect(log).toMatch(
      /production: plan .*1 credential\(s\) \[project_path:platform\/payments:ref_type:branch:ref:main\]/,
    );
    expect(log).toMatch(/ create application /);
    expect(log).toMatch(/ add groupMembership /);

    const vars = stack.gitlab.project(projectId)?.variables ?? [];
    expect(vars.find((v) => v.key === "AZURE_CLIENT_ID" && v.environmentScope === "production")?.value).toBe(
      prod?.appId,
    );
    expect(vars.find((v) => v.key === "AZURE_TENANT_ID")?.value).toBe(SANDBOX.tenantId);
  });

  it("the credentials work: main logs in to production, a feature branch does not, staging is not production", async () => {
    const projectId = await onboarded("flow/credentials");
    expect((await exchange(projectId, "production", "main")).status).toBe(200);
    const feature = await exchange(projectId, "production", "feature/x");
    expect(feature.status).toBe(400);
    expect(JSON.stringify(feature.body)).toMatch(/AADSTS700213|AADSTS70021/);
    expect((await exchange(projectId, "staging", "develop")).status).toBe(200);
    expect((await exchange(projectId, "production", "develop")).status).toBe(400);
    const stagingSp = [...stack.entra.state.servicePrincipals.values()].find(
      (s) => s.appId === appFor(projectId, "staging")?.appId,
    );
    const prodGroup = stack.entra.state.groups.get(SANDBOX.productionGroup);
    expect(stagingSp && prodGroup).toBeTruthy();
    expect(prodGroup?.members.has(stagingSp?.id ?? "")).toBe(false);
  });

  it("a redelivered project_create changes nothing: no Graph write, still one issue", async () => {
    const projectId = await onboarded("flow/redelivered");
    stack.entra.stats.reset();
    const p = stack.gitlab.project(projectId);
    if (!p) throw new Error("project gone");
    const res = await stack.driver.send("System Hook", {
      event_name: "project_create",
      project_id: p.id,
      path_with_namespace: p.path,
      name: "redelivered",
      path: "redelivered",
    });
    expect(res.status).toBe(202);
    await settled(stack);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(onboardingIssue(projectId)).toHaveLength(1);
  });

  it("/entra commands in the onboarding issue: help, refusal for a reporter, plan, onboard", async () => {
    const projectId = await onboarded("flow/commands");
    const iid = onboardingIssue(projectId)[0]?.iid as number;
    const statusNote = () =>
      stack.gitlab
        .project(projectId)
        ?.issues.find((i) => i.iid === iid)
        ?.notes.filter((n) => n.body.includes("gitlab-entra-bot:status")) ?? [];

    await stack.driver.comment(projectId, iid, dave.id, "/entra halp");
    await settled(stack);
    expect(statusNote()).toHaveLength(1);
    expect(statusNote()[0]?.body).toMatch(/Did you mean `\/entra help`/);

    stack.entra.stats.reset();
    await stack.driver.comment(projectId, iid, rita.id, "/entra onboard production");
    await settled(stack);
    expect(statusNote()).toHaveLength(1);
    expect(statusNote()[0]?.body).toMatch(/Maintainer/);
    expect(stack.entra.stats.requests.filter((r) => r.kind !== "login")).toHaveLength(0);

    await stack.driver.comment(projectId, iid, dave.id, "/entra plan staging");
    await settled(stack);
    expect(statusNote()[0]?.body).toMatch(/Plan only/);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(await failures(stack)).toEqual([]);
  });

  it("rename: the old path stops working, the new one works", async () => {
    const projectId = await onboarded("flow/renamed");
    const res = await stack.driver.renameProject(projectId, "flow/renamed-v2");
    expect(res.status).toBe(202);
    await settled(stack);
    expect((await exchange(projectId, "production", "main")).status).toBe(200);
    const subjects = [...(appFor(projectId, "production")?.fics.values() ?? [])].map((f) => f.subject);
    expect(subjects).toEqual(["project_path:flow/renamed-v2:ref_type:branch:ref:main"]);
  });

  it("project_destroy (GitLab confirms: 404): identities retired, tokens no longer exchange", async () => {
    const projectId = await onboarded("flow/destroyed");
    const prodAppId = appFor(projectId, "production")?.appId as string;
    const assertion = await stack.gitlab.mintIdToken({
      projectId,
      ref: "main",
      refType: "branch",
      audience: AUD,
    });
    const res = await stack.driver.deleteProject(projectId);
    expect(res.status).toBe(202);
    await settled(stack);
    // Kept for the audit trail, but with no credential, disabled and out of every group.
    expect(retiredState(stack, projectId, "production")).toEqual(RETIRED);
    expect(retiredState(stack, projectId, "staging")).toEqual(RETIRED);
    const after = await stack.entra.exchange({ clientId: prodAppId, assertion });
    expect(after.status).toBe(400);
    expect(aadsts(after.body)).toBe(7000112);
    expect(await failures(stack)).toEqual([]);
  });
});
