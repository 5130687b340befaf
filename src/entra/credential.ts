import {
  AzureAuthorityHosts,
  ClientCertificateCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  type TokenCredential,
  WorkloadIdentityCredential,
} from "@azure/identity";
import type { Config } from "../config/env.ts";

const KNOWN_AUTHORITY_HOSTS = new Set<string>(
  Object.values(AzureAuthorityHosts).map((h) => new URL(h).hostname),
);

/**
 * Instance discovery asks login.microsoft.com to validate the authority; a simulator or a private
 * authority is not on that list, so discovery must be skipped for anything that is not a Microsoft host.
 */
export function needsInstanceDiscoveryDisabled(authorityHost: string): boolean {
  return !KNOWN_AUTHORITY_HOSTS.has(new URL(authorityHost).hostname);
}

/** `<graph root>/.default`: tokens are cloud-specific, so the scope follows GRAPH_BASE_URL. */
export function graphScope(graphBaseUrl: string): string {
  return `${new URL(graphBaseUrl).origin}/.default`;
}

/** Builds the bot's own credential from config. Throws when the worker has no Azure credential configured. */
export function createTokenCredential(azure: Config["azure"]): TokenCredential {
  const c = azure.credential;
  if (!c) {
    throw new Error(
      "no Azure credential configured: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH (or run with a managed/workload identity)",
    );
  }
  const common = {
    authorityHost: azure.authorityHost,
    disableInstanceDiscovery: needsInstanceDiscoveryDisabled(azure.authorityHost),
  };
  switch (c.kind) {
    case "secret":
      if (!c.clientSecret) throw new Error("AZURE_CLIENT_SECRET is required for the secret credential");
      return new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, common);
    case "certificate":
      if (!c.certificatePath) {
        throw new Error("AZURE_CLIENT_CERTIFICATE_PATH is required for the certificate credential");
      }
      return new ClientCertificateCredential(
        c.tenantId,
        c.clientId,
        { certificatePath: c.certificatePath },
        common,
      );
    case "workload-identity":
      return new WorkloadIdentityCredential({
        ...common,
        tenantId: c.tenantId,
        clientId: c.clientId,
        ...(c.federatedTokenFile ? { tokenFilePath: c.federatedTokenFile } : {}),
      });
    case "managed-identity":
      // A user-assigned identity is selected by client id; the authority is fixed by the Azure host.
      return new ManagedIdentityCredential({ clientId: c.clientId });
  }
}
