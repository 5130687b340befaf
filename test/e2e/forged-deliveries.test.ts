import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metrics } from "../../src/http/metrics.ts";
import { signWebhook } from "../../src/http/verify.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { snapshot } from "../../src/sandbox/entra-sim/state.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appsOf, exchange, onboardingIssues } from "../helpers/e2e.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, jobsInAnyState, settled, testStack } from "../helpers/stack.ts";

/**
 * The attacks of issue 11 with a group hook secret, against the whole sandbox (real intake, queue, workers,
 * Graph client and simulators): a group owner who holds their own group's secret forges deliveries about
 * another team's project. Entra must not change at all: no Graph write, the same apps, FICs and memberships,
 * and the victim's pipelines still log in as before.
 */
const ACME_SECRET = `acme-${randomUUID()}`;
const SIGNED_SECRET = `signed-${randomUUID()}`;
const SIGNED_TOKEN = `whsec_${Buffer.from(randomUUID().replace(/-/g, "")).toString("base64")}`;
const { alice } = SANDBOX.users;

let stack: SandboxStack;
let redis: Redis;
let audit: AuditLog;
let victim = 0;
let victimIssue = 0;

beforeAll(async () => {
  stack = await testStack("forged", {
    env: {
      GITLAB_GROUP_WEBHOOK_SECRETS: `acme=${ACME_SECRET},signed-team=${SIGNED_SECRET}`,
      GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: `signed-team=${SIGNED_TOKEN}`,
    },
  });
  redis = new Redis(TEST_REDIS_URL);
  audit = new AuditLog(redis, { key: `${stack.config.queuePrefix}:audit` });
  const { project } = await stack.driver.createProject("victim/payments", { members: { [alice.id]: 50 } });
  victim = project.id;
  stack.gitlab.addProject({ path: "acme/tools", members: { [alice.id]: 50 } });
  await settled(stack);
  victimIssue = onboardingIssues(stack, victim)[0]?.iid ?? 0;
  expect(appsOf(stack, victim)).toHaveLength(2);
  expect(victimIssue).toBeGreaterThan(0);
});
afterAll(async () => {
  await redis?.quit();
  await stack?.close();
});

function post(event: string, body: unknown, headers: Record<string, string>) {
  return fetch(`${stack.service.url}/webhooks/gitlab`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Gitlab-Event": event,
      "X-Gitlab-Instance": stack.gitlab.url,
      "Idempotency-Key": randomUUID(),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Deliveries of every event kind the bot acts on, naming the victim's project or namespace. */
function forgeries(): Array<[string, string, Record<string, unknown>]> {
  const path = "victim/payments";
  const projectObject = {
    id: victim,
    name: "payments",
    path_with_namespace: path,
    web_url: `${stack.gitlab.url}/${path}`,
  };
  const system = { project_id: victim, path_with_namespace: "acme/stolen", name: "stolen", path: "stolen" };
  const user = { id: alice.id, username: alice.username, name: alice.name };
  return [
    [
      "System Hook",
      "project_rename",
      { event_name: "project_rename", ...system, old_path_with_namespace: path },
    ],
    [
      "System Hook",
      "project_transfer",
      { event_name: "project_transfer", ...system, old_path_with_namespace: path },
    ],
    [
      "System Hook",
      "project_destroy",
      { event_name: "project_destroy", ...system, path_with_namespace: path },
    ],
    ["System Hook", "project_create", { event_name: "project_create", ...system }],
    [
      "System Hook",
      "group_rename",
      { event_name: "group_rename", group_id: 1, full_path: "acme", old_full_path: "victim" },
    ],
    [
      "System Hook",
      "user_rename",
      { event_name: "user_rename", user_id: 1, username: "acme", old_username: "victim" },
    ],
    [
      "Project Hook",
      "project_destroy",
      { event_name: "project_destroy", project_id: victim, path_with_namespace: path },
    ],
    [
      "Project Hook",
      "project_create",
      { event_name: "project_create", project_id: victim, path_with_namespace: path },
    ],
    ...(["Note Hook", "Confidential Note Hook"] as const).map(
      (event): [string, string, Record<string, unknown>] => [
        event,
        "offboard",
        {
          object_kind: "note",
          user,
          project: projectObject,
          object_attributes: {
            id: 990_001,
            note: "/entra offboard production staging",
            noteable_type: "Issue",
            action: "create",
            system: false,
          },
          issue: { iid: victimIssue, confidential: false },
        },
      ],
    ),
    [
      "Deployment Hook",
      "review",
      {
        object_kind: "deployment",
        status: "running",
        environment: "review/evil",
        project: projectObject,
        user,
        ref: "develop",
      },
    ],
    [
      "Pipeline Hook",
      "review",
      {
        object_kind: "pipeline",
        object_attributes: { ref: "develop" },
        project: projectObject,
        user,
        builds: [{ environment: { name: "review/evil2" } }],
      },
    ],
    [
      "Job Hook",
      "review",
      {
        object_kind: "build",
        ref: "develop",
        project_id: victim,
        project: projectObject,
        user,
        environment: { name: "review/evil3" },
      },
    ],
    // Look-alike namespace: acme-evil is not acme.
    [
      "Deployment Hook",
      "look-alike",
      {
        object_kind: "deployment",
        environment: "review/x",
        project: { id: victim, path_with_namespace: "acme-evil/payments" },
        user,
      },
    ],
  ];
}

async function refusedTotal(): Promise<number> {
  const m = await metrics.deliveriesRefusedTotal.get();
  return m.values.filter((v) => v.labels.stage === "intake").reduce((a, v) => a + v.value, 0);
}
async function refusedRecords(): Promise<number> {
  let count = 0;
  for await (const _ of audit.exportAll({ outcome: "refused" })) count++;
  return count;
}

describe("forged deliveries with a group hook secret change nothing in Entra", () => {
  it("every event kind, with acme's secret and with signed-team's (unsigned, or signed but out of bounds)", async () => {
    const before = JSON.stringify(snapshot(stack.entra.state));
    const jobsBefore = await jobsInAnyState(stack.service.queues.events);
    stack.entra.stats.reset();
    const metricBefore = await refusedTotal();
    const auditBefore = await refusedRecords();
    let sent = 0;
    for (const [event, what, body] of forgeries()) {
      const raw = JSON.stringify(body);
      const plain = await post(event, raw, { "X-Gitlab-Token": ACME_SECRET });
      expect(plain.status, `${event} ${what} (acme)`).toBe(403);
      const unsigned = await post(event, raw, { "X-Gitlab-Token": SIGNED_SECRET });
      expect(unsigned.status, `${event} ${what} (unsigned)`).toBe(401);
      const id = `msg_${randomUUID()}`;
      const ts = Math.floor(Date.now() / 1000);
      const signed = await post(event, raw, {
        "webhook-id": id,
        "webhook-timestamp": String(ts),
        "webhook-signature": signWebhook(SIGNED_TOKEN, id, ts, raw),
      });
      expect(signed.status, `${event} ${what} (signed)`).toBe(403);
      sent += 3;
    }
    await settled(stack);
    expect(await jobsInAnyState(stack.service.queues.events)).toBe(jobsBefore);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(JSON.stringify(snapshot(stack.entra.state))).toBe(before);
    expect(await refusedTotal()).toBe(metricBefore + sent);
    expect(await refusedRecords()).toBeGreaterThanOrEqual(auditBefore + forgeries().length);
    // The victim's pipelines log in exactly as before.
    expect((await exchange(stack, victim, "production", "main")).status).toBe(200);
    expect((await exchange(stack, victim, "staging", "develop")).status).toBe(200);
    expect(await failures(stack)).toEqual([]);
  });

  it("a replayed signed delivery with a fresh Idempotency-Key is one job, processed without failure", async () => {
    const { project } = await stack.driver.createProject("signed-team/app", { members: { [alice.id]: 50 } });
    await settled(stack);
    const body = JSON.stringify({
      object_kind: "deployment",
      status: "running",
      environment: "review/first",
      project: { id: project.id, path_with_namespace: "signed-team/app" },
      user: { id: alice.id, username: alice.username },
      ref: "develop",
    });
    const id = `msg_${randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000);
    const headers = {
      "webhook-id": id,
      "webhook-timestamp": String(ts),
      "webhook-signature": signWebhook(SIGNED_TOKEN, id, ts, body),
    };
    const first = await post("Deployment Hook", body, headers);
    expect(first.status).toBe(202);
    const jobs = await jobsInAnyState(stack.service.queues.events);
    for (let i = 0; i < 3; i++) {
      const replay = await post("Deployment Hook", body, { ...headers, "Idempotency-Key": randomUUID() });
      expect(replay.status).toBe(200);
      expect(((await replay.json()) as { duplicate?: boolean }).duplicate).toBe(true);
    }
    expect(await jobsInAnyState(stack.service.queues.events)).toBe(jobs);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
  });
});
