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
  /**
   * Secrets and certificates on the app (password + key credentials), when the read selected them. The bot
   * never adds any: its identities log in only through federated credentials.
   */
  credentialCount?: number;
}

export interface GraphServicePrincipal {
  id: string;
  appId: string;
  /** As for GraphApplication, when the read selected them. */
  credentialCount?: number;
  /** false: Entra issues no token for the app at all (a retired identity). Absent = not read. */
  accountEnabled?: boolean;
}

/** One entry of an owners or ownedObjects list. */
export interface DirectoryObjectRef {
  id: string;
  /** OData type, e.g. "#microsoft.graph.servicePrincipal", "#microsoft.graph.user", "#microsoft.graph.application". */
  type: string;
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

export interface GraphGroup {
  id: string;
  displayName: string;
}

/**
 * One read a $batch can carry (drift's bulk sweep). Each is the very request its one-by-one method sends
 * (listApplicationOwners, getServicePrincipal, listFederatedCredentials, listGroupMemberships).
 */
export type BulkRead =
  | { kind: "owners"; appObjectId: string }
  | { kind: "servicePrincipal"; id: string }
  | { kind: "fics"; appObjectId: string }
  | { kind: "memberOf"; principalObjectId: string };

/** What a bulk read answered, by read; a read it could not answer in full is absent (read it alone). */
export interface BulkAnswers {
  owners(appObjectId: string): DirectoryObjectRef[] | undefined;
  servicePrincipal(id: string): GraphServicePrincipal | undefined;
  fics(appObjectId: string): GraphFic[] | undefined;
  memberOf(principalObjectId: string): string[] | undefined;
  /** HTTP requests the bulk read sent ($batch envelopes, retries included) and reads it answered. */
  readonly requests: number;
  readonly answered: number;
}

export interface BulkReadOptions {
  /**
   * Awaited before each request with the reads it makes as Entra counts them (the items of a $batch; a list
   * page counts 2, what Graph's throttling table charges for GET /applications): the sweep's low-priority
   * share of the pacer.
   */
  pace?: (reads: number) => Promise<void>;
  /** $batch requests in flight at once (default 4). */
  concurrency?: number;
}

export interface ListWithTagOptions extends Pick<BulkReadOptions, "pace"> {
  /**
   * Called for each app as its page arrives; only apps it returns true for are kept. Anyone can register apps
   * carrying any tag, so a caller that needs a few of them says which, and the listing's memory stays bounded
   * by those, not by how many were planted (default: keep all).
   */
  keep?: (app: GraphApplication) => boolean;
}

export interface GraphApi {
  /** Apps carrying the exact tag (all pages). */
  listApplicationsByTag(tag: string): Promise<GraphApplication[]>;
  /**
   * Every app carrying the tag, in pages of 999 with what getApplication reads (credential counts included):
   * one listing instead of one read per app.
   */
  listApplicationsWithTag(tag: string, opts?: ListWithTagOptions): Promise<GraphApplication[]>;
  /**
   * Every service principal carrying the tag (the bot tags its principals like their apps), in pages of 999
   * with what getServicePrincipal reads: drift's sweep reads its principals this way instead of one by one.
   */
  listServicePrincipalsWithTag(
    tag: string,
    opts?: Pick<BulkReadOptions, "pace"> & { keep?: (sp: GraphServicePrincipal) => boolean },
  ): Promise<GraphServicePrincipal[]>;
  /**
   * Reads in JSON $batch requests of 20 (reference/entra.md section 6). Only answers that are complete (200,
   * one page) are kept; an item throttled (429) is retried once after its Retry-After, anything else is left
   * out for the caller to read alone, so a bulk read never decides more than a one-by-one read would.
   */
  bulkRead(reads: readonly BulkRead[], opts?: BulkReadOptions): Promise<BulkAnswers>;
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

  // Ownership and read-your-writes (issue 12): the bot manages only objects it owns, found by id, never by search.

  /** GET /applications/{id} (with credential counts), or null on 404. */
  getApplication(id: string): Promise<GraphApplication | null>;
  /**
   * PATCH applications(uniqueName='..') with Prefer: create-if-missing (application-upsert): created=true on
   * 201; on 204 (it existed) the app is read back by the same key. Replaying it never makes a second app.
   */
  upsertApplication(
    uniqueName: string,
    app: NewApplication,
  ): Promise<{ app: GraphApplication; created: boolean }>;
  /** GET /applications(uniqueName='..'), or null on 404. */
  getApplicationByUniqueName(uniqueName: string): Promise<GraphApplication | null>;
  /** Direct owners of an app registration (all pages). */
  listApplicationOwners(appObjectId: string): Promise<DirectoryObjectRef[]>;
  /** GET /servicePrincipals/{id} (with credential counts), or null on 404. */
  getServicePrincipal(id: string): Promise<GraphServicePrincipal | null>;
  /** Direct owners of a service principal (all pages). */
  listServicePrincipalOwners(id: string): Promise<DirectoryObjectRef[]>;
  /** Objects a service principal owns: apps, service principals, ... (all pages). */
  listOwnedObjects(servicePrincipalId: string): Promise<DirectoryObjectRef[]>;

  /**
   * Groups whose displayName equals the value by Graph's `eq` (case-insensitive: callers compare exactly).
   * Needs GroupMember.Read.All or Group.Read.All (GroupMember.ReadWrite.All includes it).
   */
  listGroupsByDisplayName(displayName: string): Promise<GraphGroup[]>;

  /**
   * PATCH /servicePrincipals/{id} {accountEnabled}. Disabled, the app's tokens are refused with AADSTS7000112
   * whatever credential is presented: how a retired identity is kept for the audit trail without being usable.
   */
  setServicePrincipalEnabled(principalObjectId: string, enabled: boolean): Promise<void>;
}
