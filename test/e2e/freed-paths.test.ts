import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "../../src/onboarding/registry.ts";
import { RetiredIdentities } from "../../src/onboarding/retired.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import {
  AUD,
  aadsts,
  appFor,
  auditOf,
  exchange,
  onboardingIssues,
  RETIRED,
  retiredState,
  subjectsOf,
} from "../helpers/e2e.ts";
import { simBotSp, simGraph } from "../helpers/entra.ts";
import { deletePrefix, TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Fail closed on freed paths, with every way GitLab can free a path without telling the bot: deleted without
 * an event, pending deletion (renamed `-deletion_scheduled-`), renamed without an event, the path now held by
 * another project, a subgroup transfer (GitLab sends no event for it at all). The sandbox policy uses
 * `project_path` subjects, the ones a freed path puts at risk. The proof is a token exchange: a newcomer at the
 * freed path mints a GitLab ID token whose `sub` names that path and presents it with the old identity's client
 * id, which is public (a CI variable).
 */
let stack: SandboxStack;
const { alice } = SANDBOX.users;
const eve = { id: 8, username: "eve", name: "Eve (newcomer)" };

beforeAll(async () => {
  stack = await testStack("freed-paths");
  stack.gitlab.addUser(eve);
});
afterAll(async () => {
  await stack?.close();
});

interface DriftReport {
  projects: number;
  renamed: number;
  missing: number;
  pendingDeletion: number;
  retired: number;
  purged: number;
}

/** Adds the job the drift scheduler would add and waits until the maintenance worker has finished it. */
async function runDrift(): Promise<{ report: DriftReport; logs: string[] }> {
  const queue = stack.service.queues.maintenance;
  const added: Job = await queue.add("drift-repair", {});
  const id = added.id as string;
  await expect
    .poll(async () => ["completed", "failed"].includes(await queue.getJobState(id)), {
      timeout: 20_000,
      interval: 50,
    })
    .toBe(true);
  const job = await queue.getJob(id);
  expect(job?.failedReason).toBeUndefined();
  await settled(stack);
  return { report: job?.returnvalue as DriftReport, logs: (await queue.getJobLogs(id)).logs };
}

/** A project onboarded through its project_create event: staging and production, path-headed subjects. */
async function onboarded(path: string) {
  const { project } = await stack.driver.createProject(path, { members: { [alice.id]: 40 } });
  await settled(stack);
  const production = appFor(stack, project.id, "production")?.appId as string;
  expect(production).toBeTruthy();
  expect((await exchange(stack, project.id, "production", "main")).status).toBe(200);
  return { id: project.id, production };
}

/** Someone else's new project at `path`; GitLab sends the bot nothing about it (no group hook there). */
const newcomer = (path: string) => stack.gitlab.addProject({ path, members: { [eve.id]: 50 } }).id;

/** The newcomer's `main` pipeline presents its own ID token with the old identity's (public) client id. */
async function newcomerLogin(newcomerId: number, clientId: string) {
  const assertion = await stack.gitlab.mintIdToken({
    projectId: newcomerId,
    ref: "main",
    refType: "branch",
    audience: AUD,
  });
  return stack.entra.exchange({ clientId, assertion });
}

describe("fail closed on freed paths, for every event GitLab does not send", () => {
  it("deleted without an event (404): drift retires the identities; a newcomer at the freed path cannot log in", async () => {
    const old = await onboarded("reuse/deleted");
    stack.gitlab.removeProject(old.id);

    const { report } = await runDrift();
    expect(report).toMatchObject({ missing: 1, retired: 1 });
    // Kept for the audit trail: the app and its principal exist, disabled, without a credential or a group.
    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);
    expect(retiredState(stack, old.id, "staging")).toEqual(RETIRED);

    const taker = newcomer("reuse/deleted");
    const res = await newcomerLogin(taker, old.production);
    expect(res.status).toBe(400);
    expect(aadsts(res.body)).toBe(7000112);

    // Audited like every Entra write: each retirement write announced (intended), then recorded (ok), then one
    // closing record per environment.
    const records = (await auditOf(stack, old.id)).filter((r) => r.trigger.event === "drift-repair");
    const writes = (outcome: string) =>
      records
        .filter((r) => r.outcome === outcome && r.change.op !== "observe")
        .map((r) => [r.environment, r.change.op, r.change.kind])
        .sort();
    const expected = [
      ["production", "delete", "federatedIdentityCredential"],
      ["production", "update", "servicePrincipal"],
      ["production", "remove", "groupMembership"],
      ["production", "update", "application"],
      ["staging", "delete", "federatedIdentityCredential"],
      ["staging", "delete", "federatedIdentityCredential"],
      ["staging", "update", "servicePrincipal"],
      ["staging", "remove", "groupMembership"],
      ["staging", "update", "application"],
    ].sort();
    expect(writes("intended")).toEqual(expected);
    expect(writes("ok")).toEqual(expected);
    expect(
      records
        .filter((r) => r.change.op === "observe" && r.change.kind === "application")
        .map((r) => r.environment),
    ).toEqual(expect.arrayContaining(["production", "staging"]));
    expect(await failures(stack)).toEqual([]);
  });

  it("the newcomer's own project_create is the first signal: the old identity is retired before the newcomer is onboarded", async () => {
    const old = await onboarded("reuse/first-signal");
    stack.gitlab.removeProject(old.id);
    const { project: taker } = await stack.driver.createProject("reuse/first-signal", {
      members: { [eve.id]: 50 },
    });
    await settled(stack);

    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);
    expect((await newcomerLogin(taker.id, old.production)).status).toBe(400);
    // The newcomer gets identities of its own, which work.
    expect(appFor(stack, taker.id, "production")?.appId).not.toBe(old.production);
    expect((await exchange(stack, taker.id, "production", "main")).status).toBe(200);
    // Ordered in the audit trail (one Redis stream): the old credentials went before the new ones were made.
    const lastRetire = (await auditOf(stack, old.id))
      .filter((r) => r.change.kind === "federatedIdentityCredential" && r.change.op === "delete")
      .at(-1)?.id;
    const firstCreate = (await auditOf(stack, taker.id)).find((r) => r.change.op === "create")?.id;
    expect(lastRetire && firstCreate && streamIdBefore(lastRetire, firstCreate)).toBe(true);
    expect(await failures(stack)).toEqual([]);
  });

  it("pending deletion (renamed -deletion_scheduled-): retired, the onboarding issue says so; restored, /entra onboard brings it back", async () => {
    const old = await onboarded("reuse/pending");
    const scheduled = stack.gitlab.scheduleDeletion(old.id);
    expect(scheduled.path).toBe(`reuse/pending-deletion_scheduled-${old.id}`);

    const { report } = await runDrift();
    expect(report).toMatchObject({ pendingDeletion: 1, retired: 1 });
    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);
    const issue = onboardingIssues(stack, old.id)[0];
    expect(issue?.description).toMatch(/The Azure identities of this project are retired/);
    expect(issue?.description).toMatch(/pending deletion/);
    const taker = newcomer("reuse/pending");
    expect((await newcomerLogin(taker, old.production)).status).toBe(400);

    // The owner restores the project under another path (the old one is taken now) and asks for access again.
    stack.gitlab.renameProject(old.id, "reuse/pending-restored");
    const restored = stack.gitlab.project(old.id);
    if (!restored || !issue) throw new Error("no restored project or issue");
    restored.markedForDeletionOn = null;
    const { delivery } = await stack.driver.comment(old.id, issue.iid, alice.id, "/entra onboard");
    expect(delivery.status).toBe(202);
    await settled(stack);
    expect(appFor(stack, old.id, "production")?.appId).toBe(old.production);
    expect(retiredState(stack, old.id, "production")).toMatchObject({
      accountEnabled: true,
      retiredTag: false,
    });
    expect(subjectsOf(stack, old.id, "production")).toEqual([
      "project_path:reuse/pending-restored:ref_type:branch:ref:main",
    ]);
    expect((await exchange(stack, old.id, "production", "main")).status).toBe(200);
    expect((await newcomerLogin(taker, old.production)).status).toBe(400);
    expect(await failures(stack)).toEqual([]);
  });

  it("renamed without an event: re-subjected to GitLab's path; the old path's subjects are gone", async () => {
    const old = await onboarded("reuse/renamed");
    stack.gitlab.renameProject(old.id, "reuse/renamed-v2");

    const { report, logs } = await runDrift();
    expect(report).toMatchObject({ renamed: 1 });
    expect(logs.join("\n")).toContain("reuse/renamed -> reuse/renamed-v2");
    expect(subjectsOf(stack, old.id, "production")).toEqual([
      "project_path:reuse/renamed-v2:ref_type:branch:ref:main",
    ]);
    expect((await exchange(stack, old.id, "production", "main")).status).toBe(200);
    const taker = newcomer("reuse/renamed");
    const res = await newcomerLogin(taker, old.production);
    expect(res.status).toBe(400);
    expect(aadsts(res.body)).not.toBe(7000112); // not disabled: the project lives on; its subjects moved
    expect(await failures(stack)).toEqual([]);
  });

  it("the path now belongs to another project id: retired as path-reused (without the bot, the newcomer would log in)", async () => {
    const old = await onboarded("reuse/taken");
    stack.gitlab.removeProject(old.id);
    const taker = newcomer("reuse/taken");
    // What this guards against: before the bot learns of it, the old credentials accept the newcomer's token.
    expect((await newcomerLogin(taker, old.production)).status).toBe(200);

    const { report, logs } = await runDrift();
    expect(report).toMatchObject({ missing: 1, retired: 1 });
    expect(logs.join("\n")).toMatch(/former path now belongs to another project/);
    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);
    expect((await newcomerLogin(taker, old.production)).status).toBe(400);
  });

  it("a subgroup transfer (GitLab sends no event): the projects below are re-subjected", async () => {
    const old = await onboarded("reuse/team/sub/api");
    for (const p of [...stack.gitlab.state.projects]) {
      if (p.path.startsWith("reuse/team/sub/"))
        stack.gitlab.renameProject(p.id, p.path.replace("reuse/team/sub/", "reuse/other/sub/"));
    }
    const { report } = await runDrift();
    expect(report).toMatchObject({ renamed: 1 });
    expect(subjectsOf(stack, old.id, "production")).toEqual([
      "project_path:reuse/other/sub/api:ref_type:branch:ref:main",
    ]);
    expect((await exchange(stack, old.id, "production", "main")).status).toBe(200);
    const taker = newcomer("reuse/team/sub/api");
    expect((await newcomerLogin(taker, old.production)).status).toBe(400);
  });

  it("retention: drift deletes a retired identity once policy retention.disabledIdentityDays is over, and audits it", async () => {
    const old = await onboarded("reuse/expiring");
    stack.gitlab.removeProject(old.id);
    await runDrift();
    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);
    // Still within the 30 days: kept.
    expect((await runDrift()).report.purged).toBe(0);
    expect(appFor(stack, old.id, "production")).toBeDefined();

    // 31 days later: the retirement date, as the retired list and the app's tags in Entra record it.
    const longAgo = new Date(Date.now() - 31 * 24 * 3600 * 1000);
    for (const app of stack.entra.state.applications.values()) {
      if (!app.tags.includes(`gitlab-project:${old.id}`)) continue;
      app.tags = app.tags.map((t) =>
        t.startsWith("gitlab-retired-on:") ? `gitlab-retired-on:${longAgo.toISOString()}` : t,
      );
    }
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const retired = new RetiredIdentities(redis, stack.config.queuePrefix);
      for (const env of ["production", "staging"]) {
        const entry = await retired.get(old.id, env);
        if (!entry) throw new Error(`no retired entry for ${env}`);
        await retired.record(old.id, entry.path, entry.pin, longAgo);
      }
    } finally {
      await redis.quit();
    }
    const { report } = await runDrift();
    expect(report.purged).toBe(2);
    expect(appFor(stack, old.id, "production")).toBeUndefined();
    expect(appFor(stack, old.id, "staging")).toBeUndefined();
    const deleted = (await auditOf(stack, old.id)).filter(
      (r) => r.change.kind === "application" && r.change.op === "delete",
    );
    expect(deleted.map((r) => r.environment).sort()).toEqual(["production", "staging"]);
    // Retired identities of other projects, retired recently, are kept.
    expect(
      [...stack.entra.state.applications.values()].filter((a) => a.tags.includes("gitlab-retired")).length,
    ).toBeGreaterThan(0);
    expect(await failures(stack)).toEqual([]);
  });
});

describe("retired identities after Redis loss", () => {
  it("the registry rebuild from Entra puts retired apps back on the retention list, never in the registry", async () => {
    const old = await onboarded("reuse/rebuilt");
    stack.gitlab.removeProject(old.id);
    await runDrift();
    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);

    const redis = new Redis(TEST_REDIS_URL);
    try {
      const registry = new Registry(redis, stack.config.queuePrefix);
      const retired = new RetiredIdentities(redis, stack.config.queuePrefix);
      await deletePrefix(`${stack.config.queuePrefix}:registry`);
      expect(await retired.get(old.id, "production")).toBeUndefined();

      const graph = simGraph(stack.entra, {
        clientId: SANDBOX.botClientId,
        clientSecret: stack.secrets.azureClientSecret,
      });
      const rebuilt = await registry.rebuildFromEntra(
        graph,
        simBotSp(graph, { clientId: SANDBOX.botClientId }),
      );
      expect(rebuilt.projects.map((p) => p.projectId)).not.toContain(old.id);
      expect(await registry.get(old.id)).toBeUndefined();
      expect((await retired.get(old.id, "production"))?.pin.appId).toBe(old.production);
      expect((await retired.get(old.id, "staging"))?.pin.appObjectId).toBeTruthy();
    } finally {
      await redis.quit();
    }
    // Drift repair leaves it retired: no credential comes back.
    await runDrift();
    expect(retiredState(stack, old.id, "production")).toEqual(RETIRED);
    expect(await failures(stack)).toEqual([]);
  });
});

function streamIdBefore(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am < bm || (am === bm && as < bs);
}
