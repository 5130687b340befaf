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
