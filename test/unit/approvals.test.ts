import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { GitLabApi } from "../../src/gitlab/api.ts";
import { ApprovalStore, approverMatch } from "../../src/onboarding/approvals.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const redis = new Redis(TEST_REDIS_URL);
const prefix = uniquePrefix("approvals");
afterAll(async () => {
  await deletePrefix(prefix);
  await redis.quit();
});

const approval = (over: Partial<Parameters<ApprovalStore["recordApproval"]>[0]> = {}) => ({
  projectId: 7,
  environment: "production",
  approver: { id: 2, username: "alice" },
  via: "user alice",
  noteId: 100,
  validUntil: 0,
  ...over,
});

describe("ApprovalStore", () => {
  it("an approval serves one onboarding of that project and environment, within its validity", async () => {
    let now = 1_000_000;
    const store = new ApprovalStore(redis, prefix, () => now);
    await store.recordApproval(approval({ validUntil: now + 60_000 }));
    expect(await store.takeApproval(8, "production")).toBeUndefined();
    expect(await store.takeApproval(7, "production-eu")).toBeUndefined();
    expect(await store.takeApproval(7, "Production")).toBeUndefined();
    expect(await store.takeApproval(7, "production")).toMatchObject({ approver: { username: "alice" } });
    expect(await store.takeApproval(7, "production")).toBeUndefined();

    await store.recordApproval(approval({ validUntil: now + 60_000 }));
    now += 60_001;
    expect(await store.takeApproval(7, "production")).toBeUndefined();
  });

  it("bound to the grant it was given for: asked with another grant (the project moved to another rule), it is void", async () => {
    const store = new ApprovalStore(redis, prefix);
    const validUntil = Date.now() + 60_000;
    await store.recordApproval(approval({ projectId: 11, grant: "payments", validUntil }));
    expect(await store.takeApproval(11, "production", "default")).toBeUndefined();
    // Used up all the same: it does not come back for the grant it was given for.
    expect(await store.takeApproval(11, "production", "payments")).toBeUndefined();
    await store.recordApproval(approval({ projectId: 11, grant: "payments", validUntil }));
    expect(await store.takeApproval(11, "production", "payments")).toMatchObject({ grant: "payments" });
    // An approval recorded without a grant (an older version) does not match any grant.
    await store.recordApproval(approval({ projectId: 11, validUntil }));
    expect(await store.takeApproval(11, "production", "payments")).toBeUndefined();
  });

  it("Redis forgets it too (PX TTL), and a value planted under another key is not honoured", async () => {
    const store = new ApprovalStore(redis, prefix);
    await store.recordApproval(approval({ projectId: 9, validUntil: Date.now() + 5_000 }));
    const keys = await redis.keys(`${prefix}:approval:9:*`);
    expect(keys).toHaveLength(1);
    const ttl = await redis.pttl(keys[0] as string);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
    // Someone copies project 9's approval to project 10's key: the record names its scope.
    const raw = await redis.get(keys[0] as string);
    const other = (keys[0] as string).replace(":approval:9:", ":approval:10:");
    await redis.set(other, raw ?? "", "PX", 5_000);
    expect(await store.takeApproval(10, "production")).toBeUndefined();
    await redis.set(other, "not json", "PX", 5_000);
    expect(await store.takeApproval(10, "production")).toBeUndefined();
  });
});

function fakeGitLab(users: Record<number, string>, groups: Record<string, Record<number, number>>) {
  const calls: string[] = [];
  const api: Pick<GitLabApi, "getUser" | "groupMemberAccessLevel"> = {
    async getUser(id) {
      calls.push(`user ${id}`);
      const username = users[id];
      return username ? { id, username } : null;
    },
    async groupMemberAccessLevel(path, id) {
      calls.push(`group ${path} ${id}`);
      return groups[path]?.[id] ?? null;
    },
  };
  return { api, calls };
}

describe("approverMatch", () => {
  it("matches the user's current username (case-insensitive, optional @), not the name in the webhook", async () => {
    const { api } = fakeGitLab({ 2: "Alice", 3: "dave" }, {});
    expect(await approverMatch(api, ["@alice"], 2)).toEqual({
      ok: true,
      via: "user alice",
      username: "Alice",
    });
    expect(await approverMatch(api, ["alice"], 3)).toEqual({ ok: false, username: "dave" });
    expect(await approverMatch(api, ["alice"], 404)).toEqual({ ok: false });
  });

  it("a group path counts its effective members from Developer up, as GitLab's eligible approvers; Guest, Reporter and Minimal Access do not", async () => {
    const { api, calls } = fakeGitLab(
      { 5: "erin", 6: "min", 7: "gus", 8: "remy" },
      { "payments/leads": { 5: 30, 6: 5, 7: 10, 8: 20 } },
    );
    expect(await approverMatch(api, ["alice", "payments/leads"], 5)).toEqual({
      ok: true,
      via: "group payments/leads",
      username: "erin",
    });
    for (const user of [6, 7, 8]) expect((await approverMatch(api, ["payments/leads"], user)).ok).toBe(false);
    // One-segment entries that are not the user's own name are asked as top-level groups.
    expect(calls).toContain("group alice 5");
  });
});
