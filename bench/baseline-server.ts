/**
 * Baseline for bench:intake: the same server stack (@hono/node-server + Hono) and the same queue.add as the
 * real intake, with nothing else (no verification, no parsing, no normalising, no logging).
 */
import { randomUUID } from "node:crypto";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createProducerConnection } from "../src/queue/connection.ts";
import { enqueueIntent } from "../src/queue/enqueue.ts";
import { createQueues } from "../src/queue/queues.ts";

const redis = createProducerConnection(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const queues = createQueues(redis, process.env.QUEUE_PREFIX ?? "bench");
const app = new Hono();
const intent = {
  type: "project.created",
  project: { id: 74, path: "jsmith/storecloud" },
  source: "system-hook",
} as const;

app.post("/webhooks/gitlab", async (c) => {
  await c.req.arrayBuffer();
  const key = c.req.header("idempotency-key");
  const { jobId } = await enqueueIntent(
    queues.events,
    intent,
    {
      event: "System Hook/project_create",
      eventId: key ?? randomUUID(),
      receivedAt: new Date().toISOString(),
      source: { kind: "instance" },
      signed: false,
    },
    key,
  );
  return c.json({ jobId }, 202);
});

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 0), hostname: "127.0.0.1" }, (info) => {
  process.stdout.write(
    `${JSON.stringify({ msg: "baseline listening", url: `http://127.0.0.1:${info.port}` })}\n`,
  );
});
process.on("SIGTERM", async () => {
  await queues.close();
  await redis.quit();
  process.exit(0);
});
