import type { Queue } from "bullmq";
import { createLogger } from "../../src/logging.ts";
import { type SandboxOptions, type SandboxStack, startSandboxStack } from "../../src/sandbox/stack.ts";
import { waitForIdle } from "../../src/sandbox/wait.ts";
import { e2ePolicyYaml } from "./policy.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "./redis.ts";

/**
 * The sandbox stack on a private queue prefix, quiet logs; `close` also removes its Redis keys. The policy
 * defaults to e2ePolicyYaml (production automatic); pass `policyYaml: sandboxPolicyYaml()` for the sandbox's.
 */
export async function testStack(label: string, opts: Partial<SandboxOptions> = {}): Promise<SandboxStack> {
  const queuePrefix = uniquePrefix(label);
  const stack = await startSandboxStack({
    redisUrl: TEST_REDIS_URL,
    queuePrefix,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"),
    policyYaml: e2ePolicyYaml(),
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
export const idle = waitForIdle;

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

/**
 * Every job the queue holds in any state (waiting, delayed, active, completed, failed...): unlike Queue.count(),
 * it does not go down when a worker picks a job up, so "no new job" can be checked without racing the worker.
 */
export async function jobsInAnyState(queue: Queue): Promise<number> {
  const counts = await queue.getJobCounts(
    "waiting",
    "delayed",
    "prioritized",
    "active",
    "completed",
    "failed",
    "waiting-children",
  );
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
