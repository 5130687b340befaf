import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GraphApi } from "../../src/entra/graph.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { type OidcIssuerServer, startOidcIssuerServer } from "../../src/sandbox/gitlab-oidc.ts";
import { simGraph } from "../helpers/entra.ts";

/**
 * A retired identity's service principal is disabled through the bot's Graph client (PATCH accountEnabled) and
 * Entra then refuses every token for the app, whatever credential is presented: AADSTS7000112 "Application
 * '<appId>'(<name>) is disabled." with error unauthorized_client (the body quoted in Worklytics/psoxy#74).
 */
const TENANT = "0d0d0d0d-aaaa-bbbb-cccc-000000000001";
const BOT = { clientId: "0d0d0d0d-aaaa-bbbb-cccc-000000000002", clientSecret: "sim-only-secret" };
const AUD = "api://AzureADTokenExchange";
const SUBJECT = "project_path:g/p:ref_type:branch:ref:main";
let sim: EntraSimulator;
let gitlab: OidcIssuerServer;
let graph: GraphApi;

beforeAll(async () => {
  sim = await startEntraSimulator({ tenantId: TENANT, bot: BOT });
  gitlab = await startOidcIssuerServer();
  graph = simGraph(sim, BOT);
});
afterAll(async () => {
  await sim?.close();
  await gitlab?.close();
});

describe("disabling a service principal", () => {
  it("PATCH accountEnabled false: read back disabled, and the app's federated login is refused with AADSTS7000112", async () => {
    const app = await graph.createApplication({ displayName: "gitlab-g/p-production", tags: ["t"] });
    const { sp } = await graph.upsertServicePrincipal(app.appId, ["t"]);
    await graph.upsertFederatedCredential(app.id, "gitlab-branch-main", {
      issuer: gitlab.url,
      subject: SUBJECT,
      audiences: [AUD],
    });
    expect((await graph.getServicePrincipalByAppId(app.appId))?.accountEnabled).toBe(true);
    const token = await gitlab.issuer.mint({
      issuer: gitlab.url,
      audience: AUD,
      project: { id: 1, path: "g/p" },
      ref: "main",
      refType: "branch",
    });
    expect((await sim.exchange({ clientId: app.appId, assertion: token })).status).toBe(200);

    sim.stats.reset();
    await graph.setServicePrincipalEnabled(sp.id, false);
    // One write, to the documented "Update servicePrincipal" endpoint.
    expect(sim.stats.requests.filter((r) => r.kind === "graph")).toEqual([
      expect.objectContaining({ method: "PATCH", path: `/v1.0/servicePrincipals/${sp.id}`, status: 204 }),
    ]);
    expect((await graph.getServicePrincipalByAppId(app.appId))?.accountEnabled).toBe(false);

    const refused = await sim.exchange({ clientId: app.appId, assertion: token });
    expect(refused.status).toBe(400);
    const body = refused.body as { error: string; error_description: string; error_codes: number[] };
    expect(body.error).toBe("unauthorized_client");
    expect(body.error_codes).toEqual([7000112]);
    expect(body.error_description).toMatch(
      new RegExp(`^AADSTS7000112: Application '${app.appId}'\\(gitlab-g/p-production\\) is disabled\\.`),
    );

    await graph.setServicePrincipalEnabled(sp.id, true);
    expect((await sim.exchange({ clientId: app.appId, assertion: token })).status).toBe(200);
  });
});
