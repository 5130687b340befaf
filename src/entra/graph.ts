/**
 * The narrow slice of Microsoft Graph the bot uses. Everything above this interface is SDK-agnostic, so a
 * move from @microsoft/microsoft-graph-client v3 to the Kiota SDK (or plain fetch) replaces graph-client.ts
 * only. All methods throw EntraError; none retries (BullMQ is the one retry layer).
 */
export interface GraphApplication {
  /** Object id. */
  id: string;
  /** Application (client) id. */
  appId: string;
  displayName: string;
  tags: string[];
}

export interface GraphServicePrincipal {
  id: string;
  appId: string;
}

export interface FicSpec {
  issuer: string;
  subject: string;
  audiences: string[];
  description?: string;
}

export interface GraphFic {
  id: string;
  name: string;
  issuer: string;
  /** Null for flexible FICs (claimsMatchingExpression), which the bot never writes. */
  subject: string | null;
  audiences: string[];
  description?: string | null | undefined;
}

export interface NewApplication {
  displayName: string;
  tags: string[];
  description?: string;
}

export interface GraphApi {
  /** Apps carrying the exact tag (all pages). */
  listApplicationsByTag(tag: string): Promise<GraphApplication[]>;
  /** Creates an app with signInAudience AzureADMyOrg. */
  createApplication(app: NewApplication): Promise<GraphApplication>;
  updateApplication(id: string, patch: Partial<NewApplication>): Promise<void>;
  deleteApplication(id: string): Promise<"deleted" | "absent">;

  getServicePrincipalByAppId(appId: string): Promise<GraphServicePrincipal | null>;
  /** PATCH servicePrincipals(appId='..') with Prefer: create-if-missing. */
  upsertServicePrincipal(
    appId: string,
    tags: string[],
  ): Promise<{ sp: GraphServicePrincipal; created: boolean }>;
  deleteServicePrincipal(id: string): Promise<"deleted" | "absent">;

  listFederatedCredentials(appObjectId: string): Promise<GraphFic[]>;
  /** PATCH .../federatedIdentityCredentials(name='..') with Prefer: create-if-missing. */
  upsertFederatedCredential(appObjectId: string, name: string, spec: FicSpec): Promise<"created" | "updated">;
  deleteFederatedCredential(appObjectId: string, idOrName: string): Promise<"deleted" | "absent">;

  /** Object ids of the security groups the principal is a direct member of. */
  listGroupMemberships(principalObjectId: string): Promise<string[]>;
  /** "already-member" when Graph answers its non-idempotent 400 "already exist". */
  addGroupMember(groupId: string, principalObjectId: string): Promise<"added" | "already-member">;
  removeGroupMember(groupId: string, principalObjectId: string): Promise<"removed" | "absent">;
}
