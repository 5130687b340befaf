import { ClientSecretCredential } from "@azure/identity";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { createGitLabDriver } from "../../src/sandbox/gitlab-driver.ts";
import { type GitLabSimulator, startGitLabSimulator } from "../../src/sandbox/gitlab-sim.ts";
import { fixtureJson } from "../helpers/fixtures.ts";

/**
 * The other half of the contract: the simulators answer (and the GitLab driver delivers) in the shapes GitLab's
 * and Microsoft's documents show, so the bot is judged against documented answers. Compared by the documented
 * keys (a simulator may send more, as the real services do) and by error codes and message wording.
 */
type Json = Record<string, unknown>;
const TENANT = "11111111-2222-3333-4444-555555555555";
const BOT = { clientId: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", clientSecret: "contract-secret" };
const TOKEN = "glpat-contract-0123456789";
let entra: EntraSimulator;
let gitlab: GitLabSimulator;
let bearer = "";

beforeAll(async () => {
  entra = await startEntraSimulator({ tenantId: TENANT, bot: BOT });
  gitlab = await startGitLabSimulator({
    token: TOKEN,
    botUser: { id: 99, username: "bot" },
    users: [{ id: 1, username: "raymond_smith", name: "Raymond Smith" }],
  });
  const cred = new ClientSecretCredential(TENANT, BOT.clientId, BOT.clientSecret, {
    authorityHost: entra.url,
    disableInstanceDiscovery: true,
  });
  bearer = (await cred.getToken(`${entra.url}/.default`)).token;
});
afterAll(async () => {
  await entra?.close();
  await gitlab?.close();
});

async function graph(method: string, path: string, body?: unknown) {
  const res = await fetch(`${entra.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      "accept-language": "en-US",
      "content-type": "application/json",
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Json };
}
async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${gitlab.url}/api/v4${path}`, {
    method,
    headers: { "private-token": TOKEN, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Json & Json[] };
}
const keys = (o: unknown) => Object.keys(o as Json).sort();
const expectKeysOf = (actual: unknown, documented: unknown) =>
  expect(keys(actual)).toEqual(expect.arrayContaining(keys(documented)));

describe("the Graph simulator answers as Microsoft documents", () => {
  const fic = {
    name: "main",
    issuer: "https://gitlab.example.com",
    subject: "project_path:g/p:ref_type:branch:ref:main",
    audiences: ["api://AzureADTokenExchange"],
  };

  it("lists FICs with the documented fields (graph/fic-list-response.json)", async () => {
    const app = (await graph("POST", "/v1.0/applications", { displayName: "contract" })).body;
    expect(
      (await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, fic)).status,
    ).toBe(201);
    const list = await graph("GET", `/v1.0/applications/${app.id}/federatedIdentityCredentials`);
    const documented = fixtureJson<{ value: Json[] }>("graph/fic-list-response.json");
    expect(list.status).toBe(200);
    expectKeysOf(list.body, documented);
    // The documented example also carries a per-item "@odata.id", which the simulator does not model.
    const { "@odata.id": _, ...item } = documented.value[0] as Json;
    expectKeysOf((list.body.value as Json[])[0], item);
  });

  it("a second FIC with the same name: 409 as in graph/error-fic-conflict.json", async () => {
    const app = (await graph("POST", "/v1.0/applications", { displayName: "contract-conflict" })).body;
    await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, fic);
    const again = await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, {
      ...fic,
      subject: "other",
    });
    const documented = fixtureJson<{ error: Json }>("graph/error-fic-conflict.json");
    expect(again.status).toBe(409);
    expect((again.body.error as Json).code).toBe(documented.error.code);
    expect((again.body.error as Json).message).toBe(documented.error.message);
    expectKeysOf((again.body.error as Json).innerError, documented.error.innerError);
  });

  it("the same issuer and subject under another name: 400 as in graph/error-fic-duplicate-issuer-subject.json", async () => {
    const app = (await graph("POST", "/v1.0/applications", { displayName: "contract-pair" })).body;
    await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, fic);
    const again = await graph("POST", `/v1.0/applications/${app.id}/federatedIdentityCredentials`, {
      ...fic,
      name: "main-2",
    });
    const documented = fixtureJson<{ error: { code: string; message: string } }>(
      "graph/error-fic-duplicate-issuer-subject.json",
    );
    expect(again.status).toBe(400);
    expect((again.body.error as Json).code).toBe(documented.error.code);
    const template = documented.error.message
      .replaceAll("https://oidc.prod-aks.azure.com/5b15da40-59ed-401c-b5f6-09ac41c12d7e/", fic.issuer)
      .replaceAll("system:serviceaccount:default:workload-identity-sa", fic.subject);
    expect((again.body.error as Json).message).toBe(template);
  });

  it("answers $batch with the documented envelope (graph/batch-response.json)", async () => {
    const res = await graph("POST", "/v1.0/$batch", {
      requests: [{ id: "1", method: "GET", url: "/applications?$select=id" }],
    });
    const documented = fixtureJson<{ responses: Json[] }>("graph/batch-response.json");
    expect(res.status).toBe(200);
    expectKeysOf(res.body, documented);
    expectKeysOf((res.body.responses as Json[])[0], documented.responses[0]);
  });
});

describe("the GitLab simulator answers as GitLab documents", () => {
  it("project variables, effective members and environments carry the documented fields", async () => {
    const project = gitlab.addProject({
      path: "contract/answers",
      members: { 1: 30 },
      environments: [{ name: "review/fix-foo", tier: "development" }],
    });
    const created = await api("POST", `/projects/${project.id}/variables`, {
      key: "NEW_VARIABLE",
      value: "new value",
    });
    expect(created.status).toBe(201);
    const documentedVariable = fixtureJson("gitlab/api-project-variable-create-response.json");
    expectKeysOf(created.body, documentedVariable);
    expect(created.body).toMatchObject({
      variable_type: "env_var",
      environment_scope: "*",
      masked: false,
      protected: false,
      raw: false,
    });

    const member = await api("GET", `/projects/${project.id}/members/all/1`);
    expect(member.status).toBe(200);
    const documentedMember = fixtureJson("gitlab/api-project-member-all-response.json");
    expectKeysOf(
      member.body,
      Object.fromEntries(
        Object.entries(documentedMember).filter(([k]) => k !== "group_saml_identity" && k !== "email"),
      ),
    );
    expect(member.body).toMatchObject({ id: 1, username: "raymond_smith", access_level: 30 });

    const envs = await api("GET", `/projects/${project.id}/environments`);
    const [documentedEnv] = fixtureJson<Json[]>("gitlab/api-environments-list-response.json");
    const core = ["id", "name", "slug", "external_url", "state", "tier", "created_at", "updated_at"];
    expect(keys(envs.body[0])).toEqual(expect.arrayContaining(core));
    expect(keys(documentedEnv)).toEqual(expect.arrayContaining(core));
  });

  it("the driver delivers webhooks with GitLab's documented delivery headers (gitlab/webhook-request-headers.json)", async () => {
    let seen: Headers | undefined;
    const { createServer } = await import("node:http");
    const server = createServer((req, res) => {
      seen = new Headers(req.headers as Record<string, string>);
      res.setHeader("content-type", "application/json");
      res.end("{}");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const driver = createGitLabDriver({ gitlab, botUrl: () => `http://127.0.0.1:${port}`, secret: "s3cret" });
    await driver.send("System Hook", { event_name: "project_create" });
    await new Promise<void>((r) => server.close(() => r()));
    const documented = fixtureJson<Record<string, string>>("gitlab/webhook-request-headers.json");
    for (const name of Object.keys(documented)) expect(seen?.has(name), name).toBe(true);
    expect(seen?.get("user-agent")).toMatch(/^GitLab\/\d+\.\d+/);
    expect(seen?.get("x-gitlab-token")).toBe("s3cret");
  });
});
