import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * Which group memberships the bot itself made, per identity. When a group is dropped from a rule, no rule
 * may name it any more (managed-groups.ts), yet the identities the bot put there must leave it; memberships
 * the bot did not make, in groups no rule names, are someone else's business (reported as drift). So a
 * membership is the bot's to remove when the bot recorded it here, or when the current policy names the group.
 */
const envHash = (env: string) => createHash("sha256").update(env, "utf8").digest("hex").slice(0, 32);

export class MembershipLedger {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, keyPrefix: string) {
    this.#redis = redis;
    this.#prefix = keyPrefix;
  }

  #key(projectId: number, environment: string): string {
    return `${this.#prefix}:memberships:${projectId}:${envHash(environment)}`;
  }

  async made(projectId: number, environment: string): Promise<Set<string>> {
    return new Set(await this.#redis.smembers(this.#key(projectId, environment)));
  }

  /** Records the groups the identity is (now) a member of because the bot put it there. */
  async record(projectId: number, environment: string, added: readonly string[], removed: readonly string[]) {
    const key = this.#key(projectId, environment);
    const tx = this.#redis.multi();
    if (added.length) tx.sadd(key, ...added.map((g) => g.toLowerCase()));
    if (removed.length) tx.srem(key, ...removed.map((g) => g.toLowerCase()));
    await tx.exec();
  }

  async forget(projectId: number, environment: string): Promise<void> {
    await this.#redis.del(this.#key(projectId, environment));
  }
}
