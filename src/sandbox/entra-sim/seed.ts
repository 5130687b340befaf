import { z } from "zod";
import { graphDateTime, newId, type SimState } from "./state.ts";

/**
 * A directory handed to the simulator as plain data, so a benchmark can start from 10,000 identities without
 * creating them one Graph call at a time. Whoever seeds decides what the objects look like (a test or benchmark
 * computes them however it likes); the simulator only stores them as Graph would hold them after the same
 * creates: the owner of a seeded app or principal is the bot's service principal unless `owners` says
 * otherwise, as for an app-only caller's creates (application-post-applications: the caller becomes owner).
 */
const ficSeedSchema = z.object({
  id: z.string().optional(),
  name: z.string(),
  issuer: z.string(),
  subject: z.string(),
  audiences: z.array(z.string()),
  description: z.string().nullable().optional(),
});

const appSeedSchema = z.object({
  id: z.string(),
  appId: z.string(),
  displayName: z.string(),
  tags: z.array(z.string()).default([]),
  uniqueName: z.string().nullable().optional(),
  /** Owner object ids; default: the bot's service principal alone. */
  owners: z.array(z.string()).optional(),
  federatedIdentityCredentials: z.array(ficSeedSchema).default([]),
  /** The app's service principal, when it has one. */
  servicePrincipal: z
    .object({
      id: z.string(),
      accountEnabled: z.boolean().default(true),
      owners: z.array(z.string()).optional(),
    })
    .optional(),
  /** Group object ids the service principal is a direct member of (groups must exist or be seeded below). */
  memberOf: z.array(z.string()).default([]),
});

export const directorySeedSchema = z.object({
  groups: z.array(z.object({ id: z.string(), displayName: z.string() })).default([]),
  applications: z.array(appSeedSchema).default([]),
});
export type DirectorySeed = z.input<typeof directorySeedSchema>;

/** Adds the seed's objects to the directory (existing objects with the same ids are replaced). */
export function seedDirectory(state: SimState, botSpId: string, raw: DirectorySeed, nowMs: number): void {
  const seed = directorySeedSchema.parse(raw);
  const created = graphDateTime(nowMs);
  for (const g of seed.groups) {
    if (!state.groups.has(g.id))
      state.groups.set(g.id, { id: g.id, displayName: g.displayName, description: null, members: new Set() });
  }
  for (const a of seed.applications) {
    state.applications.set(a.id, {
      id: a.id,
      appId: a.appId,
      uniqueName: a.uniqueName ?? null,
      displayName: a.displayName,
      description: null,
      tags: a.tags,
      signInAudience: "AzureADMyOrg",
      notes: null,
      createdDateTime: created,
      extra: {},
      owners: a.owners ?? [botSpId],
      passwordCredentials: 0,
      keyCredentials: 0,
      fics: a.federatedIdentityCredentials.map((f) => ({
        id: f.id ?? newId(),
        name: f.name,
        issuer: f.issuer,
        subject: f.subject,
        audiences: f.audiences,
        description: f.description ?? null,
        claimsMatchingExpression: null,
        // Seeded credentials are old: no propagation delay applies to them.
        createdAtMs: 0,
      })),
      createdAtMs: 0,
    });
    const sp = a.servicePrincipal;
    if (!sp) continue;
    state.servicePrincipals.set(sp.id, {
      id: sp.id,
      appId: a.appId,
      displayName: a.displayName,
      appDisplayName: a.displayName,
      tags: a.tags,
      accountEnabled: sp.accountEnabled,
      owners: sp.owners ?? [botSpId],
      passwordCredentials: 0,
      keyCredentials: 0,
      createdAtMs: 0,
    });
    for (const groupId of a.memberOf) {
      const group = state.groups.get(groupId);
      if (!group) throw new Error(`seed: app ${a.id} is a member of group ${groupId}, which does not exist`);
      group.members.add(sp.id);
    }
  }
}
