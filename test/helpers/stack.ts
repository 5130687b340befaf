import type { Queue } from "bullmq";
import { createLogger } from "../../src/logging.ts";
import { type SandboxOptions, type SandboxStack, startSandboxStack } from "../../src/sandbox/stack.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "./redis.ts";

/** The sandbox stack on a private queue prefix, quiet logs; `close` also removes its Redis keys. */
export async function testStack(label: string, opts: Partial<SandboxOptions> = {}): Promise<SandboxStack> {
  const queuePrefix = uniquePrefix(label);
  const stack = await startSandboxStack({
    redisUrl: TEST_REDIS_URL,
    queuePrefix,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"),
    ...opts,
    env: { WORKER_CONCURRENCY: "4", ...opts.env },
  });
  const close = stack.close;
  stack.close = async () => {
    await close();
    await deletePrefix(queuePrefix);
  };
  return stack;
}

/** Waits until no job is waiting, delayed, active or prioritized on the given queues. */
export async function idle(queues: Queue[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietRounds = 0;
  while (Date.now() < deadline) {
    const counts = await Promise.all(
      queues.map((q) => q.getJobCounts("waiting", "delayed", "active", "prioritized")),
    );
    const busy = counts.reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0);
    // Two quiet looks in a row: a job may enqueue its report just as we look.
    quietRounds = busy === 0 ? quietRounds + 1 : 0;
    if (quietRounds >= 2) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("queues did not become idle in time");
}

export async function settled(stack: SandboxStack): Promise<void> {
  await idle([stack.service.queues.events, stack.service.queues.reports]);
}

/** Failed jobs' reasons across the service's queues (a test that expects none asserts this is empty). */
export async function failures(stack: SandboxStack): Promise<string[]> {
  const out: string[] = [];
  for (const q of stack.service.queues.all()) {
    for (const job of await q.getFailed()) out.push(`${q.name}/${job.name}: ${job.failedReason}`);
  }
  return out;
}
