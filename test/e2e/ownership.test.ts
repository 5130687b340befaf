import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/onboarding/audit.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appFor, appsOf, exchange, onboardingIssues, RETIRED, retiredState } from "../helpers/e2e.ts";
import { type PlantedApp, plantApp } from "../helpers/entra.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The planted-app attack and Entra's replication, end to end: webhooks in, jobs through BullMQ, the bot's real
 * clients against the simulators. A tenant user registers an app carrying the tags of a project's identity
 * (the bot used to find its apps by those tags and adopt them); the bot must give the project its own working
 * identity, report the look-alike (log, metric, audit, onboarding issue), and never write to it.
 */
let stack: SandboxStack;
const { alice } = SANDBOX.users;
const MALLORY = "3b3b3b3b-1111-2222-3333-444444444444";

beforeAll(async () => {
  stack = await testStack("ownership", {
    env: { ENTRA_REPLICATION_RETRY_MS: "2", JOB_BACKOFF_MS: "50" },
  });
});
afterAll(async () => {
  await stack?.close();
});

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${stack.service.url}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const [series, value] = line.split(/\s+/);
    if (want.every((l) => series?.includes(l))) return Number(value);
  }
  return 0;
}

async function audit(projectId: number): Promise<AuditRecord[]> {
  const res = await fetch(`${stack.service.url}/admin/audit?project=${projectId}&limit=500`, {
    headers: { Authorization: `Bearer ${stack.secrets.adminToken}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { records: AuditRecord[] }).records;
}

function expectUntouched(planted: PlantedApp, before: string) {
  expect(planted.snapshot()).toBe(before);
  expect(planted.groups()).toEqual([]);
  const ids = [planted.app.id, planted.app.appId, planted.sp?.id].filter((x): x is string => !!x);
  const writes = stack.entra.stats.requests.filter(
    (r) => r.method !== "GET" && r.kind !== "login" && ids.some((id) => r.path.includes(id)),
  );
  expect(writes).toEqual([]);
}

/** The events job for a project, and its log lines. */
async function jobLogs(projectId: number): Promise<string[]> {
  const jobs = (await stack.service.queues.events.getJobs(["completed", "failed"])).filter(
    (j: Job) => j.data.intent.project?.id === projectId,
  );
  const lines: string[] = [];
  for (const j of jobs) lines.push(...(await stack.service.queues.events.getJobLogs(j.id as string)).logs);
  return lines;
}

async function runDrift(): Promise<string[]> {
  const queue = stack.service.queues.maintenance;
  const added = await queue.add("drift-repair", {});
  const id = added.id as string;
  await expect
    .poll(async () => ["completed", "failed"].includes(await queue.getJobState(id)), {
      timeout: 20_000,
      interval: 50,
    })
    .toBe(true);
  expect(await queue.getJobState(id), (await queue.getJob(id))?.failedReason).toBe("completed");
  return (await queue.getJobLogs(id)).logs;
}

describe("the planted-app attack", () => {
  it("copied tags for the next project: project_create gives it its own working identity; the planted app gets nothing", async () => {
    const id = 9101;
    const path = "acme/target";
    const planted = ["production", "staging"].map((environment) =>
      plantApp(stack.entra, { projectId: id, environment, path, owners: [MALLORY], ownFic: true }),
    );
    const before = planted.map((p) => p.snapshot());
    const collisionsBefore = await metric("geb_ownership_collisions_total", { where: "onboarding" });
    stack.entra.stats.reset();

    await stack.driver.createProject(path, { id, members: { [alice.id]: 40 } });
    await settled(stack);
    expect(await failures(stack)).toEqual([]);

    // The project's own identity: made and owned by the bot, and it works.
    const mine = appsOf(stack, id);
    expect(mine).toHaveLength(2);
    expect(mine.some((a) => planted.some((p) => p.app.id === a.id))).toBe(false);
    expect((await exchange(stack, id, "production", "main")).status).toBe(200);
    expect((await exchange(stack, id, "staging", "develop")).status).toBe(200);
    const variables = stack.gitlab.project(id)?.variables ?? [];
    expect(
      variables.find((v) => v.key === "AZURE_CLIENT_ID" && v.environmentScope === "production")?.value,
    ).toBe(appFor(stack, id, "production")?.appId);
    expect(
      stack.entra.state.groups
        .get(SANDBOX.productionGroup)
        ?.members.has(
          [...stack.entra.state.servicePrincipals.values()].find(
            (s) => s.appId === appFor(stack, id, "production")?.appId,
          )?.id ?? "",
        ),
    ).toBe(true);

    // The planted apps: no FIC, no group, no write of any kind; their own credential cannot log in as the project.
    planted.forEach((p, i) => {
      expectUntouched(p, before[i] as string);
    });
    expect((await exchange(stack, id, "production", "main", planted[0]?.app.appId)).status).not.toBe(200);

    // Raised: metric, audit (refused), and a line in the onboarding issue.
    expect(await metric("geb_ownership_collisions_total", { where: "onboarding" })).toBe(
      collisionsBefore + 2,
    );
    const refusals = (await audit(id)).filter(
      (r) => r.change.op === "refuse" && r.change.kind === "application",
    );
    expect(refusals.map((r) => [r.change.target, r.outcome]).sort()).toEqual(
      planted.map((p) => [p.app.id, "refused"]).sort(),
    );
    const issue = onboardingIssues(stack, id)[0];
    for (const p of planted) {
      expect(issue?.description).toContain(`app registration \`${p.app.id}\` is tagged as this project's`);
    }
    expect(issue?.description).toContain("not owned by the bot alone");
    console.info(
      `[reliability] planted apps for a new project: own identity logs in; ${planted.length} look-alikes, 0 writes to them, ${refusals.length} refusals audited, ${planted.length} issue lines`,
    );
  });

  it("an onboarded project: drift repair and project_destroy never adopt or touch a look-alike (foreign owner, or the bot plus another)", async () => {
    const { project } = await stack.driver.createProject("acme/onboarded", { members: { [alice.id]: 40 } });
    await settled(stack);
    const identities = appsOf(stack, project.id)
      .map((a) => a.id)
      .sort();
    expect(identities).toHaveLength(2);
    const foreign = plantApp(stack.entra, {
      projectId: project.id,
      environment: "production",
      path: project.path,
      owners: [MALLORY],
    });
    const coOwned = plantApp(stack.entra, {
      projectId: project.id,
      environment: "staging",
      path: project.path,
      owners: [stack.entra.botServicePrincipalId, MALLORY],
    });
    const before = [foreign.snapshot(), coOwned.snapshot()];
    const driftCollisions = await metric("geb_ownership_collisions_total", { where: "drift" });
    stack.entra.stats.reset();

    const logs = await runDrift();
    expect(stack.entra.stats.writes()).toBe(0);
    expect(
      appsOf(stack, project.id)
        .map((a) => a.id)
        .sort(),
    ).toEqual(identities);
    expect(logs.join("\n")).toContain(`refused application ${foreign.app.id}`);
    expect(logs.join("\n")).toContain(`refused application ${coOwned.app.id}`);
    // Counted per sighting: this project's two, plus those of every other project the drift job checked.
    expect(await metric("geb_ownership_collisions_total", { where: "drift" })).toBeGreaterThanOrEqual(
      driftCollisions + 2,
    );
    const driftRefusals = (await audit(project.id)).filter(
      (r) => r.trigger.event === "drift-repair" && r.change.op === "refuse",
    );
    expect(driftRefusals.map((r) => r.change.target).sort()).toEqual([foreign.app.id, coOwned.app.id].sort());
    expect((await exchange(stack, project.id, "production", "main")).status).toBe(200);

    // A second drift run reports the standing condition in its log, but audits it once a day only.
    await runDrift();
    expect(
      (await audit(project.id)).filter((r) => r.trigger.event === "drift-repair" && r.change.op === "refuse"),
    ).toHaveLength(2);

    // The next report to the project says it too: `/entra onboard` writes a line per look-alike in the issue.
    const issue = onboardingIssues(stack, project.id)[0];
    if (!issue) throw new Error("no onboarding issue");
    await stack.driver.comment(project.id, issue.iid, alice.id, "/entra onboard");
    await settled(stack);
    for (const p of [foreign, coOwned]) {
      expect(onboardingIssues(stack, project.id)[0]?.description).toContain(
        `app registration \`${p.app.id}\``,
      );
    }
    expect(
      appsOf(stack, project.id)
        .map((a) => a.id)
        .sort(),
    ).toEqual(identities);

    const offboarding = await metric("geb_ownership_collisions_total", { where: "offboarding" });
    await stack.driver.deleteProject(project.id);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    // GitLab confirms the destroy: the bot's own identities are retired (kept, disabled, without credentials).
    expect(
      appsOf(stack, project.id)
        .map((a) => a.id)
        .sort(),
    ).toEqual(identities);
    expect(retiredState(stack, project.id, "production")).toEqual(RETIRED);
    expect(retiredState(stack, project.id, "staging")).toEqual(RETIRED);
    expectUntouched(foreign, before[0] as string);
    expectUntouched(coOwned, before[1] as string);
    expect(await metric("geb_ownership_collisions_total", { where: "offboarding" })).toBe(offboarding + 2);
  });
});

describe("memberships in groups no policy rule names", () => {
  it("drift repair reports them (job log, metric, audit observe) and never removes them", async () => {
    const { project } = await stack.driver.createProject("acme/granted", { members: { [alice.id]: 40 } });
    await settled(stack);
    const app = appFor(stack, project.id, "production");
    const sp = [...stack.entra.state.servicePrincipals.values()].find((s) => s.appId === app?.appId);
    if (!sp) throw new Error("no service principal");
    const other = "77777777-7777-4777-8777-777777777777";
    stack.entra.state.groups.set(other, {
      id: other,
      displayName: "finance-readers",
      description: null,
      members: new Set([sp.id]),
    });
    const found = await metric("geb_drift_found_total", { kind: "unmanagedGroupMembership" });
    stack.entra.stats.reset();
    const logs = await runDrift();
    expect(stack.entra.stats.writes()).toBe(0);
    expect(stack.entra.state.groups.get(other)?.members.has(sp.id)).toBe(true);
    expect(logs.join("\n")).toContain(`production: observed groupMembership ${other}`);
    expect(await metric("geb_drift_found_total", { kind: "unmanagedGroupMembership" })).toBe(found + 1);
    const observed = (await audit(project.id)).filter(
      (r) => r.change.op === "observe" && r.change.kind === "groupMembership",
    );
    expect(observed.map((r) => [r.change.target, r.change.objectId, r.trigger.event])).toEqual([
      [other, sp.id, "drift-repair"],
    ]);
  });
});

describe("Entra's replication answers, through the job queue", () => {
  const modes: Array<[string, () => void, RegExp]> = [
    [
      "400 NoBackingApplicationObject",
      () => {
        stack.entra.faults.replication.spCreate = { answer: "no-backing-application", times: 3 };
      },
      /waiting for Entra to replicate app registration [0-9a-f-]{36} \(client id [0-9a-f-]{36}\) before its service principal can be created, attempt \d/,
    ],
    [
      "403 '…must in the local tenant'",
      () => {
        stack.entra.faults.replication.spCreate = { answer: "not-local-tenant", times: 3 };
      },
      /waiting for Entra to replicate app registration .*When using this permission, the backing application/,
    ],
    [
      "404 on the group add naming the new principal",
      () => {
        stack.entra.faults.replication.memberAdd = { times: 3 };
      },
      /waiting for Entra to replicate service principal [0-9a-f-]{36} \(client id [0-9a-f-]{36}\), attempt 3/,
    ],
    [
      "lists that lag behind creates",
      () => {
        stack.entra.faults.replication.staleLists = { times: 1_000 };
      },
      /production: changed/,
    ],
  ];
  modes.forEach(([name, setup, logged], i) => {
    it(`${name}: onboarding completes, one app per environment, no job fails, the log says what was waited for`, async () => {
      stack.entra.faults.reset();
      setup();
      const { project } = await stack.driver.createProject(`replication/mode-${i}`, {
        members: { [alice.id]: 40 },
      });
      await settled(stack);
      stack.entra.faults.reset();
      expect(await failures(stack)).toEqual([]);
      expect(
        appsOf(stack, project.id)
          .map((a) => a.tags.find((t) => t.startsWith("gitlab-env:")))
          .sort(),
      ).toEqual(["gitlab-env:production", "gitlab-env:staging"]);
      const logs = await jobLogs(project.id);
      expect(
        logs.some((l) => logged.test(l)),
        logs.join("\n"),
      ).toBe(true);
      expect(logs.join("\n")).not.toMatch(/Grant the bot|does not exist in the tenant/);
      expect((await exchange(stack, project.id, "production", "main")).status).toBe(200);
      expect(onboardingIssues(stack, project.id)).toHaveLength(1);
      const waits = logs.filter((l) => l.includes("waiting for Entra to replicate")).length;
      console.info(`[reliability] replication, ${name}: 0 failed jobs, 2 apps, ${waits} waits logged`);
    });
  });

  it("a create whose answer was lost (504 after Graph made the app): the job's retry gets the same app back", async () => {
    stack.entra.faults.reset();
    stack.entra.faults.failNext(1, 504, { pathIncludes: "applications(uniqueName=", committed: true });
    stack.entra.faults.replication.staleLists = { times: 1_000 };
    const { project } = await stack.driver.createProject("replication/lost-answer", {
      members: { [alice.id]: 40 },
    });
    await settled(stack);
    stack.entra.faults.reset();
    expect(await failures(stack)).toEqual([]);
    expect(appsOf(stack, project.id)).toHaveLength(2);
    const job = (await stack.service.queues.events.getJobs(["completed"])).find(
      (j: Job) => j.data.intent.project?.id === project.id,
    );
    expect(job?.attemptsStarted ?? 0).toBeGreaterThanOrEqual(2); // the first attempt failed and was retried
    console.info(
      `[reliability] create answer lost (504 after the create): ${appsOf(stack, project.id).length} apps after ${job?.attemptsStarted ?? 0} attempts`,
    );
    const logs = await jobLogs(project.id);
    expect(
      logs.some(
        (l) => /created by an earlier attempt/.test(l) || /found app registration .* earlier attempt/.test(l),
      ),
    ).toBe(true);
  });
});
