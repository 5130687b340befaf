import { Queue } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { metrics, metricsRoute, registerQueueGauges, registry } from "../../src/http/metrics.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

const prefix = uniquePrefix("metrics");
const queues: Queue[] = [];

afterAll(async () => {
  await Promise.all(queues.map((q) => q.close()));
  await deletePrefix(prefix);
});

async function scrape(): Promise<{ status: number; type: string | null; text: string }> {
  const res = await metricsRoute().request("/metrics");
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

/** The value of one sample line, e.g. sample(text, 'geb_webhooks_total{event="x",outcome="y"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("metrics", () => {
  it("serves Prometheus text with every geb_ metric declared and default process metrics", async () => {
    const { status, type, text } = await scrape();
    expect(status).toBe(200);
    expect(type).toContain("text/plain");
    for (const name of [
      "geb_webhooks_total counter",
      "geb_intake_duration_seconds histogram",
      "geb_jobs gauge",
      "geb_job_duration_seconds histogram",
      "geb_graph_requests_total counter",
      "geb_gitlab_requests_total counter",
      "geb_throttled_total counter",
      "geb_drift_found_total counter",
      "geb_drift_repaired_total counter",
      "process_cpu_user_seconds_total counter",
      "nodejs_eventloop_lag_seconds gauge",
    ]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
  });

  it("counts: increments show up in the next scrape with their labels", async () => {
    metrics.webhooksTotal.inc({ event: "Note Hook", outcome: "accepted" });
    metrics.webhooksTotal.inc({ event: "Note Hook", outcome: "accepted" });
    metrics.webhooksTotal.inc({ event: "Push Hook", outcome: "ignored" });
    metrics.graphRequestsTotal.inc({ operation: "createApplication", status: "201" });
    metrics.gitlabRequestsTotal.inc({ operation: "createIssueNote", status: "429" });
    metrics.throttledTotal.inc({ service: "gitlab" });
    metrics.driftFoundTotal.inc({ kind: "federatedIdentityCredential" }, 3);
    metrics.driftRepairedTotal.inc({ kind: "federatedIdentityCredential" }, 2);
    metrics.intakeDurationSeconds.observe(0.004);
    metrics.jobDurationSeconds.observe(
      { queue: "gitlab-events", name: "project.created", outcome: "completed" },
      1.7,
    );

    const { text } = await scrape();
    expect(sample(text, 'geb_webhooks_total{event="Note Hook",outcome="accepted"}')).toBe(2);
    expect(sample(text, 'geb_webhooks_total{event="Push Hook",outcome="ignored"}')).toBe(1);
    expect(sample(text, 'geb_graph_requests_total{operation="createApplication",status="201"}')).toBe(1);
    expect(sample(text, 'geb_gitlab_requests_total{operation="createIssueNote",status="429"}')).toBe(1);
    expect(sample(text, 'geb_throttled_total{service="gitlab"}')).toBe(1);
    expect(sample(text, 'geb_drift_found_total{kind="federatedIdentityCredential"}')).toBe(3);
    expect(sample(text, 'geb_drift_repaired_total{kind="federatedIdentityCredential"}')).toBe(2);
    expect(sample(text, 'geb_intake_duration_seconds_bucket{le="0.005"}')).toBe(1);
    expect(sample(text, 'geb_intake_duration_seconds_bucket{le="0.0025"}')).toBe(0);
    expect(sample(text, "geb_intake_duration_seconds_count")).toBe(1);
    const job = 'queue="gitlab-events",name="project.created",outcome="completed"';
    expect(sample(text, `geb_job_duration_seconds_bucket{le="2.5",${job}}`)).toBe(1);
    expect(sample(text, `geb_job_duration_seconds_bucket{le="1",${job}}`)).toBe(0);
    expect(sample(text, `geb_job_duration_seconds_sum{${job}}`)).toBe(1.7);
  });

  it("reports job counts per queue and state from real queues at scrape time", async () => {
    const connection = { url: TEST_REDIS_URL };
    const a = new Queue("metrics-a", { connection, prefix });
    const b = new Queue("metrics-b", { connection, prefix });
    queues.push(a, b);
    await a.add("x", { n: 1 });
    await a.add("x", { n: 2 });
    await a.add("later", { n: 3 }, { delay: 60_000 });
    await b.pause();
    await b.add("y", {});
    const unregister = registerQueueGauges([a, b]);

    let { text } = await scrape();
    expect(sample(text, 'geb_jobs{queue="metrics-a",state="waiting"}')).toBe(2);
    expect(sample(text, 'geb_jobs{queue="metrics-a",state="delayed"}')).toBe(1);
    expect(sample(text, 'geb_jobs{queue="metrics-a",state="failed"}')).toBe(0);
    // BullMQ 6 counts jobs of a paused queue as waiting; the pause itself is its own gauge.
    expect(sample(text, 'geb_jobs{queue="metrics-b",state="waiting"}')).toBe(1);
    expect(sample(text, 'geb_queue_paused{queue="metrics-b"}')).toBe(1);
    expect(sample(text, 'geb_queue_paused{queue="metrics-a"}')).toBe(0);

    // Collected on scrape: a change in Redis shows up without anyone touching the gauge.
    await a.add("x", { n: 4 });
    ({ text } = await scrape());
    expect(sample(text, 'geb_jobs{queue="metrics-a",state="waiting"}')).toBe(3);

    unregister();
    ({ text } = await scrape());
    expect(sample(text, 'geb_jobs{queue="metrics-a",state="waiting"}')).toBeUndefined();
  });

  it("keeps serving other metrics when a queue cannot be read", async () => {
    const unregister = registerQueueGauges([
      { name: "broken", getJobCounts: () => Promise.reject(new Error("ECONNREFUSED")) },
    ]);
    try {
      const { status, text } = await scrape();
      expect(status).toBe(200);
      expect(text).toContain("# TYPE geb_webhooks_total counter");
      expect(text).not.toContain('queue="broken"');
    } finally {
      unregister();
    }
    expect(registry.getSingleMetric("geb_jobs")).toBeDefined();
  });
});
