import type { Redis } from "ioredis";
import { z } from "zod";
import { SUB_CLAIM_HEADS, SUB_CLAIM_TAILS } from "../config/policy-schema.ts";
import type { DirectoryObjectRef, GraphApi, GraphApplication } from "../entra/graph.ts";
import type { BotServicePrincipal } from "../entra/self.ts";
import { isRetired, parseIdentityTags, retiredOn } from "./naming.ts";
import { RetiredIdentities } from "./retired.ts";
import type { SubjectLayout } from "./subject-components.ts";
import type { IdentityRecord } from "./types.ts";

/**
 * Which Entra identities belong to which GitLab project, pinned by object id. The pin is what makes an app the
 * bot's identity for (project, environment): the bot reads pinned objects by id (read-your-writes) and never
 * takes an app from a tag search, whose answers anyone who can register an app can forge, and which lag
 * behind creates. Pins are written as the create happens: the intent (a fresh uniqueName) before the app
 * exists, the object ids the moment Graph returns them, so a job that dies in between finds its own app again.
 *
 * Layout: one hash per project (field "path", fields "env:<name>" = IdentityPin JSON) so concurrent jobs for
 * different environments of one project never overwrite each other; a set indexes project ids. Entries written
 * before pins existed (IdentityRecord JSON) read as complete pins without creation times.
 *
 * After Redis loss, rebuildFromEntra() restores pins from the objects the bot's service principal owns.
 */
export interface IdentityPin {
  environment: string;
  displayName: string;
  /** The app's uniqueName (client-chosen alternate key), recorded before the create: a retry repeats it. */
  uniqueName?: string;
  /** When the intent was recorded (ISO): an app found by the same uniqueName was created after it. */
  intentAt?: string;
  appObjectId?: string;
  appId?: string;
  /** When the bot created the app (ISO); absent when unknown (older pins, rebuilt pins). */
  appCreatedAt?: string;
  spObjectId?: string;
  /** When the bot created the service principal (ISO). */
  spCreatedAt?: string;
  /**
   * The project's path when this identity was last granted what its rule gives it (created, or onboarded by
   * someone the policy allows): a move that changes that grant does not carry it along (policy/grants.ts).
   * Absent in pins written before it existed: the registry's path stands in.
   */
  grantPath?: string;
  /**
   * When GitLab's API first showed this environment (ISO): set by the environment cleanup's listing and by
   * the first-sight handler once GitLab confirms the environment. An environment no longer listed counts as
   * deleted only if GitLab once listed it: an identity made on project creation for an environment GitLab
   * never had is not "gone" (onboarding/environment-cleanup.ts). Never set from a webhook alone.
   */
  environmentSeenAt?: string;
}

export const identityPinSchema = z.object({
  environment: z.string(),
  displayName: z.string(),
  uniqueName: z.string().optional(),
  intentAt: z.string().optional(),
  appObjectId: z.string().optional(),
  appId: z.string().optional(),
  appCreatedAt: z.string().optional(),
  spObjectId: z.string().optional(),
  spCreatedAt: z.string().optional(),
  grantPath: z.string().optional(),
  environmentSeenAt: z.string().optional(),
});

/** A pin with app and service principal: an identity pipelines can use. */
export function completeIdentity(pin: IdentityPin): IdentityRecord | undefined {
  if (!pin.appObjectId || !pin.appId || !pin.spObjectId) return undefined;
  return {
    environment: pin.environment,
    appObjectId: pin.appObjectId,
    appId: pin.appId,
    spObjectId: pin.spObjectId,
    displayName: pin.displayName,
  };
}

export interface RegisteredProject {
  projectId: number;
  path: string;
  /** Complete identities only (see pins() for identities still being created). */
  environments: Record<string, IdentityRecord>;
  /**
   * The `sub` layout established in GitLab when the credentials were last written (subject-components.ts):
   * what every plan of this project (status, drift, `policy diff`) builds its subjects from.
   */
  subjectLayout?: SubjectLayout;
}

/** The pin of one (project, environment), bound for the reconciler. */
export interface PinStore {
  get(): Promise<IdentityPin | undefined>;
  save(pin: IdentityPin): Promise<void>;
}

/** An owned object the rebuild did not restore, and why. */
export interface RebuildSkip {
  objectId: string;
  reason: string;
}

export interface RebuildResult {
  projects: RegisteredProject[];
  skipped: RebuildSkip[];
}

const ENV = "env:";
const APP_TYPE = "#microsoft.graph.application";
const SP_TYPE = "#microsoft.graph.servicePrincipal";

/** Owned by the bot's service principal and by nobody else. */
export function soleOwner(owners: readonly DirectoryObjectRef[], botSpId: string): boolean {
  return owners.length === 1 && owners[0]?.id.toLowerCase() === botSpId.toLowerCase();
}

export function describeOwners(owners: readonly DirectoryObjectRef[], botSpId: string): string {
  if (owners.length === 0) return "no owner";
  return owners
    .map((o) =>
      o.id.toLowerCase() === botSpId.toLowerCase()
        ? "the bot"
        : `${o.type.replace("#microsoft.graph.", "")} ${o.id}`,
    )
    .join(", ");
}

export class Registry {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.#redis = redis;
    this.#prefix = keyPrefix;
  }

  #key(projectId: number): string {
    return `${this.#prefix}:registry:project:${projectId}`;
  }
  get #index(): string {
    return `${this.#prefix}:registry:projects`;
  }
  /** Project ids once registered at a path (lower-cased): finds the holder of a freed path without a scan. */
  #pathKey(path: string): string {
    return `${this.#prefix}:registry:path:${path.toLowerCase()}`;
  }

  async get(projectId: number): Promise<RegisteredProject | undefined> {
    const h = await this.#redis.hgetall(this.#key(projectId));
    return decode(projectId, h);
  }

  /** The project and every pin of it, complete or not, from one read of its hash. */
  async getWithPins(
    projectId: number,
  ): Promise<{ project: RegisteredProject | undefined; pins: Record<string, IdentityPin> }> {
    const h = await this.#redis.hgetall(this.#key(projectId));
    return { project: decode(projectId, h), pins: decodePins(h) };
  }

  /** Every pin of a project, complete or not, by environment. */
  async pins(projectId: number): Promise<Record<string, IdentityPin>> {
    return decodePins(await this.#redis.hgetall(this.#key(projectId)));
  }

  async getPin(projectId: number, environment: string): Promise<IdentityPin | undefined> {
    const raw = await this.#redis.hget(this.#key(projectId), `${ENV}${environment}`);
    return raw === null ? undefined : parsePin(raw);
  }

  async savePin(projectId: number, path: string, pin: IdentityPin): Promise<void> {
    await this.#redis
      .multi()
      .hset(this.#key(projectId), "path", path, `${ENV}${pin.environment}`, JSON.stringify(pin))
      .sadd(this.#index, String(projectId))
      .sadd(this.#pathKey(path), String(projectId))
      .exec();
  }

  /** PinStore for one identity; saving also records the project's current path. */
  pinStore(projectId: number, path: string, environment: string): PinStore {
    return {
      get: () => this.getPin(projectId, environment),
      save: (pin) => this.savePin(projectId, path, pin),
    };
  }

  /** Records a complete identity, keeping the creation times an existing pin holds. */
  async setIdentity(projectId: number, path: string, record: IdentityRecord): Promise<void> {
    const old = await this.getPin(projectId, record.environment);
    const keep =
      old?.appObjectId === record.appObjectId
        ? {
            ...(old.uniqueName ? { uniqueName: old.uniqueName } : {}),
            ...(old.appCreatedAt ? { appCreatedAt: old.appCreatedAt } : {}),
            ...(old.environmentSeenAt ? { environmentSeenAt: old.environmentSeenAt } : {}),
            ...(old.spCreatedAt && old.spObjectId === record.spObjectId
              ? { spCreatedAt: old.spCreatedAt }
              : {}),
          }
        : {};
    await this.savePin(projectId, path, { ...record, ...keep });
  }

  /**
   * Records that GitLab listed the pin's environment, the first time only (false when there is no pin or it
   * is recorded already). Pins are read, changed and written whole: call it under the identity lock, as the
   * reconciler's saves run, or a concurrent save drops the field (or this write drops the save's).
   */
  async markEnvironmentSeen(projectId: number, environment: string, at: string): Promise<boolean> {
    const pin = await this.getPin(projectId, environment);
    if (!pin || pin.environmentSeenAt) return false;
    const next: IdentityPin = { ...pin, environmentSeenAt: at };
    await this.#redis.hset(this.#key(projectId), `${ENV}${environment}`, JSON.stringify(next));
    return true;
  }

  async setPath(projectId: number, path: string): Promise<void> {
    const old = await this.#redis.hget(this.#key(projectId), "path");
    if (old === null) return;
    await this.#redis
      .multi()
      .hset(this.#key(projectId), "path", path)
      .srem(this.#pathKey(old), String(projectId))
      .sadd(this.#pathKey(path), String(projectId))
      .exec();
  }

  /** Records the `sub` layout of the project's credentials (only for a registered project). */
  async setSubjectLayout(projectId: number, layout: SubjectLayout): Promise<void> {
    if (!(await this.#redis.exists(this.#key(projectId)))) return;
    const key = this.#key(projectId);
    const tx = this.#redis
      .multi()
      .hset(key, "sub", layout.components.join(","), "sub-wanted", (layout.wanted ?? []).join(","));
    if (layout.unsupported) tx.hset(key, "sub-unsupported", layout.unsupported.slice(0, 2000));
    else tx.hdel(key, "sub-unsupported");
    await tx.exec();
  }

  async removeIdentity(projectId: number, environment: string): Promise<void> {
    await this.#redis.hdel(this.#key(projectId), `${ENV}${environment}`);
    const left = await this.#redis.hkeys(this.#key(projectId));
    if (!left.some((k) => k.startsWith(ENV))) await this.removeProject(projectId);
  }

  async removeProject(projectId: number): Promise<void> {
    const path = await this.#redis.hget(this.#key(projectId), "path");
    const tx = this.#redis.multi().del(this.#key(projectId)).srem(this.#index, String(projectId));
    if (path !== null) tx.srem(this.#pathKey(path), String(projectId));
    await tx.exec();
  }

  /** Registered project ids, ascending (drift's sweep walks them in chunks). */
  async ids(): Promise<number[]> {
    return (await this.#redis.smembers(this.#index))
      .map(Number)
      .filter(Number.isSafeInteger)
      .sort((a, b) => a - b);
  }

  async list(): Promise<RegisteredProject[]> {
    const ids = (await this.#redis.smembers(this.#index)).map(Number).sort((a, b) => a - b);
    if (!ids.length) return [];
    const pipe = this.#redis.pipeline();
    for (const id of ids) pipe.hgetall(this.#key(id));
    const results = (await pipe.exec()) ?? [];
    const out: RegisteredProject[] = [];
    ids.forEach((id, i) => {
      const h = results[i]?.[1] as Record<string, string> | undefined;
      const p = h ? decode(id, h) : undefined;
      if (p) out.push(p);
    });
    return out;
  }

  /**
   * Projects under a namespace path, e.g. "old-group/" for a group rename. Case-insensitive, as GitLab's own
   * path lookups are: a candidate too many costs one re-read from GitLab, a candidate too few a missed rename.
   */
  async findByPathPrefix(prefix: string): Promise<RegisteredProject[]> {
    const p = prefix.toLowerCase();
    return (await this.list()).filter((r) => r.path.toLowerCase().startsWith(p));
  }

  /** Projects registered at exactly this path (case-insensitive: GitLab paths are unique regardless of case). */
  async findByPath(path: string): Promise<RegisteredProject[]> {
    const p = path.toLowerCase();
    const ids = (await this.#redis.smembers(this.#pathKey(path))).map(Number).filter(Number.isSafeInteger);
    const out: RegisteredProject[] = [];
    for (const id of ids.sort((a, b) => a - b)) {
      const r = await this.get(id);
      if (r && r.path.toLowerCase() === p) out.push(r);
    }
    return out;
  }

  /**
   * Replaces the registry with what Entra says, reading only objects the bot's own service principal owns
   * (`GET /servicePrincipals/{bot}/ownedObjects`), never a tag search. An owned app is restored only when the
   * bot is its sole owner, it carries the bot's tags and no secret or certificate; its service principal only
   * when the bot alone owns that too and it has no credential. Whoever else could touch such an object could
   * turn the identity to their own use, so it is skipped (and reported) instead.
   * Apps whose tags lack the path keep the registry's old path, else their display name.
   */
  async rebuildFromEntra(
    graph: GraphApi,
    bot: Pick<BotServicePrincipal, "objectId">,
  ): Promise<RebuildResult> {
    const me = await bot.objectId();
    const owned = await graph.listOwnedObjects(me);
    const skipped: RebuildSkip[] = [];
    const sps = new Map<string, { id: string; ok: boolean; reason?: string }>();
    for (const ref of owned.filter((o) => o.type === SP_TYPE)) {
      const sp = await graph.getServicePrincipal(ref.id);
      if (!sp) continue;
      const owners = await graph.listServicePrincipalOwners(sp.id);
      const reason = !soleOwner(owners, me)
        ? `its service principal ${sp.id} is also owned by ${describeOwners(owners, me)}`
        : (sp.credentialCount ?? 0) > 0
          ? `its service principal ${sp.id} has ${sp.credentialCount} secret(s) or certificate(s) the bot never adds`
          : undefined;
      sps.set(sp.appId, { id: sp.id, ok: reason === undefined, ...(reason ? { reason } : {}) });
    }

    const old = new Map((await this.list()).map((p) => [p.projectId, p]));
    const next = new Map<number, { path: string; pins: Record<string, IdentityPin> }>();
    const chosen = new Map<string, GraphApplication>();
    for (const ref of owned.filter((o) => o.type === APP_TYPE)) {
      const app = await graph.getApplication(ref.id);
      if (!app) continue;
      const t = parseIdentityTags(app.tags);
      if (!t) continue;
      const owners = await graph.listApplicationOwners(app.id);
      // A retired identity belongs to no live project: it goes back to the retention list, not the registry.
      if (isRetired(app.tags)) {
        if (soleOwner(owners, me)) {
          const sp = sps.get(app.appId);
          await new RetiredIdentities(this.#redis, this.#prefix).record(
            t.projectId,
            t.path ?? app.displayName,
            {
              environment: t.environment,
              displayName: app.displayName,
              appObjectId: app.id,
              appId: app.appId,
              ...(sp ? { spObjectId: sp.id } : {}),
            },
            retiredOn(app.tags) ?? new Date(),
          );
        }
        continue;
      }
      const sp = sps.get(app.appId);
      const reason = !soleOwner(owners, me)
        ? `also owned by ${describeOwners(owners, me)}`
        : (app.credentialCount ?? 0) > 0
          ? `has ${app.credentialCount} secret(s) or certificate(s) the bot never adds`
          : sp && !sp.ok
            ? sp.reason
            : undefined;
      if (reason) {
        skipped.push({ objectId: app.id, reason: `app registration ${app.id}: ${reason}` });
        continue;
      }
      const key = `${t.projectId}\u0000${t.environment}`;
      const rival = chosen.get(key);
      if (rival) {
        // Two of the bot's own apps for one identity (left by a lost registry): keep the one with a principal.
        const keepRival = sps.has(rival.appId) || (!sps.has(app.appId) && rival.id < app.id);
        const dropped = keepRival ? app : rival;
        skipped.push({
          objectId: dropped.id,
          reason: `app registration ${dropped.id}: a second app of the bot for project ${t.projectId} (${t.environment}); delete it`,
        });
        if (keepRival) continue;
      }
      chosen.set(key, app);
      const entry = next.get(t.projectId) ?? {
        path: t.path ?? old.get(t.projectId)?.path ?? app.displayName,
        pins: {},
      };
      // fromEntries: an environment named "__proto__" stays a plain key.
      entry.pins = Object.fromEntries([
        ...Object.entries(entry.pins),
        [
          t.environment,
          {
            environment: t.environment,
            displayName: app.displayName,
            appObjectId: app.id,
            appId: app.appId,
            ...(sp ? { spObjectId: sp.id } : {}),
          },
        ],
      ]);
      next.set(t.projectId, entry);
    }
    for (const id of old.keys()) if (!next.has(id)) await this.removeProject(id);
    for (const [projectId, p] of next) {
      await this.#redis.del(this.#key(projectId));
      for (const pin of Object.values(p.pins)) await this.savePin(projectId, p.path, pin);
    }
    const projects: RegisteredProject[] = [];
    for (const id of [...next.keys()].sort((a, b) => a - b)) {
      const p = await this.get(id);
      if (p) projects.push(p);
    }
    return { projects, skipped };
  }
}

function parsePin(raw: string): IdentityPin | undefined {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const parsed = identityPinSchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

// fromEntries defines own properties, so an environment named "__proto__" stays a plain key and can never
// become an object's prototype; lookups by name go through Object.hasOwn (registeredIdentity).
function decodePins(h: Record<string, string>): Record<string, IdentityPin> {
  const pins: [string, IdentityPin][] = [];
  for (const [field, value] of Object.entries(h)) {
    if (!field.startsWith(ENV)) continue;
    const pin = parsePin(value);
    if (pin) pins.push([field.slice(ENV.length), pin]);
  }
  return Object.fromEntries(pins);
}

function decode(projectId: number, h: Record<string, string>): RegisteredProject | undefined {
  const path = h.path;
  if (path === undefined) return undefined;
  const environments: [string, IdentityRecord][] = [];
  for (const [env, pin] of Object.entries(decodePins(h))) {
    const identity = completeIdentity(pin);
    if (identity) environments.push([env, identity]);
  }
  const subjectLayout = decodeLayout(h);
  return {
    projectId,
    path,
    environments: Object.fromEntries(environments),
    ...(subjectLayout ? { subjectLayout } : {}),
  };
}

const componentsField = z.array(z.enum([...SUB_CLAIM_HEADS, ...SUB_CLAIM_TAILS])).min(1);
const list = (raw: string | undefined) => (raw ? raw.split(",").filter(Boolean) : []);

/** The recorded layout; a field that does not parse (hand-edited, older format) is no record at all. */
function decodeLayout(h: Record<string, string>): SubjectLayout | undefined {
  const components = componentsField.safeParse(list(h.sub));
  if (!components.success) return undefined;
  const wanted = componentsField.safeParse(list(h["sub-wanted"]));
  return {
    components: components.data,
    ...(wanted.success ? { wanted: wanted.data } : {}),
    ...(h["sub-unsupported"] ? { unsupported: h["sub-unsupported"] } : {}),
  };
}

/** The identity registered for an environment name, never one inherited from Object.prototype. */
export function registeredIdentity(
  project: RegisteredProject | undefined,
  environment: string,
): IdentityRecord | undefined {
  if (!project || !Object.hasOwn(project.environments, environment)) return undefined;
  return project.environments[environment];
}
