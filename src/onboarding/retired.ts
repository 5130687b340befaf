import type { Redis } from "ioredis";
import { z } from "zod";
import { type IdentityPin, identityPinSchema } from "./registry.ts";

/**
 * Identities retired because their project is gone or pending deletion (fail closed on freed paths): out of the
 * registry (drift repair no longer manages them), kept here with the date so that drift repair deletes each
 * app once the policy's retention period is over, and so that a restored project's `/entra onboard` gets its
 * old app back. Entra keeps the same record in the app's tags (gitlab-retired, gitlab-retired-on), from which
 * registry:rebuild restores this list after Redis loss.
 *
 * Layout: one hash per project (field = environment, value = {path, pin, retiredAt} JSON) and one sorted set of
 * JSON [projectId, environment] members scored by the retirement time.
 */
// Built on first use: registry.ts imports this module, so identityPinSchema is not ready at load time.
let entrySchema: ReturnType<typeof makeEntrySchema> | undefined;
function makeEntrySchema() {
  return z.object({ path: z.string(), pin: identityPinSchema, retiredAt: z.string() });
}
export interface RetiredEntry {
  projectId: number;
  path: string;
  pin: IdentityPin;
  retiredAt: string;
}

const memberSchema = z.tuple([z.number().int(), z.string()]);

export class RetiredIdentities {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.#redis = redis;
    this.#prefix = keyPrefix;
  }

  #key(projectId: number): string {
    return `${this.#prefix}:registry:retired:${projectId}`;
  }
  get #index(): string {
    return `${this.#prefix}:registry:retired-index`;
  }

  async record(projectId: number, path: string, pin: IdentityPin, retiredAt: Date): Promise<void> {
    const entry = { path, pin, retiredAt: retiredAt.toISOString() };
    await this.#redis
      .multi()
      .hset(this.#key(projectId), pin.environment, JSON.stringify(entry))
      .zadd(this.#index, retiredAt.getTime(), JSON.stringify([projectId, pin.environment]))
      .exec();
  }

  async get(projectId: number, environment: string): Promise<RetiredEntry | undefined> {
    const raw = await this.#redis.hget(this.#key(projectId), environment);
    if (raw === null) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return undefined;
    }
    entrySchema ??= makeEntrySchema();
    const parsed = entrySchema.safeParse(json);
    return parsed.success ? { ...parsed.data, projectId } : undefined;
  }

  async remove(projectId: number, environment: string): Promise<void> {
    await this.#redis
      .multi()
      .hdel(this.#key(projectId), environment)
      .zrem(this.#index, JSON.stringify([projectId, environment]))
      .exec();
  }

  /** Entries retired at or before `cutoff`, oldest first. */
  async due(cutoff: Date): Promise<RetiredEntry[]> {
    const members = await this.#redis.zrangebyscore(this.#index, "-inf", cutoff.getTime());
    const out: RetiredEntry[] = [];
    for (const m of members) {
      let key: z.infer<typeof memberSchema>;
      try {
        key = memberSchema.parse(JSON.parse(m));
      } catch {
        await this.#redis.zrem(this.#index, m);
        continue;
      }
      const entry = await this.get(key[0], key[1]);
      if (entry) out.push(entry);
      else await this.#redis.zrem(this.#index, m);
    }
    return out;
  }
}
