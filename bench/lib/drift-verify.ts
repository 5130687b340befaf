/**
 * Judges a sweep by the simulators' final state, never by the bot's own summary: every identity must look
 * exactly as the planner says for the path GitLab shows (credentials, name, tags, sole owner, group members),
 * and an identity whose environment GitLab no longer lists must have no way left to log in.
 */
import { z } from "zod";
import { type BenchIdentity, DRIFT_KINDS, type DriftKind } from "./drift-seed.ts";

export const entraStateSchema = z.object({
  botServicePrincipalId: z.string(),
  applications: z.array(
    z.object({
      id: z.string(),
      appId: z.string(),
      displayName: z.string(),
      tags: z.array(z.string()),
      owners: z.array(z.string()),
      fics: z.array(
        z.object({
          name: z.string(),
          issuer: z.string(),
          subject: z.string().nullable(),
          audiences: z.array(z.string()),
        }),
      ),
    }),
  ),
  servicePrincipals: z.array(z.object({ id: z.string(), appId: z.string(), accountEnabled: z.boolean() })),
  groups: z.record(z.string(), z.array(z.string())),
});
export type EntraState = z.infer<typeof entraStateSchema>;

export type Outcome = "as-desired" | "removed" | "disabled" | "wrong";

export interface Verdict {
  /** Identities per drift kind ("none" = not drifted) and how many ended as they must. */
  byKind: Record<DriftKind | "none", { total: number; ok: number }>;
  /** What happened to identities whose environment was deleted (removed = app gone, disabled = no credential). */
  environmentDeleted: { removed: number; disabled: number; live: number };
  /** Apps the bot owns that no identity expects (duplicates, leftovers). */
  unexpectedApps: number;
  /** A few identities that are wrong, and why: to start a diagnosis from. */
  examples: string[];
}

const ficKey = (f: { name: string; issuer: string; subject: string | null; audiences: string[] }) =>
  `${f.name}\u0000${f.issuer}\u0000${f.subject}\u0000${f.audiences.join(",")}`;
const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join("\u0001") === [...b].sort().join("\u0001");

export function verify(state: EntraState, identities: readonly BenchIdentity[]): Verdict {
  const apps = new Map(state.applications.map((a) => [a.id, a]));
  const sps = new Map(state.servicePrincipals.map((s) => [s.id, s]));
  const memberOf = new Map<string, string[]>();
  for (const [group, members] of Object.entries(state.groups)) {
    for (const m of members) memberOf.set(m, [...(memberOf.get(m) ?? []), group.toLowerCase()]);
  }
  const byKind = Object.fromEntries(
    [...DRIFT_KINDS, "none" as const].map((k) => [k, { total: 0, ok: 0 }]),
  ) as Verdict["byKind"];
  const environmentDeleted = { removed: 0, disabled: 0, live: 0 };
  const examples: string[] = [];
  const bot = state.botServicePrincipalId;

  for (const identity of identities) {
    const kind = identity.drift ?? "none";
    const tally = byKind[kind];
    tally.total += 1;
    const app = apps.get(identity.appObjectId);
    const sp = sps.get(identity.spObjectId);
    const groups = memberOf.get(identity.spObjectId) ?? [];
    const label = `project ${identity.projectId} ${identity.environment} (${kind})`;
    if (kind === "environment-deleted") {
      if (!app) environmentDeleted.removed += 1;
      else if (app.fics.length === 0 && groups.length === 0) environmentDeleted.disabled += 1;
      else {
        environmentDeleted.live += 1;
        if (examples.length < 5)
          examples.push(`${label}: still ${app.fics.length} credential(s), ${groups.length} group(s)`);
        continue;
      }
      tally.ok += 1;
      continue;
    }
    const want = identity.expected;
    const why = !app
      ? "app missing"
      : !sp
        ? "service principal missing"
        : !sameSet(app.owners, [bot])
          ? `owners ${app.owners.join(",")}`
          : app.displayName !== want.displayName
            ? `display name ${app.displayName}`
            : !sameSet(app.tags, want.tags)
              ? `tags ${app.tags.join(",")}`
              : !sameSet(app.fics.map(ficKey), want.fics.map(ficKey))
                ? `credentials ${app.fics.map((f) => `${f.name}=${f.subject}`).join(", ")}`
                : !sameSet(groups, want.groups)
                  ? `groups ${groups.join(",") || "(none)"}`
                  : !sp.accountEnabled
                    ? "service principal disabled"
                    : undefined;
    if (why === undefined) tally.ok += 1;
    else if (examples.length < 5) examples.push(`${label}: ${why}`);
  }
  const expectedApps = new Set(identities.map((i) => i.appObjectId));
  const unexpectedApps = state.applications.filter(
    (a) => !expectedApps.has(a.id) && a.owners.includes(bot),
  ).length;
  return { byKind, environmentDeleted, unexpectedApps, examples };
}
