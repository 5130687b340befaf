import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import type { AuditRecord } from "../../src/onboarding/audit.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { cleanUpEnvironments, goneSinceKey } from "../../workers/environment-cleanup.ts";
import { createWorkContext } from "../../workers/handlers/context.ts";
import type { WorkerRuntime } from "../../workers/runtime.ts";
import { plantApp } from "../helpers/entra.ts";
import { e2ePolicyYaml } from "../helpers/policy.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Issue 16 item 2: identities of environments GitLab stopped or deleted are removed after the policy's grace
 * period, against the simulators with the real clients. The cleanup runs as drift repair runs it, with an
 * injected `now` standing in for the days that pass; GitLab changes are made in the GitLab simulator.
 */

let stack: SandboxStack;
let run = 0;
let rt: WorkerRuntime;
let projectId = 0;
let path = "";
const { alice, dave } = SANDBOX.users;
const MALLORY = "9e0c1a52-0000-4000-8000-00000000abcd";
const DAY = 24 * 3600 * 1000;
// review/** (not review/*) so that a name may hold slashes: the hostile name below needs one.
const POLICY = `${e2ePolicyYaml().replace('"review/*":', '"review/**":')}
retention:
  retainStoppedEnvironmentDays: 7
`;

// Both drift modes call the cleanup for every project: bulk from its read-ahead path and from the live path,
// per-project from the live path.
describe.each(["bulk", "per-project"] as const)("environment cleanup, drift %s", (mode) => {
  beforeAll(async () => {
    run = 0;
    stack = await testStack(`env-cleanup-${mode}`, { policyYaml: POLICY, env: { DRIFT_SWEEP_MODE: mode } });
    rt = stack.service.workers?.runtime as WorkerRuntime;
    const { project } = await stack.driver.createProject("platform/reviews", {
      members: { [alice.id]: 40, [dave.id]: 30 },
    });
    projectId = project.id;
    path = project.path;
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** One cleanup as drift repair runs it (trigger drift-repair), `days` after the real now. */
  async function cleanup(days = 0) {
    run += 1;
    const logs: string[] = [];
    const job = { id: `env-cleanup-${run}`, log: async (l: string) => logs.push(l) } as unknown as Job;
    const trigger = {
      event: "drift-repair",
      eventId: `drift-env-cleanup-${run}`,
      receivedAt: new Date().toISOString(),
      source: { kind: "internal" as const },
      signed: false,
    };
    const ctx = createWorkContext(rt, trigger, job, createLogger("silent"), "drift");
    const out = await cleanUpEnvironments(
      ctx,
      { id: projectId, path },
      { now: new Date(Date.now() + days * DAY) },
    );
    await settled(stack);
    return { ...out, logs, eventId: trigger.eventId };
  }

  const apps = (env: string) =>
    [...stack.entra.state.applications.values()].filter(
      (a) => a.tags.includes(`gitlab-project:${projectId}`) && a.tags.includes(`gitlab-env:${env}`),
    );
  const botApp = (env: string) => apps(env).find((a) => !a.owners.includes(MALLORY));
  /** Everything in Entra, as JSON: an adversarial case asserts it did not change at all. */
  const entraSnapshot = () =>
    JSON.stringify({
      apps: [...stack.entra.state.applications.values()],
      sps: [...stack.entra.state.servicePrincipals.values()],
    });
  const registry = () => new Registry(rt.redis, stack.config.queuePrefix);

  async function deployed(env: string) {
    const d = await stack.driver.deploy(projectId, env, { user: dave.id });
    expect(d.status).toBe(202);
    await settled(stack);
    expect(botApp(env), `identity of ${env}`).toBeDefined();
  }

  async function auditOf(eventId: string): Promise<AuditRecord[]> {
    const res = await fetch(`${stack.service.url}/admin/audit?project=${projectId}&limit=500`, {
      headers: { Authorization: `Bearer ${stack.secrets.adminToken}` },
    });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { records: AuditRecord[] };
    return page.records.filter((r) => r.trigger.eventId === eventId);
  }
  const issueText = () =>
    stack.gitlab
      .project(projectId)
      ?.issues.map((i) => `${i.description}\n${i.notes.map((n) => n.body).join("\n")}`)
      .join("\n") ?? "";

  describe("environment cleanup (issue 16: identities of environments GitLab no longer has)", () => {
    it("stopped review app: waits out the grace period, then FICs, SP and app go, audited, reported", async () => {
      await deployed("review/one");
      // First sight recorded on the pin that GitLab's API lists the environment.
      expect((await registry().getPin(projectId, "review/one"))?.environmentSeenAt).toBeTruthy();
      const app = botApp("review/one");
      const appId = app?.appId;
      expect(app?.fics.length).toBeGreaterThan(0);

      stack.driver.stopEnvironment(projectId, "review/one");
      const before = entraSnapshot();
      const waiting = await cleanup();
      expect(waiting).toMatchObject({ removed: [], waiting: ["review/one"], reported: [] });
      expect(entraSnapshot()).toBe(before);
      expect(
        await rt.redis.hget(goneSinceKey(stack.config.queuePrefix, projectId), "review/one"),
      ).toBeTruthy();
      // Six days on: still waiting, nothing written.
      expect((await cleanup(6)).waiting).toEqual(["review/one"]);
      expect(entraSnapshot()).toBe(before);

      const done = await cleanup(8);
      expect(done).toMatchObject({ removed: ["review/one"], waiting: [] });
      expect(botApp("review/one")).toBeUndefined();
      expect([...stack.entra.state.servicePrincipals.values()].some((s) => s.appId === appId)).toBe(false);
      expect(await registry().getPin(projectId, "review/one")).toBeUndefined();
      // staging and production were made on project creation; GitLab never had them: not gone, kept.
      expect(botApp("staging")).toBeDefined();
      expect(botApp("production")).toBeDefined();
      expect(await rt.redis.hget(goneSinceKey(stack.config.queuePrefix, projectId), "review/one")).toBeNull();

      const audit = await auditOf(done.eventId);
      const intended = audit
        .filter((r) => r.outcome === "intended")
        .map((r) => `${r.change.op} ${r.change.kind}`);
      const made = audit
        .filter((r) => r.outcome === "ok" && r.change.op !== "observe" && r.change.kind !== "issue")
        .map((r) => `${r.change.op} ${r.change.kind}`);
      expect(intended).toEqual(made);
      expect(made).toEqual(
        expect.arrayContaining([
          "delete federatedIdentityCredential",
          "delete servicePrincipal",
          "delete application",
        ]),
      );
      expect(audit.every((r) => r.environment === undefined || r.environment === "review/one")).toBe(true);
      expect(issueText()).toContain(
        "Removed the Azure identities of environments GitLab no longer has:** `review/one`",
      );

      const metrics = await (await fetch(`${stack.service.url}/metrics`)).text();
      expect(metrics).toMatch(/geb_drift_repaired_total\{kind="environment-gone"\} [1-9]/);
      expect(await failures(stack)).toEqual([]);
    });

    it("deleted in GitLab (stopped, then deleted): removed after the grace period too", async () => {
      await deployed("review/two");
      stack.driver.stopEnvironment(projectId, "review/two");
      stack.driver.deleteEnvironment(projectId, "review/two");
      expect((await cleanup()).waiting).toEqual(["review/two"]);
      expect(botApp("review/two")).toBeDefined();
      expect((await cleanup(7)).removed).toEqual(["review/two"]);
      expect(botApp("review/two")).toBeUndefined();
      expect(await registry().getPin(projectId, "review/two")).toBeUndefined();
    });

    it("an environment restarted in between clears the clock", async () => {
      await deployed("review/three");
      stack.driver.stopEnvironment(projectId, "review/three");
      expect((await cleanup()).waiting).toEqual(["review/three"]);
      await stack.driver.deploy(projectId, "review/three", { user: dave.id });
      await settled(stack);
      expect((await cleanup(1)).waiting).toEqual([]);
      expect(
        await rt.redis.hget(goneSinceKey(stack.config.queuePrefix, projectId), "review/three"),
      ).toBeNull();
      // Stopped again 8 days later: a new clock from then, so nothing is removed at that run.
      stack.driver.stopEnvironment(projectId, "review/three");
      const again = await cleanup(8);
      expect(again).toMatchObject({ removed: [], waiting: ["review/three"] });
      expect(botApp("review/three")).toBeDefined();
      // Leave it available for the next cases.
      stack.gitlab.deployEnvironment(projectId, "review/three");
      expect((await cleanup(9)).waiting).toEqual([]);
    });

    it("privileged environment: kept, named in the job log with how to remove it, audited once a day", async () => {
      stack.gitlab.deployEnvironment(projectId, "production");
      await cleanup(); // GitLab lists it now: marked seen
      stack.driver.stopEnvironment(projectId, "production");
      expect((await cleanup(1)).waiting).toEqual(["production"]);
      const before = entraSnapshot();
      const first = await cleanup(30);
      expect(first.reported).toEqual(["production"]);
      expect(first.removed).toEqual([]);
      expect(entraSnapshot()).toBe(before);
      expect(first.logs.join("\n")).toContain("/entra offboard production");
      expect((await auditOf(first.eventId)).map((r) => [r.change.op, r.environment, r.message])).toEqual([
        [
          "observe",
          "production",
          "privileged: never removed automatically; /entra offboard production removes it",
        ],
      ]);
      const second = await cleanup(31);
      expect(second.reported).toEqual(["production"]);
      expect(await auditOf(second.eventId)).toEqual([]);
      expect(botApp("production")).toBeDefined();
    });

    it("drift repair runs the cleanup per project and reports environmentsRemoved", async () => {
      stack.driver.stopEnvironment(projectId, "review/three");
      const queue = stack.service.queues.maintenance;
      const added = await queue.add("drift-repair", {});
      const id = added.id as string;
      await expect
        .poll(async () => ["completed", "failed"].includes(await queue.getJobState(id)), {
          timeout: 15_000,
          interval: 50,
        })
        .toBe(true);
      const job = await queue.getJob(id);
      expect(await queue.getJobState(id), job?.failedReason).toBe("completed");
      expect(job?.returnvalue).toMatchObject({ projects: 1, environmentsRemoved: 0 });
      const { logs } = await queue.getJobLogs(id);
      expect(logs.join("\n")).toContain(
        `environment review/three of project ${projectId}: stopped in GitLab since`,
      );
      expect(botApp("review/three")).toBeDefined();
      stack.gitlab.deployEnvironment(projectId, "review/three");
    });

    it("adversarial: a look-alike app tagged for the environment, not the bot's, is not touched", async () => {
      await deployed("review/four");
      const planted = plantApp(stack.entra, {
        projectId,
        environment: "review/four",
        path,
        owners: [MALLORY],
      });
      const plantedBefore = JSON.stringify(stack.entra.state.applications.get(planted.app.id));
      stack.driver.stopEnvironment(projectId, "review/four");
      await cleanup();
      expect((await cleanup(8)).removed).toEqual(["review/four"]);
      expect(botApp("review/four")).toBeUndefined();
      expect(JSON.stringify(stack.entra.state.applications.get(planted.app.id))).toBe(plantedBefore);
    });

    it("adversarial: an environment name with markdown and quick-action text stays inert in the report", async () => {
      const hostile = "review/x` @all #1 ~bug [link](https://evil.example) <img src=x> /close";
      await deployed(hostile);
      stack.driver.stopEnvironment(projectId, hostile);
      await cleanup();
      const done = await cleanup(8);
      expect(done.removed).toEqual([hostile]);
      const text = issueText();
      const line = text.split("\n").find((l) => l.includes("evil.example") && l.includes("Removed")) ?? "";
      expect(line).not.toBe("");
      // No line starts with a quick action; the name is inside a code span, whose fence it cannot close.
      expect(text.split("\n").some((l) => /^\s*\//.test(l))).toBe(false);
      expect(line).toContain("``review/x` @all #1 ~bug [link](https://evil.example) <img src=x> /close``");
      expect(await failures(stack)).toEqual([]);
    });
  });
});
