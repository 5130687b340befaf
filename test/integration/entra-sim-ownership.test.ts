import { ClientSecretCredential } from "@azure/identity";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

/**
 * The simulator as a judge of ownership and of Entra's replication (reference/entra.md §9): who owns what the
 * bot creates, the application upsert by uniqueName, and the answers real Graph gives right after a create,
 * pinned against the fixtures' bodies.
 */
const TENANT = "21212121-2222-3333-4444-555555555555";
const BOT = { clientId: "abababab-bbbb-cccc-dddd-eeeeeeeeeeee", clientSecret: "sim-only-secret" };
const GROUP = { id: "98989898-0000-0000-0000-000000000001", displayName: "azure-prod-deployers" };
const USER = "5b31c38c-2584-42f0-aa47-657fb3a84230";

let sim: EntraSimulator;
let token: string;

beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT, groups: [GROUP] });
  const cred = new ClientSecretCredential(TENANT, BOT.clientId, BOT.clientSecret, {
    authorityHost: sim.url,
    disableInstanceDiscovery: true,
  });
  token = (await cred.getToken(`${sim.url}/.default`)).token;
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => {
  sim.reset();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON and assert on its exact shape
type Json = any;
interface Res {
  status: number;
  headers: Headers;
  body: Json;
}

async function graph(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Res> {
  const res = await fetch(`${sim.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      "accept-language": "en-US",
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

const newApp = async (displayName = "gitlab-30-production") =>
  (await graph("POST", "/v1.0/applications", { displayName, signInAudience: "AzureADMyOrg" })).body as {
    id: string;
    appId: string;
  };
const newSp = async (appId: string) =>
  (await graph("POST", "/v1.0/servicePrincipals", { appId })).body as { id: string; appId: string };

/** The error object without innerError's per-request values (ids and date). */
function stable(body: Json) {
  const { innerError, ...rest } = body.error;
  expect(Object.keys(innerError).sort()).toEqual(["client-request-id", "date", "request-id"]);
  return rest;
}

describe("ownership", () => {
  it("the bot's own service principal is a directory object, found by its client id", async () => {
    const res = await graph("GET", `/v1.0/servicePrincipals(appId='${BOT.clientId}')?$select=id,appId`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: sim.botServicePrincipalId, appId: BOT.clientId });
    sim.reset();
    expect((await graph("GET", `/v1.0/servicePrincipals/${sim.botServicePrincipalId}`)).status).toBe(200);
  });

  it("what the bot creates it owns: apps and service principals list it as owner, ownedObjects lists them", async () => {
    const app = await newApp();
    const sp = await newSp(app.appId);
    const appOwners = await graph("GET", `/v1.0/applications/${app.id}/owners?$select=id`);
    expect(appOwners.body.value).toEqual([
      { "@odata.type": "#microsoft.graph.servicePrincipal", id: sim.botServicePrincipalId },
    ]);
    const spOwners = await graph("GET", `/v1.0/servicePrincipals/${sp.id}/owners?$select=id`);
    expect(spOwners.body.value.map((o: Json) => o.id)).toEqual([sim.botServicePrincipalId]);
    const owned = await graph(
      "GET",
      `/v1.0/servicePrincipals/${sim.botServicePrincipalId}/ownedObjects?$select=id`,
    );
    expect(owned.status).toBe(200);
    expect(owned.body.value).toEqual(
      expect.arrayContaining([
        { "@odata.type": "#microsoft.graph.application", id: app.id },
        { "@odata.type": "#microsoft.graph.servicePrincipal", id: sp.id },
      ]),
    );
    expect(owned.body.value).toHaveLength(2);
  });

  it("owners that are not service principals are listed as users; ownedObjects pages with $top", async () => {
    const app = await newApp();
    sim.state.applications.get(app.id)?.owners.push(USER);
    const owners = await graph("GET", `/v1.0/applications/${app.id}/owners?$select=id`);
    expect(owners.body.value).toEqual([
      { "@odata.type": "#microsoft.graph.servicePrincipal", id: sim.botServicePrincipalId },
      { "@odata.type": "#microsoft.graph.user", id: USER },
    ]);
    for (let i = 0; i < 2; i++) await newApp(`extra-${i}`);
    const page = await graph(
      "GET",
      `/v1.0/servicePrincipals/${sim.botServicePrincipalId}/ownedObjects?$select=id&$top=2`,
    );
    expect(page.body.value).toHaveLength(2);
    expect(page.body["@odata.nextLink"]).toContain("skiptoken");
  });

  it("lists secrets an owner added, without their values", async () => {
    const app = await newApp();
    const simApp = sim.state.applications.get(app.id);
    if (simApp) simApp.passwordCredentials = 1;
    const res = await graph(
      "GET",
      `/v1.0/applications/${app.id}?$select=id,passwordCredentials,keyCredentials`,
    );
    expect(res.body.passwordCredentials).toHaveLength(1);
    expect(res.body.passwordCredentials[0].secretText).toBeNull();
    expect(res.body.keyCredentials).toEqual([]);
  });
});

describe("application upsert by uniqueName (application-upsert)", () => {
  it("201 with the app the first time, 204 after; the same object; the key is immutable and unique", async () => {
    const path = "/v1.0/applications(uniqueName='gitlab-entra-bot-7e2a')";
    const prefer = { prefer: "create-if-missing" };
    const first = await graph("PATCH", path, { displayName: "a", tags: ["t"] }, prefer);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ uniqueName: "gitlab-entra-bot-7e2a", displayName: "a" });
    const again = await graph("PATCH", path, { displayName: "b", tags: ["t"] }, prefer);
    expect(again.status).toBe(204);
    expect(sim.state.applications.size).toBe(1);
    const got = await graph("GET", `${path}?$select=id,displayName`);
    expect(got.body).toMatchObject({ id: first.body.id, displayName: "b" });
    expect(
      (await graph("PATCH", "/v1.0/applications(uniqueName='other')", { displayName: "x" })).status,
    ).toBe(404);
    expect(
      (await graph("PATCH", `/v1.0/applications/${first.body.id}`, { uniqueName: "renamed" })).status,
    ).toBe(400);
    expect(
      (await graph("POST", "/v1.0/applications", { displayName: "c", uniqueName: "gitlab-entra-bot-7e2a" }))
        .status,
    ).toBe(409);
    const owners = await graph("GET", `/v1.0/applications/${first.body.id}/owners?$select=id`);
    expect(owners.body.value.map((o: Json) => o.id)).toEqual([sim.botServicePrincipalId]);
  });
});

describe("replication right after a create (faults.replication)", () => {
  it("spCreate no-backing-application: 400 NoBackingApplicationObject exactly as the fixture, for POST and upsert", async () => {
    sim.faults.replication.spCreate = { answer: "no-backing-application", times: 2 };
    const app = await newApp();
    const expected = fixtureJson<{ error: Json }>("graph/error-sp-no-backing-application.json").error;
    const swap = (s: string) => s.replaceAll("5b31c38c-2584-42f0-aa47-657fb3a84230", app.appId);
    const post = await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId });
    expect(post.status).toBe(400);
    expect(stable(post.body)).toEqual({
      code: expected.code,
      message: swap(expected.message),
      details: expected.details.map((d: Json) => ({ ...d, message: swap(d.message) })),
    });
    const upsert = await graph(
      "PATCH",
      `/v1.0/servicePrincipals(appId='${app.appId}')`,
      {},
      { prefer: "create-if-missing" },
    );
    expect(upsert.status).toBe(400);
    expect(upsert.body.error.details[0].code).toBe("NoBackingApplicationObject");
    // Replicated: the third try succeeds, and reads by id never lagged.
    expect((await graph("GET", `/v1.0/applications/${app.id}`)).status).toBe(200);
    expect((await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId })).status).toBe(201);
  });

  it("spCreate not-local-tenant: 403 Authorization_RequestDenied exactly as the fixture, then 201", async () => {
    sim.faults.replication.spCreate = { answer: "not-local-tenant", times: 1 };
    const app = await newApp();
    const expected = fixtureJson<{ error: Json }>("graph/error-sp-backing-application-not-local.json").error;
    const res = await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId });
    expect(res.status).toBe(403);
    expect(stable(res.body)).toEqual({ code: expected.code, message: expected.message });
    expect((await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId })).status).toBe(201);
  });

  it("spCreate lags per app, and forMs lags by age", async () => {
    sim.faults.replication.spCreate = { answer: "no-backing-application", forMs: 60_000 };
    const young = await newApp("young");
    const old = await newApp("old");
    const oldApp = sim.state.applications.get(old.id);
    if (oldApp) oldApp.createdAtMs -= 120_000;
    expect((await graph("POST", "/v1.0/servicePrincipals", { appId: young.appId })).status).toBe(400);
    expect((await graph("POST", "/v1.0/servicePrincipals", { appId: old.appId })).status).toBe(201);
  });

  it("memberAdd: 404 Request_ResourceNotFound naming the new principal (fixture wording), then 204", async () => {
    sim.faults.replication.memberAdd = { times: 2 };
    const sp = await newSp((await newApp()).appId);
    const ref = { "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${sp.id}` };
    const path = `/v1.0/groups/${GROUP.id}/members/$ref`;
    const expected = fixtureJson<{ error: Json }>("graph/error-resource-not-found.json").error;
    for (let i = 0; i < 2; i++) {
      const res = await graph("POST", path, ref);
      expect(res.status).toBe(404);
      expect(stable(res.body)).toEqual({
        code: expected.code,
        message: expected.message.replace("5b31c38c-2584-42f0-aa47-657fb3a84230", sp.id),
      });
    }
    // The principal itself reads fine meanwhile: only the group's replica lags.
    expect((await graph("GET", `/v1.0/servicePrincipals/${sp.id}`)).status).toBe(200);
    expect((await graph("POST", path, ref)).status).toBe(204);
  });

  it("staleLists: a new app is missing from $filter lists for N reads while GET by id works", async () => {
    sim.faults.replication.staleLists = { times: 2 };
    const created = await graph("POST", "/v1.0/applications", {
      displayName: "s",
      tags: ["gitlab-project:9"],
    });
    const list = `/v1.0/applications?$filter=${encodeURIComponent("tags/any(t:t eq 'gitlab-project:9')")}`;
    expect((await graph("GET", list)).body.value).toEqual([]);
    expect((await graph("GET", `/v1.0/applications/${created.body.id}`)).status).toBe(200);
    expect((await graph("GET", list)).body.value).toEqual([]);
    expect((await graph("GET", list)).body.value.map((a: Json) => a.id)).toEqual([created.body.id]);
    // A list that the app does not match does not use up its staleness.
    sim.faults.replication.staleLists = { times: 1 };
    const other = await graph("POST", "/v1.0/applications", {
      displayName: "o",
      tags: ["gitlab-project:10"],
    });
    await graph("GET", list);
    const otherList = `/v1.0/applications?$filter=${encodeURIComponent("tags/any(t:t eq 'gitlab-project:10')")}`;
    expect((await graph("GET", otherList)).body.value).toEqual([]);
    expect((await graph("GET", otherList)).body.value.map((a: Json) => a.id)).toEqual([other.body.id]);
  });

  it("a committed failure: Graph creates the app and the answer is lost (504)", async () => {
    sim.faults.failNext(1, 504, { pathIncludes: "uniqueName", committed: true });
    const path = "/v1.0/applications(uniqueName='gitlab-entra-bot-lost')";
    const res = await graph("PATCH", path, { displayName: "lost" }, { prefer: "create-if-missing" });
    expect(res.status).toBe(504);
    expect(sim.state.applications.size).toBe(1);
    expect(
      (await graph("PATCH", path, { displayName: "lost" }, { prefer: "create-if-missing" })).status,
    ).toBe(204);
    expect(sim.state.applications.size).toBe(1);
  });

  it("POST /_sim/faults sets the replication modes; reset clears them", async () => {
    const res = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        replication: {
          spCreate: { answer: "not-local-tenant", times: 3 },
          memberAdd: { forMs: 1000 },
          staleLists: { times: 1 },
        },
      }),
    });
    expect(res.status).toBe(200);
    expect(sim.faults.replication).toEqual({
      spCreate: { answer: "not-local-tenant", times: 3 },
      memberAdd: { forMs: 1000 },
      staleLists: { times: 1 },
    });
    const bad = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ replication: { spCreate: { answer: "maybe" } } }),
    });
    expect(bad.status).toBe(400);
    sim.reset();
    expect(sim.faults.replication).toEqual({ spCreate: null, memberAdd: null, staleLists: null });
  });
});
