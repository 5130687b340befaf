import type { Queue } from "bullmq";

/** Waits until no job is waiting, delayed, active or prioritized on the given queues. */
export async function waitForIdle(queues: Queue[], timeoutMs = 20_000): Promise<void> {
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
