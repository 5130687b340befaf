import { EntraError } from "./errors.ts";
import type { BulkAnswers, GraphApi, GraphApplication, GraphServicePrincipal } from "./graph.ts";

/**
 * What drift's bulk sweep read ahead of planning: the bot-tagged apps (one paged listing) and the owners,
 * service principals, federated credentials and memberships of the identities in one chunk ($batch).
 */
export interface GraphSnapshot {
  /** Apps from the listing, by object id. */
  apps: ReadonlyMap<string, GraphApplication>;
  /** Apps from the listing, by their tags: answers listApplicationsByTag for any tag the listing covered. */
  byTag: ReadonlyMap<string, readonly GraphApplication[]>;
  /** Whether the listing covered every app carrying this tag (it did for tags only tagged apps carry). */
  covers(tag: string): boolean;
  bulk: BulkAnswers;
  /** Service principals from the sweep's listing, by object id (only those the caller vouches still exist). */
  sps?: ReadonlyMap<string, GraphServicePrincipal>;
}

const readOnly = (what: string) =>
  new EntraError({
    code: "GRAPH_INVALID",
    permanent: true,
    message: `drift's read-ahead snapshot is read-only: ${what} must go through the live Graph client`,
  });

/**
 * A GraphApi that answers reads from a snapshot and everything the snapshot does not hold from live Graph.
 * It only ever serves a plan: the bulk sweep plans every project against it, and a project whose plan shows
 * any difference is re-planned and repaired with live reads only (drift.ts), so a stale snapshot can cost a
 * repair that finds nothing to do, or leave a difference for the next sweep, but never cause a write. Writes
 * throw. The snapshot holds only positive, complete answers: a miss is a live read, never a "not found".
 */
export function snapshotGraph(live: GraphApi, snap: GraphSnapshot): GraphApi {
  return {
    listApplicationsByTag: async (tag) =>
      snap.covers(tag) ? [...(snap.byTag.get(tag) ?? [])] : live.listApplicationsByTag(tag),
    listApplicationsWithTag: (tag, o) => live.listApplicationsWithTag(tag, o),
    bulkRead: (reads, o) => live.bulkRead(reads, o),
    listServicePrincipalsWithTag: (tag, o) => live.listServicePrincipalsWithTag(tag, o),
    getApplication: async (id) => snap.apps.get(id) ?? live.getApplication(id),
    listApplicationOwners: async (id) => snap.bulk.owners(id) ?? live.listApplicationOwners(id),
    getServicePrincipal: async (id) =>
      snap.sps?.get(id) ?? snap.bulk.servicePrincipal(id) ?? live.getServicePrincipal(id),
    getServicePrincipalByAppId: (appId) => live.getServicePrincipalByAppId(appId),
    listFederatedCredentials: async (id) => snap.bulk.fics(id) ?? live.listFederatedCredentials(id),
    listGroupMemberships: async (id) => snap.bulk.memberOf(id) ?? live.listGroupMemberships(id),
    getApplicationByUniqueName: (u) => live.getApplicationByUniqueName(u),
    listServicePrincipalOwners: (id) => live.listServicePrincipalOwners(id),
    listOwnedObjects: (id) => live.listOwnedObjects(id),
    listGroupsByDisplayName: (name) => live.listGroupsByDisplayName(name),

    createApplication: () => Promise.reject(readOnly("createApplication")),
    updateApplication: () => Promise.reject(readOnly("updateApplication")),
    deleteApplication: () => Promise.reject(readOnly("deleteApplication")),
    upsertApplication: () => Promise.reject(readOnly("upsertApplication")),
    upsertServicePrincipal: () => Promise.reject(readOnly("upsertServicePrincipal")),
    deleteServicePrincipal: () => Promise.reject(readOnly("deleteServicePrincipal")),
    upsertFederatedCredential: () => Promise.reject(readOnly("upsertFederatedCredential")),
    deleteFederatedCredential: () => Promise.reject(readOnly("deleteFederatedCredential")),
    addGroupMember: () => Promise.reject(readOnly("addGroupMember")),
    removeGroupMember: () => Promise.reject(readOnly("removeGroupMember")),
    setServicePrincipalEnabled: () => Promise.reject(readOnly("setServicePrincipalEnabled")),
  };
}
