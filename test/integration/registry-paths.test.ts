import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry, registeredIdentity } from "../../src/onboarding/registry.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/** The registry's path index (who held a path) and its environment maps keyed by untrusted names. */
const prefix = uniquePrefix("registry-paths");
let redis: Redis;
let registry: Registry;
const record = (environment: string, n: number) => ({
  environment,
  appObjectId: `obj-${n}`,
  appId: `app-${n}`,
  spObjectId: `sp-${n}`,
  displayName: `gitlab-x-${environment}`,
});

beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL);
  registry = new Registry(redis, prefix);
});
afterAll(async () => {
  await deletePrefix(prefix);
  await redis?.quit();
});

describe("registry", () => {
  it("findByPath: case-insensitive, follows setPath, forgets removed projects", async () => {
    await registry.setIdentity(1, "Team/App", record("staging", 1));
    await registry.setIdentity(2, "team/other", record("staging", 2));
    expect((await registry.findByPath("team/app")).map((p) => p.projectId)).toEqual([1]);
    await registry.setPath(1, "team/app-v2");
    expect(await registry.findByPath("team/app")).toEqual([]);
    expect((await registry.findByPath("TEAM/APP-V2")).map((p) => p.projectId)).toEqual([1]);
    await registry.removeProject(1);
    expect(await registry.findByPath("team/app-v2")).toEqual([]);
    expect((await registry.findByPathPrefix("TEAM/")).map((p) => p.projectId)).toEqual([2]);
  });

  it("environment names such as __proto__ and constructor are plain keys, never the prototype", async () => {
    await registry.setIdentity(3, "g/p", record("__proto__", 3));
    await registry.setIdentity(3, "g/p", record("constructor", 4));
    const got = await registry.get(3);
    expect(Object.getPrototypeOf(got?.environments)).toBe(Object.prototype);
    expect(Object.keys(got?.environments ?? {}).sort()).toEqual(["__proto__", "constructor"]);
    expect(registeredIdentity(got, "__proto__")?.appId).toBe("app-3");
    expect(registeredIdentity(got, "constructor")?.appId).toBe("app-4");
    // Names it does not hold are absent, whatever Object.prototype has.
    const other = await registry.get(2);
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"])
      expect(registeredIdentity(other, name)).toBeUndefined();
  });
});
