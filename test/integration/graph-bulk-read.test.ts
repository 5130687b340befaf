import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BulkRead, GraphApi } from "../../src/entra/graph.ts";
import { snapshotGraph } from "../../src/entra/graph-snapshot.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { simGraph } from "../helpers/entra.ts";

/**
 * Drift's bulk reads with the bot's real Graph client against the simulator's JSON $batch (reference/entra.md
 * section 6): one HTTP request per 20 reads, answers equal to the one-by-one reads, throttled items retried once,
 * incomplete answers left out (never turned into "not found"), and the read-ahead snapshot unable to write.
 */
const TENANT = "31313131-2222-3333-4444-555555555555";
const BOT = { clientId: "cdcdcdcd-bbbb-cccc-dddd-eeeeeeeeeeee", clientSecret: "sim-only-secret" };
const GROUP = { id: "97979797-0000-0000-0000-000000000001", displayName: "bulk-readers" };

let sim: EntraSimulator;
let graph: GraphApi;

beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT, groups: [GROUP] });
  graph = simGraph(sim, BOT);
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.reset();
});

/** n identities made through the client (app, principal, two FICs, one group), as onboarding makes them. */
async function identities(n: number) {
  const out: Array<{ app: string; sp: string }> = [];
  for (let i = 0; i < n; i++) {
    const app = await graph.createApplication({
      displayName: `bulk-${i}`,
      tags: ["gitlab-entra-bot", `gitlab-project:${i + 1}`, "gitlab-env:staging"],
    });
    const { sp } = await graph.upsertServicePrincipal(app.appId, []);
    for (const ref of ["main", "develop"]) {
      await graph.upsertFederatedCredential(app.id, `fic-${ref}-${i}`, {
        issuer: "https://gitlab.example.com",
        subject: `project_path:g/p${i}:ref_type:branch:ref:${ref}`,
        audiences: ["api://AzureADTokenExchange"],
      });
    }
    await graph.addGroupMember(GROUP.id, sp.id);
    out.push({ app: app.id, sp: sp.id });
  }
  return out;
}

const readsFor = (ids: Array<{ app: string; sp: string }>): BulkRead[] =>
  ids.flatMap(({ app, sp }) => [
    { kind: "owners", appObjectId: app } as const,
    { kind: "fics", appObjectId: app } as const,
    { kind: "servicePrincipal", id: sp } as const,
    { kind: "memberOf", principalObjectId: sp } as const,
  ]);

describe("GraphApi.bulkRead over $batch", () => {
  it("answers 4 reads per identity for 12 identities in 3 batch requests, equal to the one-by-one reads", async () => {
    const ids = await identities(12);
    sim.stats.reset();
    const paced: number[] = [];
    const bulk = await graph.bulkRead(readsFor(ids), {
      pace: async (reads) => {
        paced.push(reads);
      },
    });
    // 48 reads / 20 per batch = 3 HTTP requests, each paced once; 48 items inside them.
    expect(sim.stats.requests.filter((r) => r.kind === "batch")).toHaveLength(3);
    expect(sim.stats.requests.filter((r) => r.kind === "batch-item")).toHaveLength(48);
    expect(sim.stats.requests.filter((r) => r.kind === "graph")).toHaveLength(0);
    // Each request is paced with the reads it makes (Entra counts each item of a $batch).
    expect(paced.sort((a, b) => a - b)).toEqual([8, 20, 20]);
    expect(bulk).toMatchObject({ requests: 3, answered: 48 });
    for (const { app, sp } of ids) {
      expect(bulk.owners(app)).toEqual(await graph.listApplicationOwners(app));
      expect(bulk.fics(app)).toEqual(await graph.listFederatedCredentials(app));
      expect(bulk.servicePrincipal(sp)).toEqual(await graph.getServicePrincipal(sp));
      expect(bulk.memberOf(sp)).toEqual([GROUP.id]);
    }
  });

  it("an item throttled with 429 is retried once, alone, after its Retry-After", async () => {
    const ids = await identities(2);
    sim.faults.failNext(1, 429, { pathIncludes: "/federatedIdentityCredentials", retryAfterSeconds: 0 });
    sim.stats.reset();
    const bulk = await graph.bulkRead(readsFor(ids));
    const batches = sim.stats.requests.filter((r) => r.kind === "batch");
    expect(batches).toHaveLength(2);
    expect(bulk.requests).toBe(2);
    // Every read answered in the end, the throttled one by the retry.
    for (const { app } of ids) expect(bulk.fics(app)).toHaveLength(2);
    expect(bulk.answered).toBe(8);
  });

  it("an item that keeps failing, or names a missing object, is left out: the caller reads it alone", async () => {
    const [one] = await identities(1);
    if (!one) throw new Error("no identity");
    sim.faults.failNext(2, 503, { pathIncludes: "/owners" });
    const gone = "0a0a0a0a-0000-0000-0000-00000000dead";
    const bulk = await graph.bulkRead([
      ...readsFor([one]),
      { kind: "fics", appObjectId: gone },
      { kind: "servicePrincipal", id: gone },
    ]);
    expect(bulk.owners(one.app)).toBeUndefined();
    expect(bulk.fics(gone)).toBeUndefined();
    expect(bulk.servicePrincipal(gone)).toBeUndefined();
    expect(bulk.fics(one.app)).toHaveLength(2);
  });

  it("the read-ahead snapshot answers from what it holds, reads live what it lacks, and cannot write", async () => {
    const [one, two] = await identities(2);
    if (!one || !two) throw new Error("no identities");
    const bulk = await graph.bulkRead(readsFor([one]));
    const snap = snapshotGraph(graph, { apps: new Map(), byTag: new Map(), covers: () => false, bulk });
    sim.stats.reset();
    expect(await snap.listFederatedCredentials(one.app)).toHaveLength(2);
    expect(sim.stats.requests.filter((r) => r.kind === "graph")).toHaveLength(0);
    // Not in the snapshot: a live read (one request), never an empty answer.
    expect(await snap.listFederatedCredentials(two.app)).toHaveLength(2);
    expect(sim.stats.requests.filter((r) => r.kind === "graph")).toHaveLength(1);
    const before = JSON.stringify([...sim.state.applications.values()].map((a) => [a.id, a.fics.length]));
    await expect(snap.deleteFederatedCredential(one.app, "fic-main-0")).rejects.toThrow(/read-only/);
    await expect(snap.addGroupMember(GROUP.id, one.sp)).rejects.toThrow(/read-only/);
    expect(JSON.stringify([...sim.state.applications.values()].map((a) => [a.id, a.fics.length]))).toBe(
      before,
    );
  });

  it("lists every bot-tagged app in pages of 999 with credential counts", async () => {
    await identities(3);
    sim.stats.reset();
    const apps = await graph.listApplicationsWithTag("gitlab-entra-bot");
    expect(apps).toHaveLength(3);
    expect(apps.every((a) => a.credentialCount === 0)).toBe(true);
    const [list] = sim.stats.requests.filter((r) => r.kind === "graph");
    expect(list?.query?.$top).toBe("999");
  });
});
