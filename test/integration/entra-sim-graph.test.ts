import { ClientSecretCredential } from "@azure/identity";
import { Client, RetryHandlerOptions } from "@microsoft/microsoft-graph-client";
import { TokenCredentialAuthenticationProvider } from "@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

const TENANT = "11111111-2222-3333-4444-555555555555";
const BOT = { clientId: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", clientSecret: "s3cret-value" };
const GROUP = { id: "99999999-0000-0000-0000-000000000001", displayName: "azure-prod-deployers" };
const ISSUER = "https://gitlab.example.com";
const AUD = "api://AzureADTokenExchange";

const fixture = (name: string) => fixtureJson(`graph/${name}`);

let sim: EntraSimulator;
let token: string;
/** The simulator's clock: real time unless a test freezes and steps it. */
const clock: { frozen: number | undefined } = { frozen: undefined };

beforeAll(async () => {
  sim = await startEntraSimulator({
    tenantId: TENANT,
    bot: BOT,
    groups: [GROUP],
    now: () => clock.frozen ?? Date.now(),
  });
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
  clock.frozen = undefined;
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
  as = token,
): Promise<Res> {
  const res = await fetch(`${sim.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${as}`,
      "accept-language": "en-US",
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function newApp(displayName = "gitlab-20-production"): Promise<{ id: string; appId: string }> {
  const res = await graph("POST", "/v1.0/applications", { displayName, signInAudience: "AzureADMyOrg" });
  expect(res.status).toBe(201);
  return res.body;
}

const fic = (name: string, subject: string) => ({ name, issuer: ISSUER, subject, audiences: [AUD] });

function expectGraphError(res: Res, status: number, code: string, message?: string | RegExp) {
  expect(res.status).toBe(status);
  expect(res.body.error.code).toBe(code);
  if (typeof message === "string") expect(res.body.error.message).toBe(message);
  else if (message) expect(res.body.error.message).toMatch(message);
  expect(Object.keys(res.body.error.innerError).sort()).toEqual(["client-request-id", "date", "request-id"]);
  expect(res.body.error.innerError["request-id"]).toBe(res.headers.get("request-id"));
  expect(res.body.error.innerError.date).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
}

describe("Graph through the real @microsoft/microsoft-graph-client", () => {
  it("creates, finds, updates and deletes an app, its SP and FICs", async () => {
    const credential = new ClientSecretCredential(TENANT, BOT.clientId, BOT.clientSecret, {
      authorityHost: sim.url,
      disableInstanceDiscovery: true,
    });
    const client = Client.initWithMiddleware({
      authProvider: new TokenCredentialAuthenticationProvider(credential, {
        scopes: [`${sim.url}/.default`],
      }),
      baseUrl: `${sim.url}/`,
      customHosts: new Set(["localhost"]),
      fetchOptions: { headers: { "Accept-Language": "en-US" } },
    });

    const created = await client.api("/applications").post({
      displayName: "gitlab-20-production",
      tags: ["gitlab-entra-bot", "gitlab-project:20", "gitlab-env:production"],
      signInAudience: "AzureADMyOrg",
      description: "managed by gitlab-entra-bot",
    });
    // Same keys as Microsoft's documented response, plus the properties we set.
    for (const key of Object.keys(fixture("application-create-response.json")))
      expect(created).toHaveProperty(key);
    expect(created).toMatchObject({ displayName: "gitlab-20-production", signInAudience: "AzureADMyOrg" });
    expect(created.appId).toMatch(/^[0-9a-f-]{36}$/);

    const listed = await client
      .api("/applications")
      .filter("tags/any(t:t eq 'gitlab-project:20')")
      .select("id,appId,displayName,tags")
      .get();
    expect(listed.value).toEqual([
      { id: created.id, appId: created.appId, displayName: "gitlab-20-production", tags: created.tags },
    ]);
    expect((await client.api("/applications").filter("displayName eq 'nope'").get()).value).toEqual([]);
    expect((await client.api(`/applications(appId='${created.appId}')`).get()).id).toBe(created.id);

    await client.api(`/applications/${created.id}`).patch({ description: "updated" });
    expect((await client.api(`/applications/${created.id}`).select("description").get()).description).toBe(
      "updated",
    );

    const sp = await client.api("/servicePrincipals").post({ appId: created.appId });
    for (const key of Object.keys(fixture("serviceprincipal-create-response.json")))
      expect(sp).toHaveProperty(key);
    const spByAppId = await client.api("/servicePrincipals").filter(`appId eq '${created.appId}'`).get();
    expect(spByAppId.value.map((s: { id: string }) => s.id)).toEqual([sp.id]);

    const upsert = client
      .api(`/applications/${created.id}/federatedIdentityCredentials(name='gitlab-main')`)
      .header("Prefer", "create-if-missing");
    const fresh = await upsert.patch({
      issuer: ISSUER,
      subject: "project_path:g/p:ref_type:branch:ref:main",
      audiences: [AUD],
    });
    expect(fresh).toMatchObject({ name: "gitlab-main", issuer: ISSUER, audiences: [AUD] });
    const again = await client
      .api(`/applications/${created.id}/federatedIdentityCredentials(name='gitlab-main')`)
      .header("Prefer", "create-if-missing")
      .patch({ issuer: ISSUER, subject: "project_path:g/p:ref_type:branch:ref:main", audiences: [AUD] });
    expect(again).toBeUndefined(); // 204

    const bySubject = await client
      .api(`/applications(appId='${created.appId}')/federatedIdentityCredentials`)
      .filter("subject eq 'project_path:g/p:ref_type:branch:ref:main'")
      .get();
    expect(bySubject.value).toHaveLength(1);
    expect(bySubject.value[0]).not.toHaveProperty("claimsMatchingExpression"); // v1.0 has no such property

    await client.api(`/applications/${created.id}/federatedIdentityCredentials/gitlab-main`).delete();
    await client.api(`/applications/${created.id}`).delete();
    expect(sim.state.applications.size).toBe(0);
    // The SP goes with its app; the bot's own service principal is all that is left.
    expect([...sim.state.servicePrincipals.keys()]).toEqual([sim.botServicePrincipalId]);

    // GraphError keeps Graph's code and request id.
    const error = await client
      .api(`/applications/${created.id}`)
      .middlewareOptions([new RetryHandlerOptions(0, 0)])
      .get()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 404, code: "Request_ResourceNotFound" });
    expect((error as { requestId: string }).requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("applications and service principals", () => {
  it("defaults signInAudience like Graph and honours tags, description, $select", async () => {
    const res = await graph("POST", "/v1.0/applications", {
      displayName: "x",
      tags: ["a"],
      description: "d",
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      "@odata.context": `${sim.url}/v1.0/$metadata#applications/$entity`,
      signInAudience: "AzureADandPersonalMicrosoftAccount",
      tags: ["a"],
      description: "d",
    });
    const selected = await graph("GET", `/v1.0/applications/${res.body.id}?$select=displayName`);
    expect(Object.keys(selected.body).filter((k) => !k.startsWith("@"))).toEqual(["displayName"]);
    const bad = await graph("GET", `/v1.0/applications?$filter=${encodeURIComponent("notes eq 'x'")}`);
    expectGraphError(bad, 400, "Request_UnsupportedQuery");
  });

  it("rejects unknown properties and a missing displayName", async () => {
    expectGraphError(
      await graph("POST", "/v1.0/applications", { displayName: "x", bogus: 1 }),
      400,
      "Request_BadRequest",
      /'bogus'/,
    );
    expectGraphError(
      await graph("POST", "/v1.0/applications", {}),
      400,
      "Request_BadRequest",
      /'displayName'/,
    );
  });

  it("answers 409 for a second SP of one app, and upserts SPs with Prefer: create-if-missing", async () => {
    const app = await newApp();
    const first = await graph("PATCH", `/v1.0/servicePrincipals(appId='${app.appId}')`, {}, {});
    expectGraphError(first, 404, "Request_ResourceNotFound");
    const created = await graph(
      "PATCH",
      `/v1.0/servicePrincipals(appId='${app.appId}')`,
      {},
      { prefer: "create-if-missing" },
    );
    expect(created.status).toBe(201);
    expect(created.body.appId).toBe(app.appId);
    const updated = await graph(
      "PATCH",
      `/v1.0/servicePrincipals(appId='${app.appId}')`,
      { tags: ["t"] },
      { prefer: "create-if-missing" },
    );
    expect(updated.status).toBe(204);
    expectGraphError(
      await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId }),
      409,
      "Request_MultipleObjectsWithSameKeyValue",
    );
    const got = await graph("GET", `/v1.0/servicePrincipals/${created.body.id}`);
    expect(got.body.tags).toEqual(["t"]);
    expect((await graph("DELETE", `/v1.0/servicePrincipals/${created.body.id}`)).status).toBe(204);
  });

  it("answers 400 Invalid language specified for Accept-Language: * (undici's default)", async () => {
    const res = await graph("GET", "/v1.0/applications", undefined, { "accept-language": "*" });
    expectGraphError(res, 400, "Request_BadRequest", "Invalid language specified.");
  });

  it("answers 403 Authorization_RequestDenied exactly like the fixture when an app role is missing", async () => {
    const readOnly = await startEntraSimulator({
      tenantId: TENANT,
      bot: { ...BOT, roles: ["Application.Read.All"] },
    });
    try {
      const cred = new ClientSecretCredential(TENANT, BOT.clientId, BOT.clientSecret, {
        authorityHost: readOnly.url,
        disableInstanceDiscovery: true,
      });
      const t = (await cred.getToken(`${readOnly.url}/.default`)).token;
      const res = await fetch(`${readOnly.url}/v1.0/applications`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${t}`,
          "accept-language": "en-US",
          "content-type": "application/json",
        },
        body: JSON.stringify({ displayName: "x" }),
      });
      expect(res.status).toBe(403);
      const body: Json = await res.json();
      const expected = fixture("error-insufficient-privileges-403.json") as {
        error: { code: string; message: string };
      };
      expect(body.error.code).toBe(expected.error.code);
      expect(body.error.message).toBe(expected.error.message);
      expect(readOnly.stats.writes()).toBe(1);
    } finally {
      await readOnly.close();
    }
  });
});

describe("federated identity credentials", () => {
  it("upserts: 201 with the body when created, 204 when updated; 404 without Prefer", async () => {
    const app = await newApp();
    const path = `/v1.0/applications/${app.id}/federatedIdentityCredentials(name='main')`;
    expectGraphError(await graph("PATCH", path, fic("main", "s1")), 404, "Request_ResourceNotFound");
    const created = await graph(
      "PATCH",
      path,
      { issuer: ISSUER, subject: "s1", audiences: [AUD] },
      { prefer: "create-if-missing" },
    );
    expect(created.status).toBe(201);
    const shape = Object.keys(fixture("fic-upsert-create-response.json")).sort();
    expect(Object.keys(created.body).sort()).toEqual(shape);
    expect(created.body.name).toBe("main");
    const updated = await graph(
      "PATCH",
      path,
      { issuer: ISSUER, subject: "s2", audiences: [AUD] },
      { prefer: "create-if-missing" },
    );
    expect(updated.status).toBe(204);
    expect(updated.body).toBeUndefined();
    const got = await graph("GET", `/v1.0/applications/${app.id}/federatedIdentityCredentials/main`);
    expect(got.body.subject).toBe("s2");
    const byId = await graph(
      "PATCH",
      `/v1.0/applications/${app.id}/federatedIdentityCredentials/${got.body.id}`,
      { description: "d" },
    );
    expect(byId.status).toBe(204);
  });

  it("POST: 201; 409 on a duplicate name (fixture wording); 400 on a duplicate issuer+subject", async () => {
    const app = await newApp();
    const path = `/v1.0/applications/${app.id}/federatedIdentityCredentials`;
    const created = await graph("POST", path, fic("main", "project_path:g/p:ref_type:branch:ref:main"));
    expect(created.status).toBe(201);
    expect(Object.keys(created.body).sort()).toEqual(
      Object.keys(fixture("fic-create-response.json"))
        .filter((k) => k !== "@odata.id")
        .sort(),
    );
    const dupName = await graph("POST", path, fic("main", "other"));
    expectGraphError(
      dupName,
      409,
      "Request_MultipleObjectsWithSameKeyValue",
      "FederatedIdentityCredential with name main already exists.",
    );
    const dupPair = await graph("POST", path, fic("other", "project_path:g/p:ref_type:branch:ref:main"));
    expectGraphError(
      dupPair,
      400,
      "InvalidFederatedIdentityCredentialValue",
      /^The combination of issuer and subject must be unique for the application\. Issuer https:\/\/gitlab\.example\.com and Subject: project_path:g\/p:ref_type:branch:ref:main already exist\./,
    );
  });

  it("validates name, audiences and subject; v1.0 rejects claimsMatchingExpression, beta accepts it", async () => {
    const app = await newApp();
    const v1 = `/v1.0/applications/${app.id}/federatedIdentityCredentials`;
    const beta = `/beta/applications/${app.id}/federatedIdentityCredentials`;
    for (const name of ["ab", "-leading-dash", "has space", "a".repeat(121)]) {
      expectGraphError(await graph("POST", v1, fic(name, "s")), 400, "Request_BadRequest", /'name'/);
    }
    expectGraphError(
      await graph("POST", v1, { ...fic("two-aud", "s"), audiences: [AUD, "x"] }),
      400,
      "Request_BadRequest",
      /'audiences'/,
    );
    expectGraphError(
      await graph("POST", v1, { name: "nosub", issuer: ISSUER, audiences: [AUD] }),
      400,
      "Request_BadRequest",
      /'subject'/,
    );
    const flexible = {
      name: "flex",
      issuer: ISSUER,
      audiences: [AUD],
      claimsMatchingExpression: {
        value: "claims['sub'] matches 'project_path:g/p:ref_type:branch:ref:*'",
        languageVersion: 1,
      },
    };
    expectGraphError(
      await graph("POST", v1, flexible),
      400,
      "Request_BadRequest",
      /claimsMatchingExpression/,
    );
    const ok = await graph("POST", beta, flexible);
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({
      subject: null,
      claimsMatchingExpression: flexible.claimsMatchingExpression,
    });
    expectGraphError(
      await graph("POST", beta, { ...flexible, name: "flex2", subject: "s" }),
      400,
      "Request_BadRequest",
      /'subject'/,
    );
    expectGraphError(
      await graph("POST", beta, {
        ...flexible,
        name: "flex3",
        claimsMatchingExpression: { value: "claims['sub'] like 'x'", languageVersion: 1 },
      }),
      400,
      "Request_BadRequest",
      /claimsMatchingExpression/,
    );
  });

  it("caps an app at 20 FICs: the 21st is 403 Directory_ResourceSizeExceeded (POST and upsert)", async () => {
    const app = await newApp();
    const path = `/v1.0/applications/${app.id}/federatedIdentityCredentials`;
    for (let i = 1; i <= 20; i++)
      expect((await graph("POST", path, fic(`fic-${i}`, `s${i}`))).status).toBe(201);
    expectGraphError(await graph("POST", path, fic("fic-21", "s21")), 403, "Directory_ResourceSizeExceeded");
    expectGraphError(
      await graph(
        "PATCH",
        `${path}(name='fic-21')`,
        { issuer: ISSUER, subject: "s21", audiences: [AUD] },
        { prefer: "create-if-missing" },
      ),
      403,
      "Directory_ResourceSizeExceeded",
    );
    expect((await graph("GET", path)).body.value).toHaveLength(20);
  });
});

describe("groups", () => {
  it("adds an SP (204), refuses a second add with the documented 400, lists it in memberOf, removes it", async () => {
    const app = await newApp();
    const sp = (await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId })).body;
    const ref = { "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${sp.id}` };
    const path = `/v1.0/groups/${GROUP.id}/members/$ref`;
    expect((await graph("POST", path, ref)).status).toBe(204);
    const expected = fixture("error-member-already-exists.json") as {
      error: { code: string; message: string };
    };
    expectGraphError(await graph("POST", path, ref), 400, expected.error.code, expected.error.message);

    const memberOf = await graph("GET", `/v1.0/servicePrincipals/${sp.id}/memberOf`);
    expect(memberOf.body.value).toEqual([
      expect.objectContaining({
        "@odata.type": "#microsoft.graph.group",
        id: GROUP.id,
        displayName: GROUP.displayName,
      }),
    ]);
    // v1.0 /members omits service principals (documented known issue); beta lists them.
    expect((await graph("GET", `/v1.0/groups/${GROUP.id}/members`)).body.value).toEqual([]);
    expect((await graph("GET", `/beta/groups/${GROUP.id}/members`)).body.value).toHaveLength(1);

    expect((await graph("DELETE", `/v1.0/groups/${GROUP.id}/members/${sp.id}/$ref`)).status).toBe(204);
    expectGraphError(
      await graph("DELETE", `/v1.0/groups/${GROUP.id}/members/${sp.id}/$ref`),
      404,
      "Request_ResourceNotFound",
    );
    expect((await graph("GET", `/v1.0/servicePrincipals/${sp.id}/memberOf`)).body.value).toEqual([]);
  });

  it("lists groups filtered by displayName (eq ignores case) with $select, as in Learn's group-list example", async () => {
    // Learn, "List groups": GET https://graph.microsoft.com/v1.0/groups?$filter=displayName eq '...'&$select=...
    const q = (name: string) =>
      `/v1.0/groups?$filter=${encodeURIComponent(`displayName eq '${name}'`)}&$select=id,displayName`;
    const exact = await graph("GET", q(GROUP.displayName));
    expect(exact.status).toBe(200);
    expect(exact.body.value).toEqual([{ id: GROUP.id, displayName: GROUP.displayName }]);
    expect(exact.body["@odata.context"]).toMatch(/\$metadata#groups/);
    expect((await graph("GET", q(GROUP.displayName.toUpperCase()))).body.value).toEqual([
      { id: GROUP.id, displayName: GROUP.displayName },
    ]);
    expect((await graph("GET", q("no-such-group"))).body.value).toEqual([]);
    // An unescaped quote is a syntax error, not a wider filter.
    const bad = await graph("GET", q("x' or displayName eq 'azure-prod-deployers"));
    expect(bad.status).toBe(400);
  });

  it("answers 404 Request_ResourceNotFound for an unknown member or group", async () => {
    const ghost = "5b31c38c-2584-42f0-aa47-657fb3a84230";
    const ref = { "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${ghost}` };
    const res = await graph("POST", `/v1.0/groups/${GROUP.id}/members/$ref`, ref);
    const expected = fixture("error-resource-not-found.json") as { error: { code: string; message: string } };
    expectGraphError(res, 404, expected.error.code, expected.error.message);
    expectGraphError(await graph("GET", `/v1.0/groups/${ghost}`), 404, "Request_ResourceNotFound");
  });

  it("hides a new SP for replicationDelayMs: 404 on $ref add and GET, then OK", async () => {
    // The simulator's clock is stepped by the test (startEntraSimulator's `now`): no waiting for real time.
    clock.frozen = Date.now();
    sim.faults.replicationDelayMs = 300;
    const app = await newApp();
    const sp = (await graph("POST", "/v1.0/servicePrincipals", { appId: app.appId })).body;
    const ref = { "@odata.id": `https://graph.microsoft.com/v1.0/directoryObjects/${sp.id}` };
    const path = `/v1.0/groups/${GROUP.id}/members/$ref`;
    expectGraphError(await graph("POST", path, ref), 404, "Request_ResourceNotFound");
    expectGraphError(await graph("GET", `/v1.0/servicePrincipals/${sp.id}`), 404, "Request_ResourceNotFound");
    clock.frozen += 299;
    expectGraphError(await graph("POST", path, ref), 404, "Request_ResourceNotFound");
    clock.frozen += 1;
    expect((await graph("POST", path, ref)).status).toBe(204);
    expect((await graph("GET", `/v1.0/servicePrincipals/${sp.id}`)).status).toBe(200);
    clock.frozen = undefined;
  });
});

describe("faults and stats", () => {
  it("throttles writes beyond writesPerSecond with 429 and a fractional Retry-After; reads pass", async () => {
    sim.faults.throttle = { writesPerSecond: 2 };
    const results = [];
    for (let i = 0; i < 5; i++)
      results.push(await graph("POST", "/v1.0/applications", { displayName: `a${i}` }));
    const throttled = results.filter((r) => r.status === 429);
    expect(throttled.length).toBeGreaterThan(0);
    const first = throttled[0] as Res;
    const retryAfter = first.headers.get("retry-after") ?? "";
    expect(retryAfter).toMatch(/^\d+\.\d+$/);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeLessThanOrEqual(0.5);
    const expected = fixture("error-throttled-429.json") as { error: Record<string, unknown> };
    expect(Object.keys(first.body.error).sort()).toEqual(Object.keys(expected.error).sort());
    expect(first.body.error.code).toBe("TooManyRequests");
    expect((await graph("GET", "/v1.0/applications")).status).toBe(200);
    expect(sim.stats.throttled()).toBe(throttled.length);
    expect(sim.stats.writes()).toBe(5);
    expect(sim.stats.reads()).toBe(1);
  });

  it("down: every Graph call is 503 with Retry-After until it is lifted", async () => {
    sim.faults.down = true;
    const res = await graph("GET", "/v1.0/applications");
    expectGraphError(res, 503, "ServiceUnavailable");
    expect(res.headers.get("retry-after")).toBe("1");
    sim.faults.down = false;
    expect((await graph("GET", "/v1.0/applications")).status).toBe(200);
  });

  it("failNext: fails the next N matching calls with the given status, code and Retry-After", async () => {
    const app = await newApp();
    sim.faults.failNext(2, 503, { retryAfterSeconds: 0.25, pathIncludes: "federatedIdentityCredentials" });
    expect((await graph("GET", `/v1.0/applications/${app.id}`)).status).toBe(200);
    const path = `/v1.0/applications/${app.id}/federatedIdentityCredentials`;
    const a = await graph("GET", path);
    expectGraphError(a, 503, "ServiceUnavailable");
    expect(a.headers.get("retry-after")).toBe("0.25");
    expect((await graph("GET", path)).status).toBe(503);
    expect((await graph("GET", path)).status).toBe(200);
    sim.faults.failNext(1, 429);
    const t = await graph("GET", "/v1.0/applications");
    expect(t.status).toBe(429);
    expect(t.headers.get("retry-after")).toBe("1");
  });

  it("control endpoints: POST /_sim/faults, GET /_sim/state, POST /_sim/reset", async () => {
    await newApp();
    const set = await fetch(`${sim.url}/_sim/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ down: true, replicationDelayMs: 5, throttle: { writesPerSecond: 10 } }),
    });
    expect(set.status).toBe(200);
    expect(sim.faults.down).toBe(true);
    const state: Json = await (await fetch(`${sim.url}/_sim/state`)).json();
    expect(state.applications).toHaveLength(1);
    expect(state.faults).toMatchObject({
      down: true,
      replicationDelayMs: 5,
      throttle: { writesPerSecond: 10 },
    });
    expect((await fetch(`${sim.url}/_sim/reset`, { method: "POST" })).status).toBe(200);
    expect(sim.faults.down).toBe(false);
    expect(sim.state.applications.size).toBe(0);
    const bad = await fetch(`${sim.url}/_sim/faults`, { method: "POST", body: JSON.stringify({ nope: 1 }) });
    expect(bad.status).toBe(400);
  });
});

describe("$batch", () => {
  it("runs items in dependsOn order, answers 424 for dependents of a failure, counts item writes", async () => {
    const app = await newApp();
    sim.stats.reset();
    const json = { "Content-Type": "application/json" };
    const res = await graph("POST", "/v1.0/$batch", {
      requests: [
        {
          id: "1",
          method: "POST",
          url: `/applications/${app.id}/federatedIdentityCredentials`,
          headers: json,
          body: fic("main", "s1"),
        },
        {
          id: "2",
          dependsOn: ["1"],
          method: "POST",
          url: `/applications/${app.id}/federatedIdentityCredentials`,
          headers: json,
          body: fic("main", "s2"),
        },
        {
          id: "3",
          dependsOn: ["2"],
          method: "GET",
          url: `applications/${app.id}/federatedIdentityCredentials`,
        },
        { id: "4", method: "GET", url: `/groups/${GROUP.id}` },
      ],
    });
    expect(res.status).toBe(200);
    const byId = Object.fromEntries(res.body.responses.map((r: { id: string }) => [r.id, r]));
    expect(byId["1"]).toMatchObject({ status: 201, body: { name: "main" } });
    expect(byId["2"]).toMatchObject({
      status: 409,
      body: { error: { code: "Request_MultipleObjectsWithSameKeyValue" } },
    });
    expect(byId["3"].status).toBe(424);
    expect(byId["4"]).toMatchObject({ status: 200, body: { id: GROUP.id } });
    expect(sim.stats.writes()).toBe(2); // the two POST items; the $batch envelope and the 424 item are not writes
    expect(sim.stats.reads()).toBe(1);
  });

  it("rejects more than 20 requests, duplicate ids and a body without Content-Type with 400", async () => {
    const many = Array.from({ length: 21 }, (_, i) => ({
      id: String(i),
      method: "GET",
      url: "/applications",
    }));
    expectGraphError(await graph("POST", "/v1.0/$batch", { requests: many }), 400, "BadRequest");
    const dup = [
      { id: "1", method: "GET", url: "/applications" },
      { id: "1", method: "GET", url: "/applications" },
    ];
    expectGraphError(await graph("POST", "/v1.0/$batch", { requests: dup }), 400, "BadRequest");
    const noType = [{ id: "1", method: "POST", url: "/applications", body: { displayName: "x" } }];
    expectGraphError(
      await graph("POST", "/beta/$batch", { requests: noType }),
      400,
      "BadRequest",
      /Content-Type/,
    );
  });

  it("throttles items individually: 429 items carry their own Retry-After", async () => {
    sim.faults.throttle = { writesPerSecond: 1 };
    const json = { "Content-Type": "application/json" };
    const requests = Array.from({ length: 3 }, (_, i) => ({
      id: String(i + 1),
      method: "POST",
      url: "/applications",
      headers: json,
      body: { displayName: `b${i}` },
    }));
    const res = await graph("POST", "/v1.0/$batch", { requests });
    expect(res.status).toBe(200);
    const statuses = res.body.responses.map((r: { status: number }) => r.status).sort();
    expect(statuses).toEqual([201, 429, 429]);
    const throttled = res.body.responses.find((r: { status: number }) => r.status === 429);
    expect(Number(throttled.headers["Retry-After"])).toBeGreaterThan(0);
    expect(sim.stats.throttled()).toBe(2);
  });
});
