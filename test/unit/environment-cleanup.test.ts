import { describe, expect, it } from "vitest";
import {
  type CleanupIdentity,
  type CleanupInput,
  decideCleanup,
} from "../../src/onboarding/environment-cleanup.ts";

const NOW = new Date("2030-01-10T00:00:00.000Z");
const DAY = 24 * 3600 * 1000;
const ago = (days: number) => new Date(NOW.getTime() - days * DAY).toISOString();
const SEEN = "2030-01-01T00:00:00.000Z";

const id = (environment: string, o: Partial<CleanupIdentity> = {}): CleanupIdentity => ({
  environment,
  environmentSeenAt: SEEN,
  privileged: false,
  retainDays: 7,
  ...o,
});
function decide(o: Partial<CleanupInput>) {
  return decideCleanup({ identities: [], listed: [], complete: true, goneSince: new Map(), now: NOW, ...o });
}

describe("environment cleanup: the decision", () => {
  it("an available (or stopping) environment is kept and clears any gone-since record", () => {
    const [a, b] = decide({
      identities: [id("review/a"), id("review/b")],
      listed: [
        { name: "review/a", state: "available" },
        { name: "review/b", state: "stopping" },
      ],
      goneSince: new Map([["review/a", ago(3)]]),
    });
    expect(a).toMatchObject({ action: "keep", markSeen: false });
    expect(a?.goneSince).toBeUndefined();
    expect(b).toMatchObject({ action: "keep" });
    expect(b?.gone).toBeUndefined();
  });

  it("stopped: the first notice starts the clock; removal once gone for the retention period", () => {
    const first = decide({ identities: [id("review/a")], listed: [{ name: "review/a", state: "stopped" }] });
    expect(first).toEqual([
      expect.objectContaining({
        action: "wait",
        gone: "stopped",
        goneSince: NOW.toISOString(),
        dueAt: new Date(NOW.getTime() + 7 * DAY).toISOString(),
      }),
    ]);
    const waiting = decide({
      identities: [id("review/a")],
      listed: [{ name: "review/a", state: "stopped" }],
      goneSince: new Map([["review/a", ago(6.9)]]),
    });
    expect(waiting[0]).toMatchObject({ action: "wait", goneSince: ago(6.9) });
    const due = decide({
      identities: [id("review/a")],
      listed: [{ name: "review/a", state: "stopped" }],
      goneSince: new Map([["review/a", ago(7)]]),
    });
    expect(due[0]).toMatchObject({ action: "remove", gone: "stopped", goneSince: ago(7) });
    // 0 days: removed at the first notice.
    expect(
      decide({
        identities: [id("review/a", { retainDays: 0 })],
        listed: [{ name: "review/a", state: "stopped" }],
      })[0]?.action,
    ).toBe("remove");
  });

  it("deleted: gone only if GitLab once listed it; never-listed identities are kept", () => {
    const [seen, never] = decide({
      identities: [
        id("review/a", { retainDays: 0 }),
        id("staging", { environmentSeenAt: undefined, retainDays: 0 }),
      ],
      listed: [],
    });
    expect(seen).toMatchObject({ action: "remove", gone: "deleted" });
    expect(never).toMatchObject({ action: "keep", markSeen: false });
    expect(never?.gone).toBeUndefined();
  });

  it("a listed environment the pin does not record yet is marked seen", () => {
    const [a, b] = decide({
      identities: [
        id("staging", { environmentSeenAt: undefined }),
        id("review/x", { environmentSeenAt: undefined }),
      ],
      listed: [
        { name: "staging", state: "available" },
        { name: "review/x", state: "stopped" },
      ],
    });
    expect(a).toMatchObject({ action: "keep", markSeen: true });
    expect(b).toMatchObject({ action: "wait", markSeen: true, gone: "stopped" });
  });

  it("names compare exactly (GitLab environment names are case-sensitive)", () => {
    const [a] = decide({
      identities: [id("review/a", { retainDays: 0 })],
      listed: [{ name: "Review/a", state: "available" }],
    });
    expect(a).toMatchObject({ action: "remove", gone: "deleted" });
    const [b] = decide({
      identities: [id("Review/A", { retainDays: 0 })],
      listed: [{ name: "review/a", state: "stopped" }],
    });
    expect(b).toMatchObject({ action: "remove", gone: "deleted" });
  });

  it("a list that may be cut short proves no deletion, and keeps the recorded clock as it is", () => {
    const [a, b] = decide({
      identities: [id("review/a", { retainDays: 0 }), id("review/b", { retainDays: 0 })],
      listed: [{ name: "review/b", state: "stopped" }],
      complete: false,
      goneSince: new Map([["review/a", ago(30)]]),
    });
    expect(a).toMatchObject({ action: "keep", goneSince: ago(30) });
    // What the list does show still counts: a stopped environment in it is stopped.
    expect(b).toMatchObject({ action: "remove", gone: "stopped" });
  });

  it("privileged environments past the retention are reported, never removed", () => {
    const [p] = decide({
      identities: [id("production", { privileged: true })],
      listed: [{ name: "production", state: "stopped" }],
      goneSince: new Map([["production", ago(100)]]),
    });
    expect(p).toMatchObject({ action: "report", gone: "stopped" });
    expect(p?.why).toContain("/entra offboard production");
    const [w] = decide({ identities: [id("production", { privileged: true })], listed: [] });
    expect(w).toMatchObject({ action: "wait", gone: "deleted" });
  });

  it("a gone-since record that does not parse restarts the clock instead of removing early", () => {
    const [a] = decide({
      identities: [id("review/a", { retainDays: 1 })],
      listed: [{ name: "review/a", state: "stopped" }],
      goneSince: new Map([["review/a", "not a date"]]),
    });
    expect(a).toMatchObject({ action: "wait", goneSince: NOW.toISOString() });
  });

  it("prototype-named environments are plain names", () => {
    const [a, b] = decide({
      identities: [id("__proto__", { retainDays: 0 }), id("constructor", { environmentSeenAt: undefined })],
      listed: [{ name: "__proto__", state: "stopped" }],
    });
    expect(a).toMatchObject({ action: "remove", gone: "stopped" });
    expect(b).toMatchObject({ action: "keep" });
  });
});
