import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUES } from "../../src/queue/names.ts";
import { freePort, type RedisServerProcess, spawnRedisServer } from "../../src/sandbox/redis.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * QUEUE_PREFIX with a hash tag ("{geb}") makes every key the bot uses hash to one Redis Cluster slot, which
 * BullMQ's multi-key scripts need. Proven against a private redis-server in cluster mode owning all 16384
 * slots: it enforces CROSSSLOT like any cluster node (a plain prefix fails, shown below as the control), while a
 * single-endpoint client needs no redirects. What this does not prove: following MOVED across several shards
 * (the bot's REDIS_URL client is a single-endpoint client).
 */

const hasRedisServer = spawnSync("redis-server", ["--version"]).status === 0;
const PREFIX = "{geb}";

let server: RedisServerProcess | undefined;
let dir = "";
let url = "";
let stack: SandboxStack | undefined;

async function clusterReady(redisUrl: string): Promise<boolean> {
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => {});
  try {
    await r.connect();
    const info = String(await r.call("CLUSTER", "INFO"));
    if (info.includes("cluster_slots_assigned:0")) await r.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    return info.includes("cluster_state:ok");
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

// Skipped only on a developer machine without it: in CI (.ci/run installs it) a missing binary must fail.
describe.skipIf(!hasRedisServer && !process.env.CI)(
  `QUEUE_PREFIX=${PREFIX} on a Redis in cluster mode`,
  () => {
    beforeAll(async () => {
      const port = await freePort();
      dir = mkdtempSync(join(tmpdir(), "geb-redis-cluster-"));
      url = `redis://127.0.0.1:${port}`;
      server = await spawnRedisServer({
        port,
        dir,
        appendonly: false,
        extraArgs: ["--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf")],
        ready: clusterReady,
      });
      stack = await testStack("cluster", { redisUrl: url, queuePrefix: PREFIX });
    });
    afterAll(async () => {
      await stack?.close();
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("the whole flow works: onboarding, report, drift job, audit; every key is under the hash tag", async () => {
      if (!stack) throw new Error("no stack");
      const { project, delivery } = await stack.driver.createProject("platform/clustered", {
        members: { [SANDBOX.users.alice.id]: 40 },
      });
      expect(delivery.status).toBe(202);
      await settled(stack);
      const apps = [...stack.entra.state.applications.values()].filter((a) =>
        a.tags.includes(`gitlab-project:${project.id}`),
      );
      expect(apps).toHaveLength(2);
      expect(stack.gitlab.project(project.id)?.issues).toHaveLength(1);

      const maintenance = stack.service.queues.maintenance;
      const drift = await maintenance.add("drift-repair", {});
      await expect
        .poll(async () => maintenance.getJobState(drift.id as string), { timeout: 10_000, interval: 50 })
        .toBe("completed");

      const audit = await fetch(`${stack.service.url}/admin/audit?project=${project.id}`, {
        headers: { Authorization: `Bearer ${stack.secrets.adminToken}` },
      });
      expect(audit.status).toBe(200);
      expect(((await audit.json()) as { records: unknown[] }).records.length).toBeGreaterThan(0);
      expect(await failures(stack)).toEqual([]);

      const r = new Redis(url);
      try {
        const keys = await r.keys("*");
        expect(keys.length).toBeGreaterThan(0);
        expect(keys.filter((k) => !k.startsWith(`${PREFIX}:`))).toEqual([]);
        // One slot for all of them: the hash tag is the first {...} of each key.
        const slots = new Set(await Promise.all(keys.map((k) => r.call("CLUSTER", "KEYSLOT", k))));
        expect(slots.size).toBe(1);
      } finally {
        r.disconnect();
      }
    });

    it("control (after the flow: it writes a key outside the tag): without a hash tag, BullMQ's scripts fail with CROSSSLOT on this server", async () => {
      const plain = new Queue(QUEUES.events, { connection: { url }, prefix: "geb" });
      try {
        await expect(plain.add("probe", {}, { deduplication: { id: "probe" } })).rejects.toThrow(/CROSSSLOT/);
      } finally {
        await plain.close();
      }
    });
  },
);
