import { EntraError } from "../entra/errors.ts";
import type { GraphApi } from "../entra/graph.ts";
import { renderGroupRef, TemplateRenderError, type TemplateValues } from "./templates.ts";

/**
 * Turns the policy's group references into Entra group object ids: GUIDs pass through, display-name
 * templates are rendered and looked up with `GET /groups?$filter=displayName eq '...'`. Graph's `eq` ignores
 * case, so the answer is filtered to exact matches here: "SG-Payments" must not stand in for "sg-payments".
 * Exactly one group must match; answers are cached per display name for a while, since every onboarding of
 * every project under a template asks again.
 */

export interface GroupResolverOptions {
  /** How long a found group is remembered (default 10 minutes). */
  ttlMs?: number;
  /** How long "no such group" is remembered (default 30 s: creating the group should work soon after). */
  missingTtlMs?: number;
  now?: () => number;
  /** Upper bound on remembered names (oldest dropped first). Default 10,000. */
  maxEntries?: number;
}

interface Entry {
  ids: string[];
  /** Names that matched only case-insensitively, for the error message. */
  near: string[];
  expires: number;
}

export class GroupResolver {
  readonly #graph: Pick<GraphApi, "listGroupsByDisplayName">;
  readonly #ttl: number;
  readonly #missingTtl: number;
  readonly #now: () => number;
  readonly #max: number;
  readonly #cache = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry>>();

  constructor(graph: Pick<GraphApi, "listGroupsByDisplayName">, opts: GroupResolverOptions = {}) {
    this.#graph = graph;
    this.#ttl = opts.ttlMs ?? 10 * 60_000;
    this.#missingTtl = opts.missingTtlMs ?? 30_000;
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxEntries ?? 10_000;
  }

  async #lookup(displayName: string): Promise<Entry> {
    const hit = this.#cache.get(displayName);
    if (hit && hit.expires > this.#now()) return hit;
    let pending = this.#inflight.get(displayName);
    if (!pending) {
      pending = this.#graph
        .listGroupsByDisplayName(displayName)
        .then((groups) => {
          const ids = groups.filter((g) => g.displayName === displayName).map((g) => g.id.toLowerCase());
          const near = groups.filter((g) => g.displayName !== displayName).map((g) => g.displayName);
          const entry = {
            ids: [...new Set(ids)],
            near,
            expires: this.#now() + (ids.length === 1 ? this.#ttl : this.#missingTtl),
          };
          this.#cache.delete(displayName);
          this.#cache.set(displayName, entry);
          if (this.#cache.size > this.#max) {
            const oldest = this.#cache.keys().next().value;
            if (oldest !== undefined) this.#cache.delete(oldest);
          }
          return entry;
        })
        .finally(() => this.#inflight.delete(displayName));
      this.#inflight.set(displayName, pending);
    }
    return pending;
  }

  /**
   * Object ids for a rule's group references, in policy order without duplicates. Throws a permanent
   * EntraError (PLAN_GROUP_NOT_FOUND / PLAN_GROUP_AMBIGUOUS / PLAN_INVALID) naming the template, the value
   * it produced and where it is in the policy; Graph failures propagate (retried by the job).
   */
  async resolve(refs: readonly string[], values: TemplateValues, where: string): Promise<string[]> {
    const out: string[] = [];
    for (const ref of refs) {
      let rendered: ReturnType<typeof renderGroupRef>;
      try {
        rendered = renderGroupRef(ref, values);
      } catch (err) {
        if (!(err instanceof TemplateRenderError)) throw err;
        throw new EntraError({ code: "PLAN_INVALID", message: `${err.message} (policy key ${where})` });
      }
      if (rendered.kind === "id") {
        out.push(rendered.id);
        continue;
      }
      const entry = await this.#lookup(rendered.displayName);
      const named = `group template "${rendered.template}" (policy key ${where}) gives "${rendered.displayName}"`;
      if (entry.ids.length === 0) {
        throw new EntraError({
          code: "PLAN_GROUP_NOT_FOUND",
          message: `${named}, but no Entra group has exactly that display name${
            entry.near.length
              ? ` (differing only in case: ${entry.near
                  .slice(0, 3)
                  .map((n) => `"${n}"`)
                  .join(", ")})`
              : ""
          }; create the group, or ask the platform team to fix the template or the rule's match:`,
        });
      }
      if (entry.ids.length > 1) {
        throw new EntraError({
          code: "PLAN_GROUP_AMBIGUOUS",
          message: `${named}, but ${entry.ids.length} Entra groups have that display name (${entry.ids.join(", ")}); rename all but one, or put the intended group's object id in the policy`,
        });
      }
      out.push(entry.ids[0] as string);
    }
    return [...new Set(out)];
  }

  /** Forgets every answer (tests; an operator's `policy diff` wants fresh reads). */
  clear(): void {
    this.#cache.clear();
  }
}
