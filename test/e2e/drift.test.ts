import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/onboarding/audit.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Drift repair through the real scheduled path: a "drift-repair" job on the maintenance queue, processed by the
 * service's own maintenance worker (the job the BullMQ job scheduler creates every DRIFT_INTERVAL_SECONDS).
 * Each case changes Entra or GitLab behind the bot's back, runs one drift job, then checks the repair in the
 * simulators, the audit trail (GET /admin/audit) and /metrics.
 */

let stack: SandboxStack;
let projectId = 0;
const { alice, dave } = SANDBOX.users;
const AUD = "api://AzureADTokenExchange";
const PATH = "platform/drifty";

interface DriftReport {
  mode: string;
  projects: number;
  renamed: number;
  repaired: number;
  driftFound: number;
  missing: number;
  planned: number;
  live: number;
  done: boolean;
}

/** Adds the job the scheduler would add and waits until the maintenance worker has finished it. */
async function runDrift(): Promise<{ report: DriftReport; logs: string[] }> {
  const queue = stack.service.queues.maintenance;
  const added: Job = await queue.add("drift-repair", {});
  const id = added.id as string;
  let state = "";
  await expect
    .poll(
      async () => {
        state = await queue.getJobState(id);
        return state === "completed" || state === "failed";
      },
      { timeout: 15_000, interval: 50 },
    )
    .toBe(true);
  const job = await queue.getJob(id);
  expect(state, job?.failedReason).toBe("completed");
  const { logs } = await queue.getJobLogs(id);
  // Reports and their GitLab calls run on the reports queue; the drift job itself enqueues none, but wait anyway.
  await settled(stack);
  return { report: job?.returnvalue as DriftReport, logs };
}

function appFor(env: string) {
  return [...stack.entra.state.applications.values()].find(
    (a) => a.tags.includes(`gitlab-project:${projectId}`) && a.tags.includes(`gitlab-env:${env}`),
  );
}
function spFor(env: string) {
  const app = appFor(env);
  return [...stack.entra.state.servicePrincipals.values()].find((s) => s.appId === app?.appId);
}
const subjects = (env: string) =>
  (appFor(env)?.fics ?? []).map((f) => f.subject ?? "").sort((a, b) => a.localeCompare(b));

async function metricsText(): Promise<string> {
  const res = await fetch(`${stack.service.url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}
/** One sample's value, 0 when the series does not exist yet. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const [series, value] = line.split(/\s+/);
    if (want.every((l) => series?.includes(l))) return Number(value);
  }
  return 0;
}
async function driftCounters(kind: string) {
  const text = await metricsText();
  return {
    found: sample(text, "geb_drift_found_total", { kind }),
    repaired: sample(text, "geb_drift_repaired_total", { kind }),
  };
}

/** Each repaired environment: its intended writes, the writes made, one closing record (entra-audit.ts). */
function expectIntendedThenDone(added: AuditRecord[]): AuditRecord[] {
  const intended = added.filter((r) => r.outcome === "intended");
  const done = added.filter((r) => r.outcome === "ok" && r.change.op !== "observe");
  const closing = added.filter((r) => r.change.op === "observe");
  expect(intended.map((r) => [r.environment, r.change.op, r.change.kind, r.change.target])).toEqual(
    done.map((r) => [r.environment, r.change.op, r.change.kind, r.change.target]),
  );
  const series = (r: AuditRecord) => `${r.trigger.eventId} ${r.environment}`;
  expect(closing.map(series).sort()).toEqual([...new Set(done.map(series))].sort());
  for (const r of intended)
    expect(added.indexOf(r)).toBeLessThan(added.indexOf(done[intended.indexOf(r)] as AuditRecord));
  return done;
}

async function driftAudit(): Promise<AuditRecord[]> {
  const res = await fetch(`${stack.service.url}/admin/audit?project=${projectId}&limit=500`, {
    headers: { Authorization: `Bearer ${stack.secrets.adminToken}` },
  });
  expect(res.status).toBe(200);
  const page = (await res.json()) as { records: AuditRecord[] };
  return page.records.filter((r) => r.trigger.event === "drift-repair");
}

async function exchange(env: string, ref: string) {
  const app = appFor(env);
  if (!app) throw new Error(`no app for ${env}`);
  const assertion = await stack.gitlab.mintIdToken({ projectId, ref, refType: "branch", audience: AUD });
  return stack.entra.exchange({ clientId: app.appId, assertion });
}

// Both sweep modes run the same cases and must find and repair the same drift: bulk (read-ahead with $batch and
// GitLab's project listing, DRIFT_SWEEP_MODE's default) and per-project (the original loop, its baseline).
describe.each(["bulk", "per-project"] as const)("drift repair (maintenance job drift-repair, %s)", (mode) => {
  beforeAll(async () => {
    stack = await testStack(`drift-${mode}`, { env: { DRIFT_SWEEP_MODE: mode } });
    const { project } = await stack.driver.createProject(PATH, {
      members: { [alice.id]: 40, [dave.id]: 30 },
    });
    projectId = project.id;
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
  });
  afterAll(async () => {
    await stack?.close();
  });

  // One onboarded project (beforeAll); each test breaks it behind the bot's back and the drift job repairs it,
  // so every test starts and ends with a correct project and can run alone or in any order.
  it("plan first: an already-correct project costs reads and zero Graph writes, and nothing is audited", async () => {
    const auditBefore = (await driftAudit()).length;
    stack.entra.stats.reset();
    stack.gitlab.stats.reset();
    const { report, logs } = await runDrift();
    expect(report).toMatchObject({
      mode,
      done: true,
      projects: 1,
      driftFound: 0,
      repaired: 0,
      renamed: 0,
      missing: 0,
    });
    if (mode === "bulk") {
      // Decided from the read-ahead alone: no per-project read of the app, its owners, FICs or memberships.
      expect(report).toMatchObject({ planned: 1, live: 0 });
      const graph = stack.entra.stats.requests
        .filter((r) => r.kind === "graph")
        .map((r) => `${r.method} ${r.path}`);
      expect(graph.filter((r) => /federatedIdentityCredentials|memberOf|owners/.test(r))).toEqual([]);
      // Principals come from one listing by the bot's tag, not one read each (neither alone nor in a $batch).
      const items = stack.entra.stats.requests.filter((r) => r.kind === "batch-item").map((r) => r.path);
      expect([...graph, ...items].filter((r) => /servicePrincipals\/[0-9a-f-]{36}$/.test(r))).toEqual([]);
      expect(graph.some((r) => r === "GET /v1.0/servicePrincipals")).toBe(true);
      expect(stack.entra.stats.requests.filter((r) => r.kind === "batch").length).toBeGreaterThan(0);
      // GitLab: the project listing, not a read of the project by id.
      const gl = stack.gitlab.stats.log.map((r) => `${r.method} ${r.path}`);
      expect(gl.some((r) => /^GET \/projects$/.test(r))).toBe(true);
      expect(gl.filter((r) => /^GET \/projects\/\d+$/.test(r))).toEqual([]);
    } else {
      expect(stack.entra.stats.requests.filter((r) => r.kind === "batch")).toEqual([]);
    }
    expect(stack.entra.stats.reads()).toBeGreaterThan(0);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(logs.at(-1)).toContain('"driftFound":0');
    expect(await driftAudit()).toHaveLength(auditBefore);
  });

  it("a FIC deleted by hand in Entra is recreated, audited and counted; main logs in again", async () => {
    const prod = appFor("production");
    if (!prod) throw new Error("no production app");
    expect(prod.fics).toHaveLength(1);
    prod.fics.splice(0, prod.fics.length);
    expect((await exchange("production", "main")).status).toBe(400);
    const before = await driftCounters("federatedIdentityCredential");

    const { report } = await runDrift();
    expect(report.driftFound).toBe(1);
    expect(report.repaired).toBe(1);
    // Bulk: the read-ahead saw the difference; only Entra differed, so it was applied without a second plan.
    if (mode === "bulk") expect(report).toMatchObject({ planned: 0, repairedFromPlan: 1, live: 0 });
    expect(subjects("production")).toEqual([`project_path:${PATH}:ref_type:branch:ref:main`]);
    expect((await exchange("production", "main")).status).toBe(200);

    const records = expectIntendedThenDone(await driftAudit());
    const fic = records.filter(
      (r) => r.environment === "production" && r.change.kind === "federatedIdentityCredential",
    );
    expect(fic).toHaveLength(1);
    expect(fic[0]).toMatchObject({
      outcome: "ok",
      change: { op: "create" },
      project: { id: projectId, path: PATH },
      trigger: { event: "drift-repair" },
    });
    const after = await driftCounters("federatedIdentityCredential");
    expect(after.found - before.found).toBe(1);
    expect(after.repaired - before.repaired).toBe(1);
  });

  it("a FIC subject changed by hand is put back (the hand-made subject no longer logs in)", async () => {
    const staging = appFor("staging");
    const develop = staging?.fics.find((f) => f.subject?.endsWith(":ref:develop"));
    if (!staging || !develop) throw new Error("no staging develop FIC");
    develop.subject = `project_path:${PATH}:ref_type:branch:ref:hotfix`;
    const auditBefore = (await driftAudit()).length;
    const before = await driftCounters("federatedIdentityCredential");

    const { report } = await runDrift();
    expect(report).toMatchObject({ driftFound: 1, repaired: 1 });
    expect(subjects("staging")).toEqual([
      `project_path:${PATH}:ref_type:branch:ref:develop`,
      `project_path:${PATH}:ref_type:branch:ref:main`,
    ]);
    expect((await exchange("staging", "develop")).status).toBe(200);
    expect((await exchange("staging", "hotfix")).status).toBe(400);

    const added = expectIntendedThenDone((await driftAudit()).slice(auditBefore));
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      environment: "staging",
      outcome: "ok",
      change: {
        op: "update",
        kind: "federatedIdentityCredential",
        detail: `project_path:${PATH}:ref_type:branch:ref:hotfix -> project_path:${PATH}:ref_type:branch:ref:develop`,
      },
    });
    const after = await driftCounters("federatedIdentityCredential");
    expect(after.found - before.found).toBe(1);
    expect(after.repaired - before.repaired).toBe(1);
  });

  it("a group membership removed by hand is restored, audited and counted", async () => {
    const sp = spFor("production");
    const group = stack.entra.state.groups.get(SANDBOX.productionGroup);
    if (!sp || !group) throw new Error("no production SP or group");
    expect(group.members.has(sp.id)).toBe(true);
    group.members.delete(sp.id);
    const before = await driftCounters("groupMembership");

    const { report } = await runDrift();
    expect(report).toMatchObject({ driftFound: 1, repaired: 1 });
    expect(group.members.has(sp.id)).toBe(true);

    const membership = expectIntendedThenDone(await driftAudit()).filter(
      (r) => r.change.kind === "groupMembership",
    );
    expect(membership).toHaveLength(1);
    expect(membership[0]).toMatchObject({
      environment: "production",
      change: { op: "add", target: SANDBOX.productionGroup, objectId: sp.id },
      outcome: "ok",
    });
    const after = await driftCounters("groupMembership");
    expect(after.found - before.found).toBe(1);
    expect(after.repaired - before.repaired).toBe(1);
  });

  it("a project renamed in GitLab while the bot was down (no webhook) is re-subjected from GitLab's answer", async () => {
    const NEW = "platform/drifty-renamed";
    stack.gitlab.renameProject(projectId, NEW); // the simulator only: GitLab's event never reaches the bot
    const auditBefore = (await driftAudit()).length;
    const before = await driftCounters("project-path");

    const { report, logs } = await runDrift();
    expect(report).toMatchObject({ projects: 1, renamed: 1 });
    expect(logs.join("\n")).toContain(`${PATH} -> ${NEW}`);
    expect(subjects("production")).toEqual([`project_path:${NEW}:ref_type:branch:ref:main`]);
    expect(subjects("staging")).toEqual([
      `project_path:${NEW}:ref_type:branch:ref:develop`,
      `project_path:${NEW}:ref_type:branch:ref:main`,
    ]);
    expect((await exchange("production", "main")).status).toBe(200);

    const added = (await driftAudit()).slice(auditBefore);
    expect(added.filter((r) => r.change.kind === "federatedIdentityCredential").length).toBeGreaterThan(0);
    for (const r of added) expect(r.project).toEqual({ id: projectId, path: NEW });
    const after = await driftCounters("project-path");
    expect(after.found - before.found).toBe(1);
    expect(after.repaired - before.repaired).toBe(1);

    // Repaired for good: the next run finds nothing and writes nothing.
    stack.entra.stats.reset();
    const again = await runDrift();
    expect(again.report).toMatchObject({ driftFound: 0, renamed: 0 });
    expect(stack.entra.stats.writes()).toBe(0);
    expect(await failures(stack)).toEqual([]);

    // Leave the project as the other tests expect it (each test here starts from a correct, known state).
    stack.gitlab.renameProject(projectId, PATH);
    expect((await runDrift()).report).toMatchObject({ renamed: 1 });
    expect(subjects("production")).toEqual([`project_path:${PATH}:ref_type:branch:ref:main`]);
  });
});
