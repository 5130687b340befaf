import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/** Nothing done twice: duplicate deliveries and many concurrent triggers for one project. */
let stack: SandboxStack;
const { alice, dave } = SANDBOX.users;

beforeAll(async () => {
  stack = await testStack("duplicates", { env: { WORKER_CONCURRENCY: "8" } });
});
afterAll(async () => {
  await stack?.close();
});

const appsOf = (projectId: number) =>
  [...stack.entra.state.applications.values()].filter((a) => a.tags.includes(`gitlab-project:${projectId}`));
const onboardingIssues = (projectId: number) =>
  (stack.gitlab.project(projectId)?.issues ?? []).filter((i) =>
    i.description.includes("gitlab-entra-bot:onboarding"),
  );
/** App creations: the bot creates apps with an upsert keyed by uniqueName, which answers 201 when it creates. */
const appPosts = () =>
  stack.entra.stats.requests.filter(
    (r) => r.method === "PATCH" && r.path.startsWith("/v1.0/applications(uniqueName=") && r.status === 201,
  ).length;

function expectOneIdentityPerEnv(projectId: number, path: string) {
  const apps = appsOf(projectId);
  expect(apps.map((a) => a.tags.find((t) => t.startsWith("gitlab-env:"))).sort()).toEqual([
    "gitlab-env:production",
    "gitlab-env:staging",
  ]);
  const subjects = apps.flatMap((a) => a.fics.map((f) => f.subject)).sort();
  expect(subjects).toEqual([
    `project_path:${path}:ref_type:branch:ref:develop`,
    `project_path:${path}:ref_type:branch:ref:main`,
    `project_path:${path}:ref_type:branch:ref:main`,
  ]);
  const sps = [...stack.entra.state.servicePrincipals.values()].filter((s) =>
    apps.some((a) => a.appId === s.appId),
  );
  expect(sps).toHaveLength(2);
}

describe("duplicates and concurrency", () => {
  it("50 concurrent deliveries of one event (same Idempotency-Key): one job, one app per env", async () => {
    stack.entra.stats.reset();
    const path = "dupes/one-event";
    const p = stack.gitlab.addProject({ path, members: { [alice.id]: 40 } });
    const payload = {
      event_name: "project_create",
      project_id: p.id,
      path_with_namespace: path,
      name: "one-event",
      path: "one-event",
    };
    const key = `dupe-${p.id}`;
    const deliveries = await Promise.all(
      Array.from({ length: 50 }, () => stack.driver.send("System Hook", payload, key)),
    );
    const statuses = deliveries.map((d) => d.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    expect(new Set(deliveries.map((d) => d.body.jobId)).size).toBe(1);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    const jobs = await stack.service.queues.events.getJobs(["completed", "failed", "active", "waiting"]);
    expect(jobs.filter((j) => j.data.intent.project?.id === p.id)).toHaveLength(1);
    expectOneIdentityPerEnv(p.id, path);
    expect(appPosts()).toBe(2);
    expect(onboardingIssues(p.id)).toHaveLength(1);
    console.info(
      "[reliability] 50 duplicate deliveries: 1 accepted (202), 49 duplicates (200), 1 job, 2 apps",
    );
  });

  it("10 different triggers for one project at once (create, commands, deployments), with list reads that lag behind creates: one app per env", async () => {
    stack.entra.stats.reset();
    // Every $filter list misses a new app (Entra's replication): only read-your-writes by pinned id can help.
    stack.entra.faults.replication.staleLists = { times: 1_000 };
    const path = "dupes/many-triggers";
    const p = stack.gitlab.addProject({ path, members: { [alice.id]: 40, [dave.id]: 30 } });
    const now = new Date().toISOString();
    p.issues.push({
      id: 900_000 + p.id,
      iid: 1,
      projectId: p.id,
      title: "Azure access please",
      description: "",
      state: "opened",
      labels: [],
      authorId: alice.id,
      confidential: false,
      createdAt: now,
      updatedAt: now,
      notes: [],
    });
    const triggers = [
      () =>
        stack.driver.send("System Hook", {
          event_name: "project_create",
          project_id: p.id,
          path_with_namespace: path,
          name: "many-triggers",
          path: "many-triggers",
        }),
      () => stack.driver.comment(p.id, 1, alice.id, "/entra onboard").then((r) => r.delivery),
      () => stack.driver.comment(p.id, 1, alice.id, "/entra onboard production").then((r) => r.delivery),
      () =>
        stack.driver.comment(p.id, 1, alice.id, "/entra onboard staging production").then((r) => r.delivery),
      () => stack.driver.comment(p.id, 1, dave.id, "/entra onboard staging").then((r) => r.delivery),
      () => stack.driver.comment(p.id, 1, dave.id, "/entra onboard staging").then((r) => r.delivery),
      () => stack.driver.deploy(p.id, "staging", { tier: "staging", user: dave.id }),
      () => stack.driver.deploy(p.id, "staging", { tier: "staging", user: alice.id }),
      () => stack.driver.deploy(p.id, "production", { tier: "production", user: alice.id }),
      () => stack.driver.deploy(p.id, "staging", { tier: "staging", ref: "develop", user: dave.id }),
    ];
    const deliveries = await Promise.all(triggers.map((t) => t()));
    expect(deliveries.map((d) => d.status)).toEqual(Array(10).fill(202));
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    expectOneIdentityPerEnv(p.id, path);
    expect(appPosts()).toBe(2);
    expect(onboardingIssues(p.id)).toHaveLength(1);
    const jobs = (await stack.service.queues.events.getJobs(["completed"])).filter(
      (j) => j.data.intent.project?.id === p.id,
    );
    expect(jobs).toHaveLength(10);
    stack.entra.faults.replication.staleLists = null;
    console.info(
      `[reliability] 10 concurrent triggers: ${jobs.length} jobs, 1 onboarding issue, ${appPosts()} application creations, ${stack.entra.stats.writes()} Graph writes in all`,
    );
  });
});
