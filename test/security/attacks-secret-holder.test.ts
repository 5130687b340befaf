import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { REFUSAL_AUDIT_BUDGET } from "../../src/onboarding/audit-budget.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { entraSnapshot, openIssue } from "../helpers/e2e.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * A group owner who holds their group hook's secret (a listed attacker) and uses it for what it cannot do.
 * Every refusal is counted and logged; the audit trail, which is never trimmed (compliance), must not be
 * theirs to fill: whatever they vary in the payload, the records their refusals cost stay bounded.
 */
const EVIL_SECRET = `evil-${randomUUID()}`;
const { alice } = SANDBOX.users;

let stack: SandboxStack;
let redis: Redis;
let audit: AuditLog;

beforeAll(async () => {
  stack = await testStack("attack-holder", { env: { GITLAB_GROUP_WEBHOOK_SECRETS: `evil=${EVIL_SECRET}` } });
  redis = new Redis(TEST_REDIS_URL);
  audit = new AuditLog(redis, { key: `${stack.config.queuePrefix}:audit` });
  await stack.driver.createProject("victim/app", { members: { [alice.id]: 50 } });
  await settled(stack);
});
afterAll(async () => {
  await redis?.quit();
  await stack?.close();
});

function post(event: string, body: unknown) {
  return fetch(`${stack.service.url}/webhooks/gitlab`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Gitlab-Event": event,
      "X-Gitlab-Token": EVIL_SECRET,
      "Idempotency-Key": randomUUID(),
    },
    body: JSON.stringify(body),
  });
}

async function auditCount(): Promise<number> {
  return redis.xlen(`${stack.config.queuePrefix}:audit`);
}

describe("refused deliveries cannot fill the audit trail", () => {
  it("System Hooks and out-of-namespace events with a different project (or event name) each time", async () => {
    const before = await auditCount();
    const snap = entraSnapshot(stack);
    const N = 300;
    const statuses = new Set<number>();
    for (let i = 0; i < N; i++) {
      const r1 = await post("System Hook", {
        event_name: `project_destroy_${i}`,
        project_id: 100_000 + i,
        path_with_namespace: `victim/p${i}`,
      });
      const r2 = await post("Project Hook", {
        event_name: "project_destroy",
        project_id: 200_000 + i,
        path_with_namespace: `victim/q${i}`,
      });
      statuses.add(r1.status).add(r2.status);
    }
    expect([...statuses]).toEqual([403]);
    // Counted and logged every time; audited a bounded number of times per source and minute.
    const added = (await auditCount()) - before;
    expect(added).toBeLessThanOrEqual(2 * (REFUSAL_AUDIT_BUDGET + 1));
    expect(added).toBeGreaterThan(0);
    expect(entraSnapshot(stack)).toBe(snap);
    void audit;
  });

  it("Note Hooks inside the namespace naming notes GitLab does not have: refused in the worker, audited boundedly", async () => {
    stack.gitlab.addProject({ path: "evil/tools", members: { [alice.id]: 50 } });
    const p = stack.gitlab.state.projects.find((x) => x.path === "evil/tools");
    if (!p) throw new Error("no evil/tools");
    const before = await auditCount();
    const N = 150;
    for (let i = 0; i < N; i++) {
      const r = await post("Note Hook", {
        object_kind: "note",
        user: { id: alice.id, username: alice.username },
        project: { id: p.id, path_with_namespace: "evil/tools" },
        object_attributes: {
          id: 900_000 + i,
          note: "/entra status",
          noteable_type: "Issue",
          action: "create",
        },
        issue: { iid: 1 + i, confidential: false },
      });
      expect(r.status).toBe(202);
    }
    await settled(stack);
    const added = (await auditCount()) - before;
    expect(added).toBeLessThanOrEqual(2 * (REFUSAL_AUDIT_BUDGET + 1));
    expect(await failures(stack)).toEqual([]);
  });

  it("a real note replayed as an /entra approve it is not, with a fresh Idempotency-Key each time", async () => {
    const p = stack.gitlab.state.projects.find((x) => x.path === "evil/tools");
    if (!p) throw new Error("no evil/tools");
    const issue = openIssue(stack, p.id, alice.id, "replays");
    const note = stack.gitlab.addUserNote(p.id, issue.iid, alice.id, "just a comment, /entra nothing");
    const before = await auditCount();
    for (let i = 0; i < 150; i++) {
      const r = await post("Note Hook", {
        object_kind: "note",
        user: { id: alice.id, username: alice.username },
        project: { id: p.id, path_with_namespace: "evil/tools" },
        object_attributes: {
          id: note.id,
          note: "/entra approve production",
          noteable_type: "Issue",
          action: "create",
        },
        issue: { iid: issue.iid, confidential: false },
      });
      expect(r.status).toBe(202);
    }
    await settled(stack);
    expect((await auditCount()) - before).toBeLessThanOrEqual(2 * (REFUSAL_AUDIT_BUDGET + 1));
    expect(await failures(stack)).toEqual([]);
  });
});
