import { randomUUID } from "node:crypto";

/** A federated identity credential as Graph stores it (beta adds claimsMatchingExpression). */
export interface SimFic {
  id: string;
  name: string;
  issuer: string;
  subject: string | null;
  audiences: string[];
  description: string | null;
  claimsMatchingExpression: { value: string; languageVersion: number } | null;
  /** Simulator bookkeeping (ms since epoch): used for the propagation-delay fault. Never serialised. */
  createdAtMs: number;
}

export interface SimApp {
  id: string;
  appId: string;
  /** Client-provided alternate key (application-upsert); immutable once set, unique in the tenant. */
  uniqueName: string | null;
  displayName: string;
  description: string | null;
  tags: string[];
  signInAudience: string;
  notes: string | null;
  createdDateTime: string;
  /** Other writable properties we accept and echo back unchanged (web, api, info, ...). */
  extra: Record<string, unknown>;
  /**
   * Object ids of owners: the creating service principal (an app-only caller is made owner of what it creates),
   * users, other principals. Ids that are not service principals in this state stand for users.
   * `Application.ReadWrite.OwnedBy` reaches only apps whose owners include the caller.
   */
  owners: string[];
  /** Secrets and certificates an owner added (addPassword/addKey); the simulator only counts them. */
  passwordCredentials: number;
  keyCredentials: number;
  fics: SimFic[];
  createdAtMs: number;
}

export interface SimSp {
  id: string;
  appId: string;
  displayName: string;
  appDisplayName: string;
  tags: string[];
  accountEnabled: boolean;
  /** Object ids of owners (the creating service principal, as for apps). */
  owners: string[];
  passwordCredentials: number;
  keyCredentials: number;
  createdAtMs: number;
}

export interface SimGroup {
  id: string;
  displayName: string;
  description: string | null;
  /** Member object ids (service principals). */
  members: Set<string>;
}

export interface SimState {
  applications: Map<string, SimApp>;
  servicePrincipals: Map<string, SimSp>;
  groups: Map<string, SimGroup>;
}

export function newState(groups: Array<{ id: string; displayName: string }>): SimState {
  const state: SimState = { applications: new Map(), servicePrincipals: new Map(), groups: new Map() };
  seedGroups(state, groups);
  return state;
}

export function seedGroups(state: SimState, groups: Array<{ id: string; displayName: string }>): void {
  for (const g of groups) {
    state.groups.set(g.id, { id: g.id, displayName: g.displayName, description: null, members: new Set() });
  }
}

export function clearState(state: SimState, groups: Array<{ id: string; displayName: string }>): void {
  state.applications.clear();
  state.servicePrincipals.clear();
  state.groups.clear();
  seedGroups(state, groups);
}

export const newId = (): string => randomUUID();

export function findAppByAppId(state: SimState, appId: string): SimApp | undefined {
  for (const app of state.applications.values()) if (app.appId === appId) return app;
  return undefined;
}

export function findAppByUniqueName(state: SimState, uniqueName: string): SimApp | undefined {
  for (const app of state.applications.values()) if (app.uniqueName === uniqueName) return app;
  return undefined;
}

export function findSpByAppId(state: SimState, appId: string): SimSp | undefined {
  for (const sp of state.servicePrincipals.values()) if (sp.appId === appId) return sp;
  return undefined;
}

/** Graph's timestamp style: ISO 8601 UTC with seconds precision and a `Z`. */
export function graphDateTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** JSON-safe snapshot for GET /_sim/state (Sets and bookkeeping fields made plain). */
export function snapshot(state: SimState): Record<string, unknown> {
  return {
    applications: [...state.applications.values()].map((a) => ({
      id: a.id,
      appId: a.appId,
      uniqueName: a.uniqueName,
      displayName: a.displayName,
      tags: a.tags,
      owners: a.owners,
      federatedIdentityCredentials: a.fics.map(({ createdAtMs: _, ...f }) => f),
    })),
    servicePrincipals: [...state.servicePrincipals.values()].map(({ createdAtMs: _, ...sp }) => sp),
    groups: [...state.groups.values()].map((g) => ({
      id: g.id,
      displayName: g.displayName,
      members: [...g.members],
    })),
  };
}
