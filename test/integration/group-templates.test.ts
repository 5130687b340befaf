import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EntraError } from "../../src/entra/errors.ts";
import type { GraphApi } from "../../src/entra/graph.ts";
import { GroupResolver } from "../../src/policy/group-resolver.ts";
import { parseTemplate, renderTemplate, templateValues } from "../../src/policy/templates.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { simGraph } from "../helpers/entra.ts";

/**
 * Group templates resolved through the bot's real Graph client against the Entra simulator:
 * GET /groups?$filter=displayName eq '<value>'&$select=id,displayName (Learn: "List groups", filter by
 * displayName), exact display-name match, exactly one group, cached.
 */
const TENANT = "7e7e7e7e-0000-4000-8000-000000000001";
const BOT = { clientId: "7e7e7e7e-0000-4000-8000-000000000002", clientSecret: "group-templates-secret" };
const G = {
  paymentsStaging: { id: "7e7e7e7e-0000-4000-8000-00000000000a", displayName: "sg-payments-staging" },
  paymentsCase: { id: "7e7e7e7e-0000-4000-8000-00000000000b", displayName: "SG-Payments-Prod" },
  dupA: { id: "7e7e7e7e-0000-4000-8000-00000000000c", displayName: "sg-shop-staging" },
  dupB: { id: "7e7e7e7e-0000-4000-8000-00000000000d", displayName: "sg-shop-staging" },
  quoted: { id: "7e7e7e7e-0000-4000-8000-00000000000e", displayName: "sg-o'brien-staging" },
  victim: { id: "7e7e7e7e-0000-4000-8000-00000000000f", displayName: "sg-victim" },
};

let sim: EntraSimulator;
let graph: GraphApi;
const groupCalls = () => sim.stats.requests.filter((r) => r.kind === "graph" && r.path === "/v1.0/groups");

beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT, groups: Object.values(G) });
  graph = simGraph(sim, BOT);
});
afterAll(async () => {
  await sim?.close();
});
beforeEach(() => sim.stats.reset());

const values = (path: string, env: string) => templateValues(path, env);

describe("template values", () => {
  it("{namespace} is the full namespace with / as -, {top} the top group, {project} the last segment", () => {
    expect(templateValues("payments/team-a/api", "staging")).toEqual({
      namespace: "payments-team-a",
      top: "payments",
      project: "api",
      environment: "staging",
    });
    const t = parseTemplate("sg-{top}-{namespace}-{project}-{environment}").template;
    if (!t) throw new Error("template did not parse");
    expect(renderTemplate(t, templateValues("a/b/c", "review/x"))).toBe("sg-a-a-b-c-review/x");
  });
});

describe("GroupResolver", () => {
  it("finds the one group whose display name is exactly the rendered template, with the documented request", async () => {
    const r = new GroupResolver(graph);
    const ids = await r.resolve(
      ["sg-{namespace}-{environment}"],
      values("payments/api", "staging"),
      "rules[0].environments.staging.groups",
    );
    expect(ids).toEqual([G.paymentsStaging.id]);
    const [call] = groupCalls();
    expect(call?.method).toBe("GET");
    expect(call?.query).toEqual({
      $filter: "displayName eq 'sg-payments-staging'",
      $select: "id,displayName",
    });
  });

  it("GUIDs pass through without a Graph call, lower-cased, duplicates dropped", async () => {
    const r = new GroupResolver(graph);
    const id = "AAAAAAAA-0000-4000-8000-000000000001";
    expect(await r.resolve([id, id.toLowerCase()], values("x/y", "staging"), "w")).toEqual([
      id.toLowerCase(),
    ]);
    expect(groupCalls()).toHaveLength(0);
  });

  it("missing: names the template, its value, where it is, and a case-only near miss", async () => {
    const r = new GroupResolver(graph);
    const err = await r
      .resolve(
        ["sg-{namespace}-prod"],
        values("payments/api", "production"),
        "rules[1].environments.production.groups",
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EntraError);
    expect((err as EntraError).code).toBe("PLAN_GROUP_NOT_FOUND");
    expect((err as EntraError).permanent).toBe(true);
    expect((err as Error).message).toContain(
      'group template "sg-{namespace}-prod" (policy key rules[1].environments.production.groups) gives "sg-payments-prod"',
    );
    expect((err as Error).message).toContain('differing only in case: "SG-Payments-Prod"');
  });

  it("ambiguous: two groups with the same display name are refused, both ids named", async () => {
    const err = await new GroupResolver(graph)
      .resolve(["sg-{namespace}-{environment}"], values("shop/web", "staging"), "environments.staging.groups")
      .catch((e: unknown) => e);
    expect((err as EntraError).code).toBe("PLAN_GROUP_AMBIGUOUS");
    expect((err as Error).message).toContain(G.dupA.id);
    expect((err as Error).message).toContain(G.dupB.id);
  });

  it("caches answers for the TTL, then asks Graph again", async () => {
    let now = 1_000_000;
    const r = new GroupResolver(graph, { ttlMs: 60_000, now: () => now });
    const ask = () => r.resolve(["sg-{namespace}-{environment}"], values("payments/a", "staging"), "w");
    await ask();
    await ask();
    await Promise.all([ask(), ask(), ask()]);
    expect(groupCalls()).toHaveLength(1);
    now += 59_999;
    await ask();
    expect(groupCalls()).toHaveLength(1);
    now += 2;
    await ask();
    expect(groupCalls()).toHaveLength(2);
  });

  it("a missing group is remembered only briefly, so creating it works soon after", async () => {
    let now = 0;
    const r = new GroupResolver(graph, { missingTtlMs: 5_000, now: () => now });
    const ask = () => r.resolve(["sg-{namespace}-{environment}"], values("new-team/app", "staging"), "w");
    await expect(ask()).rejects.toThrow(/no Entra group has exactly that display name/);
    const created = { id: "7e7e7e7e-0000-4000-8000-000000000010", displayName: "sg-new-team-staging" };
    sim.state.groups.set(created.id, { ...created, description: null, members: new Set() });
    await expect(ask()).rejects.toThrow(/no Entra group/);
    now += 5_001;
    expect(await ask()).toEqual([created.id]);
    sim.state.groups.delete(created.id);
  });

  it("hostile values cannot end the OData literal or widen the filter", async () => {
    const r = new GroupResolver(graph);
    // A quote in the value is doubled and matches only the group named with that quote.
    expect(await r.resolve(["sg-{project}-staging"], values("x/o'brien", "staging"), "w")).toEqual([
      G.quoted.id,
    ]);
    expect(groupCalls().at(-1)?.query?.$filter).toBe("displayName eq 'sg-o''brien-staging'");
    for (const env of [
      "x' or displayName eq 'sg-victim",
      "' or startswith(displayName,'sg') or displayName eq '",
      "x'&$filter=displayName eq 'sg-victim",
      "%27 or displayName eq %27sg-victim",
      "x#frag",
    ]) {
      const err = await r.resolve(["{environment}"], values("x/y", env), "w").catch((e: unknown) => e);
      expect((err as EntraError).code, env).toBe("PLAN_GROUP_NOT_FOUND");
      expect(groupCalls().at(-1)?.query?.$filter).toBe(`displayName eq '${env.replaceAll("'", "''")}'`);
    }
  });

  it("a value that cannot be a display name is refused before any Graph call", async () => {
    const r = new GroupResolver(graph);
    const err = await r
      .resolve(["sg-{environment}"], values("x/y", `a${"b".repeat(300)}`), "environments.staging.groups")
      .catch((e: unknown) => e);
    expect((err as EntraError).code).toBe("PLAN_INVALID");
    expect((err as Error).message).toMatch(
      /exceeds 256 characters \(policy key environments\.staging\.groups\)/,
    );
    const ctl = await r.resolve(["sg-{environment}"], values("x/y", "a\nb"), "w").catch((e: unknown) => e);
    expect((ctl as Error).message).toMatch(/control characters/);
    expect(groupCalls()).toHaveLength(0);
  });
});
