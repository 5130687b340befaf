import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/env.ts";
import { createGraphApiFromConfig } from "../../src/entra/graph-client.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { type ServiceAccountIssuer, startServiceAccountIssuer } from "../helpers/service-account-issuer.ts";

/**
 * The bot's own Entra credential from workload identity federation, as overlays/workload-identity runs it: no
 * client secret, a projected Kubernetes service account token in AZURE_FEDERATED_TOKEN_FILE, and a federated
 * credential on the bot's app trusting the cluster's issuer. The real config loader and the real Graph client
 * (@azure/identity's WorkloadIdentityCredential) log in to the Entra simulator and call Graph.
 */

const AUDIENCE = "api://AzureADTokenExchange";
const NAMESPACE = "gitlab-entra-bot";
const SERVICE_ACCOUNT = "gitlab-entra-bot";
let issuer: ServiceAccountIssuer;
let entra: EntraSimulator;
const dir = mkdtempSync(join(tmpdir(), "geb-workload-identity-"));

beforeAll(async () => {
  issuer = await startServiceAccountIssuer();
  entra = await startEntraSimulator({
    tenantId: SANDBOX.tenantId,
    // A secret exists on the app, but the bot is never given it.
    bot: {
      clientId: SANDBOX.botClientId,
      clientSecret: randomUUID(),
      federatedCredentials: [
        {
          name: "kubernetes-gitlab-entra-bot",
          issuer: issuer.url,
          subject: `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`,
          audiences: [AUDIENCE],
        },
      ],
    },
  });
});
afterAll(async () => {
  await entra?.close();
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function workerConfigWithToken(token: string) {
  const file = join(dir, `${randomUUID()}.token`);
  writeFileSync(file, token);
  return loadConfig(
    {
      GITLAB_URL: "https://gitlab.example.com",
      GITLAB_TOKEN: "t",
      AZURE_TENANT_ID: SANDBOX.tenantId,
      AZURE_CLIENT_ID: SANDBOX.botClientId,
      AZURE_FEDERATED_TOKEN_FILE: file,
      // What the Secret's empty key becomes: unset.
      AZURE_CLIENT_SECRET: "",
      AZURE_AUTHORITY_HOST: entra.url,
      GRAPH_BASE_URL: entra.url,
    },
    "worker",
  );
}

describe("the bot's own credential from a Kubernetes service account token (workload identity)", () => {
  it("with only AZURE_FEDERATED_TOKEN_FILE set, the worker uses workload identity and Graph answers", async () => {
    const token = await issuer.mint({
      namespace: NAMESPACE,
      serviceAccount: SERVICE_ACCOUNT,
      audience: AUDIENCE,
    });
    const config = await workerConfigWithToken(token);
    expect(config.azure.credential?.kind).toBe("workload-identity");
    entra.stats.reset();
    const graph = createGraphApiFromConfig(config);
    expect(await graph.listApplicationsByTag("gitlab-entra-bot")).toEqual([]);
    expect(entra.stats.requests.filter((r) => r.kind === "login" && r.path.endsWith("/token"))).toEqual([
      expect.objectContaining({ method: "POST", status: 200 }),
    ]);
    expect(entra.stats.reads()).toBe(1);
  });

  it("a token of another service account is refused by Entra: no federated credential matches (AADSTS70021)", async () => {
    const token = await issuer.mint({ namespace: NAMESPACE, serviceAccount: "default", audience: AUDIENCE });
    const graph = createGraphApiFromConfig(await workerConfigWithToken(token));
    entra.stats.reset();
    await expect(graph.listApplicationsByTag("gitlab-entra-bot")).rejects.toThrow(/AADSTS70021/);
    expect(entra.stats.reads()).toBe(0);
  });

  it("a token for another audience is refused too", async () => {
    const token = await issuer.mint({
      namespace: NAMESPACE,
      serviceAccount: SERVICE_ACCOUNT,
      audience: "kubernetes",
    });
    const graph = createGraphApiFromConfig(await workerConfigWithToken(token));
    await expect(graph.listApplicationsByTag("gitlab-entra-bot")).rejects.toThrow(/AADSTS70021/);
  });
});
