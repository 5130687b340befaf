import { ClientSecretCredential } from "@azure/identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";

const TENANT = "11111111-2222-3333-4444-555555555555";
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON and assert on its exact shape
type Json = any;
const BOT = { clientId: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", clientSecret: "s3cret-value" };

let sim: EntraSimulator;
beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT });
});
afterAll(async () => {
  await sim.close();
});

function credential(secret = BOT.clientSecret): ClientSecretCredential {
  return new ClientSecretCredential(TENANT, BOT.clientId, secret, {
    authorityHost: sim.url,
    disableInstanceDiscovery: true,
  });
}

describe("Entra simulator login authority with the real @azure/identity", () => {
  it("issues a Graph token to the bot via ClientSecretCredential, and Graph accepts it", async () => {
    const token = await credential().getToken(`${sim.url}/.default`);
    expect(token.token.split(".")).toHaveLength(3);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now());
    const login = sim.stats.requests.filter((r) => r.kind === "login").map((r) => `${r.method} ${r.path}`);
    expect(login).toContain(`GET /${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(login).toContain(`POST /${TENANT}/oauth2/v2.0/token`);

    const res = await fetch(`${sim.url}/v1.0/applications`, {
      headers: { authorization: `Bearer ${token.token}`, "accept-language": "en-US" },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ value: [] });
  });

  it("also accepts the public Graph scope and puts the bot's roles in the token", async () => {
    const token = await credential().getToken("https://graph.microsoft.com/.default");
    const payload = JSON.parse(Buffer.from(token.token.split(".")[1] ?? "", "base64url").toString());
    expect(payload).toMatchObject({
      aud: "https://graph.microsoft.com",
      appid: BOT.clientId,
      tid: TENANT,
      idtyp: "app",
      roles: ["Application.ReadWrite.OwnedBy", "GroupMember.ReadWrite.All", "Application.ReadWrite.All"],
    });
    expect(payload.oid).toBe(sim.botServicePrincipalId);
  });

  it("rejects a wrong client secret with 401 invalid_client AADSTS7000215", async () => {
    const res = await fetch(`${sim.url}/${TENANT}/oauth2/v2.0/token`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: BOT.clientId,
        client_secret: "wrong",
        scope: "https://graph.microsoft.com/.default",
      }),
    });
    expect(res.status).toBe(401);
    const body: Json = await res.json();
    expect(body).toMatchObject({ error: "invalid_client", error_codes: [7000215] });
    expect(body.error_description).toMatch(/^AADSTS7000215: Invalid client secret provided/);
    expect(Object.keys(body).sort()).toEqual(
      [
        "correlation_id",
        "error",
        "error_codes",
        "error_description",
        "error_uri",
        "timestamp",
        "trace_id",
      ].sort(),
    );
    await expect(credential("wrong").getToken(`${sim.url}/.default`)).rejects.toThrow(/AADSTS7000215/);
  });

  it("rejects a scope without /.default (client credentials) with AADSTS1002012", async () => {
    const res = await fetch(`${sim.url}/${TENANT}/oauth2/v2.0/token`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: BOT.clientId,
        client_secret: BOT.clientSecret,
        scope: "https://graph.microsoft.com/Application.ReadWrite.All",
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "invalid_scope", error_codes: [1002012] });
  });

  it("answers Graph calls without a valid bearer token with 401 InvalidAuthenticationToken", async () => {
    for (const authorization of [undefined, "Bearer not-a-jwt"]) {
      const res = await fetch(`${sim.url}/v1.0/applications`, {
        headers: { "accept-language": "en-US", ...(authorization ? { authorization } : {}) },
      });
      expect(res.status).toBe(401);
      expect(res.headers.get("request-id")).toMatch(/^[0-9a-f-]{36}$/);
      const body: Json = await res.json();
      expect(body.error.code).toBe("InvalidAuthenticationToken");
      expect(body.error.innerError["request-id"]).toBe(res.headers.get("request-id"));
    }
  });

  it("refuses a token for another resource (ARM) at Graph", async () => {
    const token = await credential().getToken("https://management.azure.com/.default");
    const res = await fetch(`${sim.url}/v1.0/applications`, {
      headers: { authorization: `Bearer ${token.token}`, "accept-language": "en-US" },
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as Json).error.message).toMatch(/Invalid audience/);
  });
});
