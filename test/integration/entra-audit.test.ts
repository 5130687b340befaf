import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { EntraError } from "../../src/entra/errors.ts";
import type { GraphApi } from "../../src/entra/graph.ts";
import type { Trigger } from "../../src/gitlab/intents.ts";
import { AuditLog, type AuditRecord } from "../../src/onboarding/audit.ts";
import { createEntraWriteAudit } from "../../src/onboarding/entra-audit.ts";
import { type OnboardingDeps, offboardProject, onboardProject } from "../../src/onboarding/onboard.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { simBotSp, simGraph } from "../helpers/entra.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * The audit protocol of Entra writes against the Entra simulator: a crash after every write was made (so the
 * retry finds nothing to change) still leaves intended records settled by a closing record.
 */
const TENANT = "1d1d1d1d-aaaa-bbbb-cccc-000000000011";
const BOT = { clientId: "1d1d1d1d-aaaa-bbbb-cccc-000000000012", clientSecret: "sim-only" };
const GROUP = "1d1d1d1d-0000-0000-0000-000000000011";

let sim: EntraSimulator;
let redis: Redis;
let audit: AuditLog;
const prefix = uniquePrefix("entra-audit");

const trigger = (eventId: string, username = "glpat-abcdefghij1234567890"): Trigger => ({
  event: "Note Hook",
  eventId,
  receivedAt: new Date().toISOString(),
  actor: { id: 5, username },
  source: { kind: "instance" },
  signed: false,
});

function deps(graph: GraphApi, t: Trigger): OnboardingDeps {
  return {
    graph,
    redis,
    keyPrefix: prefix,
    policy: parsePolicy(`
environments:
  production: { refs: ["branch:main"], groups: ["${GROUP}"] }
  "review/*": { refs: ["branch:develop"] }
`),
    issuer: "https://gitlab.example.com",
    tenantId: TENANT,
    botSp: simBotSp(graph, BOT),
    replication: { baseMs: 5 },
    audit: createEntraWriteAudit({ audit, redis, keyPrefix: prefix, trigger: t }),
  };
}

/** The real client, except that the given write succeeds and then the "worker dies" (a retryable error). */
function crashingAfter(graph: GraphApi, method: keyof GraphApi): GraphApi {
  return new Proxy(graph, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== method || typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        throw new EntraError({ code: "GRAPH_UNAVAILABLE", message: "worker died after the write" });
      };
    },
  });
}

const of = (records: AuditRecord[], eventId: string) => records.filter((r) => r.trigger.eventId === eventId);
const summary = (rs: AuditRecord[]) => rs.map((r) => `${r.outcome} ${r.change.op} ${r.change.kind}`);

beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT, groups: [{ id: GROUP, displayName: "g" }] });
  redis = new Redis(TEST_REDIS_URL);
  audit = new AuditLog(redis, { key: `${prefix}:audit` });
});
afterAll(async () => {
  await deletePrefix(prefix);
  await redis.quit();
  await sim.close();
});

describe("Entra writes are announced before and settled after, whatever happens in between", () => {
  it("onboarding: the retry finds nothing to change and still closes the series", async () => {
    const graph = simGraph(sim, BOT);
    const t = trigger("evt-onboard");
    const env = "review/eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4eHgifQ.sig";
    // Attempt 1: every write lands (the FIC is the last one for review/*), then the worker dies.
    await expect(
      onboardProject(deps(crashingAfter(graph, "upsertFederatedCredential"), t), {
        project: { id: 7, path: "g/p" },
        environments: [env],
        mode: "apply",
      }),
    ).rejects.toThrow(/worker died/);
    const afterCrash = of((await audit.query({ limit: 500 })).records, "evt-onboard");
    expect(summary(afterCrash)).toEqual([
      "intended create application",
      "intended create servicePrincipal",
      "intended create federatedIdentityCredential",
    ]);
    // Attempt 2 (same event): nothing left to write, yet the series is closed.
    const r = await onboardProject(deps(graph, t), {
      project: { id: 7, path: "g/p" },
      environments: [env],
      mode: "apply",
    });
    expect(r.environments[0]?.status).toBe("unchanged");
    const all = of((await audit.query({ limit: 500 })).records, "evt-onboard");
    expect(summary(all)).toEqual([...summary(afterCrash), "ok observe application"]);
    for (const rec of all) {
      expect(rec.environment).toBe("review/[REDACTED: a JWT]");
      expect(rec.trigger.actor?.username).toBe("[REDACTED: a GitLab token]");
    }
    // A third run of another event changes nothing and records nothing.
    const before = (await audit.query({ limit: 500 })).records.length;
    await onboardProject(deps(graph, trigger("evt-noop")), {
      project: { id: 7, path: "g/p" },
      environments: [env],
      mode: "apply",
    });
    expect((await audit.query({ limit: 500 })).records).toHaveLength(before);
  });

  it("each write's intent is on record while the write is still in flight, from the same reads (no second plan)", async () => {
    const graph = simGraph(sim, BOT);
    await onboardProject(deps(graph, trigger("evt-inflight-setup")), {
      project: { id: 19, path: "g/inflight" },
      environments: ["production"],
      mode: "apply",
    });
    const app = [...sim.state.applications.values()].find((a) => a.tags.includes("gitlab-project:19"));
    if (!app) throw new Error("no app");
    app.fics.splice(0, app.fics.length);
    const t = trigger("evt-inflight");
    // The FIC write reaches Graph and waits there: its intended record must already exist, its ok not yet.
    const held = sim.hold({ method: "PATCH", pathIncludes: "/federatedIdentityCredentials" });
    sim.stats.reset();
    const run = onboardProject(deps(graph, t), {
      project: { id: 19, path: "g/inflight" },
      environments: ["production"],
      mode: "apply",
    });
    await held.reached;
    expect(summary(of((await audit.query({ limit: 500 })).records, "evt-inflight"))).toEqual([
      "intended create federatedIdentityCredential",
    ]);
    held.release();
    expect((await run).environments[0]?.status).toBe("changed");
    expect(summary(of((await audit.query({ limit: 500 })).records, "evt-inflight"))).toEqual([
      "intended create federatedIdentityCredential",
      "ok create federatedIdentityCredential",
      "ok observe application",
    ]);
    // One read of the identity's credentials: the intent came from the apply's own reads, not a plan pass.
    const ficReads = sim.stats.requests.filter(
      (r) => r.method === "GET" && r.path.endsWith(`/applications/${app.id}/federatedIdentityCredentials`),
    );
    expect(ficReads).toHaveLength(1);
  });

  it("offboarding: a crash after the last delete, then a retry, leaves intended + closing", async () => {
    const graph = simGraph(sim, BOT);
    await onboardProject(deps(graph, trigger("evt-setup")), {
      project: { id: 8, path: "g/q" },
      environments: ["production"],
      mode: "apply",
    });
    const t = trigger("evt-offboard");
    await expect(
      offboardProject(deps(crashingAfter(graph, "deleteApplication"), t), { projectId: 8, mode: "apply" }),
    ).rejects.toThrow(/worker died/);
    const r = await offboardProject(deps(graph, t), {
      projectId: 8,
      environments: ["production"],
      mode: "apply",
    });
    expect(r.environments[0]?.status).toBe("unchanged");
    const all = of((await audit.query({ limit: 500 })).records, "evt-offboard");
    expect(summary(all)).toEqual([
      "intended remove groupMembership",
      "intended delete federatedIdentityCredential",
      "intended delete servicePrincipal",
      "intended delete application",
      "ok observe application",
    ]);
    expect(await redis.keys(`${prefix}:audit:open:*`)).toEqual([]);
  });

  it("a permanent failure closes the series as failed, with Entra's message", async () => {
    const graph = simGraph(sim, BOT);
    const t = trigger("evt-fail");
    const failing = new Proxy(graph, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== "upsertApplication") return value;
        return async () => {
          throw new EntraError({
            code: "GRAPH_FORBIDDEN",
            permanent: true,
            message: "Insufficient privileges",
          });
        };
      },
    });
    const r = await onboardProject(deps(failing, t), {
      project: { id: 9, path: "g/r" },
      environments: ["production"],
      mode: "apply",
    });
    expect(r.environments[0]?.status).toBe("failed");
    const all = of((await audit.query({ limit: 500 })).records, "evt-fail");
    expect(all.at(-1)).toMatchObject({ outcome: "failed", change: { op: "observe" } });
    expect(all.at(-1)?.message).toContain("Insufficient privileges");
  });
});
