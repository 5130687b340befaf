import { describe, expect, it } from "vitest";
import { EntraError, errorFromGraph, notFoundNames } from "../../src/entra/errors.ts";
import { type ReplicationWait, replicationWait, untilReplicated } from "../../src/onboarding/replication.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

const op = {
  action: "create the service principal of app 11111111",
  permission: "Application.ReadWrite.OwnedBy",
};

interface GraphErrorBody {
  error: { code: string; message: string; details?: Array<{ code: string }> };
}
function fromFixture(name: string, status: number): EntraError {
  const { error } = fixtureJson<GraphErrorBody>(`graph/${name}`);
  return errorFromGraph(op, {
    status,
    graphCode: error.code,
    graphMessage: error.message,
    graphDetails: error.details?.map((d) => d.code),
    requestId: "rid-1",
  });
}

describe("Graph's answers right after a create are typed as replication, not as a permission or a bad value", () => {
  it("400 NoBackingApplicationObject", () => {
    const err = fromFixture("error-sp-no-backing-application.json", 400);
    expect(err.code).toBe("GRAPH_NOT_REPLICATED");
    expect(err.permanent).toBe(false);
    expect(err.message).toMatch(/replication, not a permission problem/);
    expect(err.message).not.toMatch(/Fix the value/);
  });

  it("403 'backing application … must in the local tenant' does not ask for a permission the bot has", () => {
    const err = fromFixture("error-sp-backing-application-not-local.json", 403);
    expect(err.code).toBe("GRAPH_NOT_REPLICATED");
    expect(err.permanent).toBe(false);
    expect(err.message).not.toMatch(/Grant the bot/);
    // Any other 403 still names the permission to grant.
    const denied = fromFixture("error-insufficient-privileges-403.json", 403);
    expect(denied.code).toBe("GRAPH_FORBIDDEN");
    expect(denied.message).toMatch(/Grant the bot's app the Microsoft Graph application permission/);
  });

  it("a 404 says which object Graph did not find", () => {
    const err = fromFixture("error-resource-not-found.json", 404);
    expect(notFoundNames(err, "5b31c38c-2584-42f0-aa47-657fb3a84230")).toBe(true);
    expect(notFoundNames(err, "5B31C38C-2584-42F0-AA47-657FB3A84230")).toBe(true);
    expect(notFoundNames(err, "00000000-0000-0000-0000-000000000000")).toBe(false);
  });
});

/** A clock that moves only when the code under test sleeps: no real waiting, every pause recorded. */
function fakeClock(start = 1_000_000): {
  wait: (o?: Partial<ReplicationWait>) => ReplicationWait;
  slept: number[];
} {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    wait: (o = {}) =>
      replicationWait({
        now: () => now,
        sleep: async (ms) => {
          slept.push(ms);
          now += ms;
        },
        ...o,
      }),
  };
}

const lag = () =>
  new EntraError({
    code: "GRAPH_NOT_FOUND",
    status: 404,
    graphCode: "Request_ResourceNotFound",
    graphMessage:
      "Resource 'sp-1' does not exist or one of its queried reference-property objects are not present.",
    message: "not found",
  });

describe("untilReplicated", () => {
  it("pauses with doubling backoff, logging what it waits for, until the call succeeds", async () => {
    const clock = fakeClock();
    const wait = clock.wait();
    let calls = 0;
    const lines: string[] = [];
    const out = await untilReplicated(
      wait,
      { what: "service principal sp-1", createdAt: wait.now(), isLag: (e) => e.code === "GRAPH_NOT_FOUND" },
      (l) => lines.push(l),
      async () => {
        if (++calls < 4) throw lag();
        return "done";
      },
    );
    expect(out).toBe("done");
    expect(clock.slept).toEqual([1000, 2000, 4000]);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^waiting for Entra to replicate service principal sp-1, attempt 1 .*Request_ResourceNotFound/,
    );
    expect(lines[2]).toMatch(/attempt 3/);
  });

  it("hands over to the job's retry after the step budget, with a retryable error naming the object", async () => {
    const clock = fakeClock();
    const wait = clock.wait({ stepBudgetMs: 10_000 });
    const err = await untilReplicated(
      wait,
      { what: "service principal sp-1", createdAt: wait.now(), isLag: () => true },
      undefined,
      async () => {
        throw lag();
      },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(EntraError);
    expect(err.code).toBe("ENTRA_REPLICATING");
    expect(err.permanent).toBe(false);
    expect(err.message).toMatch(/^waiting for Entra to replicate service principal sp-1/);
    expect(clock.slept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10_000);
  });

  it("a later attempt keeps waiting from the recorded creation time, and after the window names the real cause", async () => {
    const clock = fakeClock();
    const wait = clock.wait();
    const createdAt = wait.now() - 6 * 60_000; // created six minutes ago, in an earlier job attempt
    const err = await untilReplicated(
      wait,
      { what: "service principal sp-1", createdAt, isLag: () => true },
      undefined,
      async () => {
        throw lag();
      },
    ).catch((e) => e);
    expect(clock.slept).toEqual([]);
    expect(err.code).toBe("GRAPH_NOT_REPLICATED");
    expect(err.permanent).toBe(true);
    expect(err.message).toMatch(
      /^Entra still answers as if service principal sp-1 did not exist .* 360 s after the bot created it/,
    );
    expect(err.message).toMatch(/not a permission or policy problem/);
    expect(err.message).not.toMatch(/group .* does not exist/);
  });

  it("an object the bot did not create is never waited for: the caller says what it really is", async () => {
    const clock = fakeClock();
    const real = new EntraError({ code: "GRAPH_INVALID", permanent: true, message: "the real cause" });
    const err = await untilReplicated(
      clock.wait(),
      { what: "x", createdAt: undefined, isLag: () => true, otherwise: () => real },
      undefined,
      async () => {
        throw lag();
      },
    ).catch((e) => e);
    expect(err).toBe(real);
    expect(clock.slept).toEqual([]);
  });

  it("other errors pass straight through", async () => {
    const clock = fakeClock();
    const other = new EntraError({ code: "GRAPH_FORBIDDEN", message: "no" });
    const err = await untilReplicated(
      clock.wait(),
      { what: "x", createdAt: 0, isLag: (e) => e.code === "GRAPH_NOT_FOUND" },
      undefined,
      async () => {
        throw other;
      },
    ).catch((e) => e);
    expect(err).toBe(other);
  });
});
