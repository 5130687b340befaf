import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/onboarding/audit.ts";
import { QUEUES } from "../../src/queue/names.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * What an operator sees after a real flow (project_create, then a slash command): the audit trail through
 * GET /admin/audit and the export CLI, the viewer token's limits, and /metrics.
 */

const run = promisify(execFile);
let stack: SandboxStack;
let projectId = 0;
const PATH = "platform/audited";
const { alice, dave } = SANDBOX.users;

beforeAll(async () => {
  stack = await testStack("ops-audit");
  const { project } = await stack.driver.createProject(PATH, { members: { [alice.id]: 40, [dave.id]: 30 } });
  projectId = project.id;
  await settled(stack);
  const issue = stack.gitlab
    .project(projectId)
    ?.issues.find((i) => i.description.includes("gitlab-entra-bot:onboarding"));
  if (!issue) throw new Error("no onboarding issue");
  await stack.driver.comment(projectId, issue.iid, dave.id, "/entra status");
  await settled(stack);
  expect(await failures(stack)).toEqual([]);
});
afterAll(async () => {
  await stack?.close();
});

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

async function auditPage(query: string, token = stack.secrets.adminToken) {
  const res = await fetch(`${stack.service.url}/admin/audit?${query}`, { headers: auth(token) });
  return { status: res.status, body: (await res.json()) as { records: AuditRecord[]; nextCursor?: string } };
}

/** Every record of the project, page by page (small pages, to go through the cursor). */
async function allRecords(token = stack.secrets.adminToken): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const { status, body } = await auditPage(
      `project=${projectId}&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      token,
    );
    expect(status).toBe(200);
    out.push(...body.records);
    if (!body.nextCursor) return out;
    cursor = body.nextCursor;
  }
  throw new Error("audit pagination did not end");
}

describe("audit trail of a real flow", () => {
  let records: AuditRecord[] = [];
  beforeAll(async () => {
    records = await allRecords();
  });

  it("has a record for each kind of change, with trigger, project and environment", () => {
    const kinds = new Set(records.map((r) => r.change.kind));
    for (const kind of [
      "application",
      "servicePrincipal",
      "federatedIdentityCredential",
      "groupMembership",
      "ciVariable",
      "issue",
      "note",
    ] as const) {
      expect(kinds, kind).toContain(kind);
    }
    for (const r of records) {
      expect(r.project).toEqual({ id: projectId, path: PATH });
      expect(["ok", "intended"]).toContain(r.outcome);
      expect(r.trigger.eventId.length).toBeGreaterThan(0);
    }
    // Every Entra write was announced before it was made, and each environment's series is closed.
    const entra = ["application", "servicePrincipal", "federatedIdentityCredential", "groupMembership"];
    const done = records.filter((r) => r.outcome === "ok" && r.change.op !== "observe");
    for (const w of done.filter((r) => entra.includes(r.change.kind))) {
      const announced = records.findIndex(
        (r) =>
          r.outcome === "intended" &&
          r.environment === w.environment &&
          r.trigger.eventId === w.trigger.eventId &&
          r.change.op === w.change.op &&
          r.change.kind === w.change.kind &&
          r.change.target === w.change.target,
      );
      expect(announced, `${w.change.op} ${w.change.kind} ${w.change.target}`).toBeGreaterThanOrEqual(0);
      expect(announced).toBeLessThan(records.indexOf(w));
    }
    expect(
      records
        .filter((r) => r.change.op === "observe" && r.trigger.event.includes("project_create"))
        .map((r) => r.environment)
        .sort(),
    ).toEqual(["production", "staging"]);
    // Entra objects belong to one environment each.
    for (const r of done.filter((x) =>
      ["application", "servicePrincipal", "federatedIdentityCredential", "groupMembership"].includes(
        x.change.kind,
      ),
    )) {
      expect(["staging", "production"]).toContain(r.environment);
      expect(r.trigger.event).toMatch(/project_create/);
    }
    const apps = done.filter((r) => r.change.kind === "application" && r.change.op === "create");
    expect(apps.map((r) => r.environment).sort()).toEqual(["production", "staging"]);
    const fics = done.filter((r) => r.change.kind === "federatedIdentityCredential");
    // production: main; staging: main + develop.
    expect(fics).toHaveLength(3);
    expect(fics.map((r) => r.change.detail).sort()).toEqual([
      `project_path:${PATH}:ref_type:branch:ref:develop`,
      `project_path:${PATH}:ref_type:branch:ref:main`,
      `project_path:${PATH}:ref_type:branch:ref:main`,
    ]);
    // The slash command's answer names who asked.
    const note = records.find((r) => r.change.kind === "note");
    expect(note?.trigger.actor).toMatchObject({ username: dave.username });
  });

  it("holds no secret of the deployment", () => {
    const text = JSON.stringify(records);
    for (const s of [stack.secrets.webhook, stack.secrets.gitlabToken, stack.secrets.azureClientSecret]) {
      expect(text).not.toContain(s);
    }
  });

  it("the export CLI prints the same records as JSON lines", async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      ["src/cli/audit-export.ts", "--project", String(projectId)],
      { env: { ...process.env, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: stack.config.queuePrefix } },
    );
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as AuditRecord);
    expect(lines).toEqual(records);
    expect(stderr).toContain(`exported ${records.length} audit record(s)`);
  });

  it("the viewer token reads the audit trail and the queues but cannot retry; no token gets 401", async () => {
    const viewer = await allRecords(stack.secrets.viewerToken);
    expect(viewer).toEqual(records);

    const base = `${stack.service.url}/admin/queues`;
    const page = await fetch(base, { headers: auth(stack.secrets.viewerToken) });
    expect(page.status).toBe(200);
    await page.text();
    const retry = await fetch(`${base}/api/queues/${QUEUES.events}/retry/failed`, {
      method: "PUT",
      headers: auth(stack.secrets.viewerToken),
    });
    expect(retry.status).toBe(403);
    // The same request with the admin token, from the service's own origin, is accepted (nothing failed, so
    // nothing moves); without proof of same origin it is refused.
    const noOrigin = await fetch(`${base}/api/queues/${QUEUES.events}/retry/failed`, {
      method: "PUT",
      headers: auth(stack.secrets.adminToken),
    });
    expect(noOrigin.status).toBe(403);
    await noOrigin.text();
    const adminRetry = await fetch(`${base}/api/queues/${QUEUES.events}/retry/failed`, {
      method: "PUT",
      headers: { ...auth(stack.secrets.adminToken), Origin: stack.service.url as string },
    });
    expect(adminRetry.status).toBe(200);
    await adminRetry.text();
    const anonymous = await fetch(`${stack.service.url}/admin/audit?project=${projectId}`);
    expect(anonymous.status).toBe(401);
    const wrong = await auditPage(`project=${projectId}`, "not-the-admin-token-at-all");
    expect(wrong.status).toBe(401);
  });
});

describe("/metrics after the flow", () => {
  let text = "";
  beforeAll(async () => {
    const res = await fetch(`${stack.service.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    text = await res.text();
  });

  /** Sum of the samples of `name` whose labels include all of `labels`. */
  function sum(name: string, labels: Record<string, string> = {}): number {
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    let total = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      const cut = line.lastIndexOf(" ");
      const series = line.slice(0, cut);
      if (want.every((l) => series.includes(l))) total += Number(line.slice(cut + 1));
    }
    return total;
  }

  it("counts webhooks by event and outcome, and intake latency", () => {
    expect(sum("geb_webhooks_total", { event: "System Hook", outcome: "accepted" })).toBeGreaterThan(0);
    expect(sum("geb_webhooks_total", { event: "Note Hook", outcome: "accepted" })).toBeGreaterThan(0);
    expect(sum("geb_intake_duration_seconds_count")).toBeGreaterThanOrEqual(2);
  });

  it("counts Graph and GitLab calls by operation and status", () => {
    expect(sum("geb_graph_requests_total")).toBeGreaterThan(0);
    expect(text).toMatch(/^geb_graph_requests_total\{operation="[^"]+",status="20\d"\} [1-9]/m);
    expect(sum("geb_gitlab_requests_total")).toBeGreaterThan(0);
  });

  it("reports jobs per queue and state, and job durations", () => {
    expect(sum("geb_jobs", { queue: QUEUES.events, state: "completed" })).toBeGreaterThanOrEqual(2);
    expect(sum("geb_jobs", { queue: QUEUES.reports, state: "completed" })).toBeGreaterThanOrEqual(2);
    expect(sum("geb_jobs", { queue: QUEUES.events, state: "failed" })).toBe(0);
    expect(sum("geb_job_duration_seconds_count", { outcome: "completed" })).toBeGreaterThanOrEqual(4);
  });
});
