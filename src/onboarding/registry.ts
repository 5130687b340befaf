import type { Redis } from "ioredis";
import type { GraphApi } from "../entra/graph.ts";
import { BOT_TAG, parseIdentityTags } from "./naming.ts";
import { identityRecordSchema } from "./schemas.ts";
import type { IdentityRecord } from "./types.ts";

/**
 * Which Entra identities belong to which GitLab project. A cache of Entra, not a source of truth: every app
 * carries its project id and environment in tags, so rebuildFromEntra() restores it after Redis loss.
 * Layout: one hash per project (field "path", fields "env:<name>" = IdentityRecord JSON) so concurrent
 * jobs for different environments of one project never overwrite each other; a set indexes project ids.
 */
export interface RegisteredProject {
  projectId: number;
  path: string;
  environments: Record<string, IdentityRecord>;
}

const ENV = "env:";

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

  async get(projectId: number): Promise<RegisteredProject | undefined> {
    const h = await this.#redis.hgetall(this.#key(projectId));
    return decode(projectId, h);
  }

  async setIdentity(projectId: number, path: string, record: IdentityRecord): Promise<void> {
    await this.#redis
      .multi()
      .hset(this.#key(projectId), "path", path, `${ENV}${record.environment}`, JSON.stringify(record))
      .sadd(this.#index, String(projectId))
      .exec();
  }

  async setPath(projectId: number, path: string): Promise<void> {
    if (await this.#redis.exists(this.#key(projectId)))
      await this.#redis.hset(this.#key(projectId), "path", path);
  }

  async removeIdentity(projectId: number, environment: string): Promise<void> {
    await this.#redis.hdel(this.#key(projectId), `${ENV}${environment}`);
    const left = await this.#redis.hkeys(this.#key(projectId));
    if (!left.some((k) => k.startsWith(ENV))) await this.removeProject(projectId);
  }

  async removeProject(projectId: number): Promise<void> {
    await this.#redis.multi().del(this.#key(projectId)).srem(this.#index, String(projectId)).exec();
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

  /** Projects under a namespace path, e.g. "old-group/" for a group rename (case-sensitive, like GitLab paths). */
  async findByPathPrefix(prefix: string): Promise<RegisteredProject[]> {
    return (await this.list()).filter((p) => p.path.startsWith(prefix));
  }

  /**
   * Replaces the registry with what Entra says: every app tagged gitlab-entra-bot, with its service principal.
   * Apps whose tags lack the path keep the registry's old path, else their display name.
   */
  async rebuildFromEntra(graph: GraphApi): Promise<RegisteredProject[]> {
    const apps = await graph.listApplicationsByTag(BOT_TAG);
    const old = new Map((await this.list()).map((p) => [p.projectId, p]));
    const next = new Map<number, RegisteredProject>();
    for (const app of apps) {
      const t = parseIdentityTags(app.tags);
      if (!t) continue;
      const sp = await graph.getServicePrincipalByAppId(app.appId);
      if (!sp) continue;
      const entry = next.get(t.projectId) ?? {
        projectId: t.projectId,
        path: t.path ?? old.get(t.projectId)?.path ?? app.displayName,
        environments: {},
      };
      entry.environments[t.environment] = {
        environment: t.environment,
        appObjectId: app.id,
        appId: app.appId,
        spObjectId: sp.id,
        displayName: app.displayName,
      };
      next.set(t.projectId, entry);
    }
    for (const id of old.keys()) if (!next.has(id)) await this.removeProject(id);
    for (const p of next.values()) {
      await this.#redis.del(this.#key(p.projectId));
      for (const rec of Object.values(p.environments)) await this.setIdentity(p.projectId, p.path, rec);
    }
    return [...next.values()].sort((a, b) => a.projectId - b.projectId);
  }
}

function decode(projectId: number, h: Record<string, string>): RegisteredProject | undefined {
  const path = h.path;
  if (path === undefined) return undefined;
  const environments: Record<string, IdentityRecord> = {};
  for (const [field, value] of Object.entries(h)) {
    if (!field.startsWith(ENV)) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(value);
    } catch {
      continue;
    }
    const parsed = identityRecordSchema.safeParse(raw);
    if (parsed.success) environments[field.slice(ENV.length)] = parsed.data;
  }
  return { projectId, path, environments };
}
