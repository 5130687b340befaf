import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/env.ts";
import { createLogger } from "../../src/logging.ts";
import { createGitLabDriver } from "../../src/sandbox/gitlab-driver.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { type Service, startService } from "../../src/service.ts";
import { idle, testStack } from "../helpers/stack.ts";

/**
 * A worker-only process (ROLE=worker, as in the Kubernetes worker Deployment) with WORKER_HTTP_PORT serves the
 * probes Kubernetes needs and its own /metrics, so what the workers do (Graph and GitLab requests, job
 * durations) is visible when api and workers run apart. Without the variable it serves nothing.
 */

let stack: SandboxStack;
let api: Service;
let worker: Service;

beforeAll(async () => {
  stack = await testStack("worker-http", { startService: false });
  const logger = createLogger("silent");
  api = await startService({ config: { ...stack.config, role: "api" }, policy: stack.policy, logger });
  worker = await startService({
    config: { ...stack.config, role: "worker", workerHttpPort: 0 },
    policy: stack.policy,
    logger,
  });
});
afterAll(async () => {
  await worker?.close();
  await api?.close();
  await stack?.close();
});

describe("worker health and metrics (WORKER_HTTP_PORT)", () => {
  it("answers /healthz and /readyz, and takes no webhooks", async () => {
    const base = worker.workerHttpUrl as string;
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", redis: "ok" });
    expect((await fetch(`${base}/webhooks/gitlab`, { method: "POST", body: "{}" })).status).toBe(404);
    expect((await fetch(`${base}/admin/queues`)).status).toBe(404);
  });

  it("/metrics shows the Graph and GitLab requests this worker made", async () => {
    const driver = createGitLabDriver({
      gitlab: stack.gitlab,
      botUrl: () => api.url as string,
      secret: stack.secrets.webhook,
    });
    const { delivery } = await driver.createProject("platform/worker-metrics", {
      members: { [SANDBOX.users.alice.id]: 40 },
    });
    expect(delivery.status).toBe(202);
    await idle([api.queues.events, api.queues.reports]);
    const text = await (await fetch(`${worker.workerHttpUrl}/metrics`)).text();
    // An app registration created (201) by this worker, whichever request shape the client uses for it.
    expect(text).toMatch(
      /^geb_graph_requests_total\{operation="[A-Z]+ \/applications[^"]*",status="201"\} [1-9]/m,
    );
    expect(text).toMatch(/^geb_gitlab_requests_total\{operation="[^"]+",status="ok"\} [1-9]/m);
    expect(text).toMatch(
      /^geb_job_duration_seconds_count\{queue="gitlab-events",name="project.created",outcome="completed"\} [1-9]/m,
    );
  });

  it("without WORKER_HTTP_PORT a worker serves no HTTP; the variable is validated", () => {
    const env = {
      GITLAB_URL: "https://gitlab.example.com",
      GITLAB_TOKEN: "t",
      AZURE_TENANT_ID: SANDBOX.tenantId,
      AZURE_CLIENT_ID: SANDBOX.botClientId,
      AZURE_CLIENT_SECRET: "s",
    };
    expect(loadConfig(env, "worker").workerHttpPort).toBeUndefined();
    expect(loadConfig({ ...env, WORKER_HTTP_PORT: "9464" }, "worker").workerHttpPort).toBe(9464);
    expect(() => loadConfig({ ...env, WORKER_HTTP_PORT: "http" }, "worker")).toThrow(/WORKER_HTTP_PORT/);
  });
});
