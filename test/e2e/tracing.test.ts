import { randomUUID } from "node:crypto";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { startTracing, type Tracing, WEBHOOK_SPAN } from "../../src/telemetry/tracing.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * One onboarding, traced: the tree an operator follows from the webhook to every Graph and GitLab request,
 * collected by an in-memory exporter from the real tracing set-up (src/telemetry/tracing.ts) around the real
 * service on the sandbox stack.
 */

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let stack: SandboxStack;
const { alice } = SANDBOX.users;

beforeAll(async () => {
  // Before the stack: the queues, workers and server pick up the tracing hooks when they are built.
  tracing = startTracing({ spanProcessors: [new SimpleSpanProcessor({ exporter })], env: {} });
  stack = await testStack("tracing");
});
afterAll(async () => {
  await stack?.close();
  await tracing?.shutdown();
});

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;
const urlOf = (s: ReadableSpan) => String(s.attributes["url.full"] ?? "");

describe("tracing: one trace from the webhook to every Graph and GitLab request", () => {
  it("project_create: server span → enqueue → job → Graph calls; job → report enqueue → report job → GitLab calls", async () => {
    stack.entra.stats.reset();
    stack.gitlab.stats.reset();
    const { project, delivery } = await stack.driver.createProject("platform/traced", {
      members: { [alice.id]: 40 },
    });
    expect(delivery.status).toBe(202);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);

    const spans = exporter.getFinishedSpans();
    const root = spans.find(
      (s) => s.name === WEBHOOK_SPAN && s.attributes["gitlab.delivery.id"] === delivery.idempotencyKey,
    );
    if (!root) throw new Error(`no webhook span; spans: ${spans.map((s) => s.name).join(", ")}`);
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/webhooks/gitlab",
      "http.response.status_code": 202,
      "gitlab.event": "System Hook",
    });
    expect(root.attributes["geb.request_id"]).toEqual(expect.any(String));

    const traceId = root.spanContext().traceId;
    const trace = spans.filter((s) => s.spanContext().traceId === traceId);
    const children = (parent: ReadableSpan) => trace.filter((s) => parentOf(s) === idOf(parent));

    // Enqueue: BullMQ's producer span, child of the webhook span, naming the job the webhook answered.
    const enqueue = children(root).find((s) => s.kind === SpanKind.PRODUCER);
    expect(enqueue?.name).toBe("add gitlab-events.project.created");
    expect(enqueue?.attributes["bullmq.job.id"]).toBe(delivery.body.jobId);
    if (!enqueue) return;

    // The job: a consumer span per attempt (one here), child of the enqueue, tagged with delivery and project.
    const jobs = children(enqueue).filter((s) => s.kind === SpanKind.CONSUMER);
    expect(jobs.map((s) => s.name)).toEqual(["process gitlab-events"]);
    const job = jobs[0] as ReadableSpan;
    expect(job.attributes).toMatchObject({
      "bullmq.job.id": delivery.body.jobId,
      "gitlab.delivery.id": delivery.idempotencyKey,
      "geb.intent": "project.created",
      "gitlab.project.id": project.id,
    });

    // Every Graph request the job made is a client span under the job, with Graph's request-id.
    const graphCalls = stack.entra.stats.requests.filter((r) => r.kind === "graph");
    expect(graphCalls.length).toBe(11);
    const graphSpans = trace.filter(
      (s) => s.kind === SpanKind.CLIENT && urlOf(s).startsWith(`${stack.entra.url}/v1.0/`),
    );
    expect(graphSpans).toHaveLength(graphCalls.length);
    for (const s of graphSpans) {
      expect(s.name).toBe(s.attributes["http.request.method"]);
      expect(parentOf(s)).toBe(idOf(job));
      expect(s.attributes["http.response.status_code"]).toEqual(expect.any(Number));
      expect(s.attributes["http.response.header.request-id"]).toEqual([expect.any(String)]);
    }
    expect(graphSpans.map((s) => s.attributes["http.request.method"]).sort()).toEqual(
      graphCalls.map((r) => r.method).sort(),
    );

    // The report: enqueued by the job, processed as its own job, and every GitLab request under it.
    const reportEnqueue = children(job).find((s) => s.kind === SpanKind.PRODUCER);
    expect(reportEnqueue?.name).toMatch(/^add gitlab-reports\./);
    if (!reportEnqueue) return;
    const reportJob = children(reportEnqueue).find((s) => s.kind === SpanKind.CONSUMER);
    expect(reportJob?.name).toBe("process gitlab-reports");
    if (!reportJob) return;
    const gitlabSpans = trace.filter(
      (s) => s.kind === SpanKind.CLIENT && urlOf(s).startsWith(`${stack.gitlab.url}/api/v4/`),
    );
    expect(stack.gitlab.stats.requests).toBeGreaterThan(0);
    expect(gitlabSpans).toHaveLength(stack.gitlab.stats.requests);
    for (const s of gitlabSpans) expect([idOf(job), idOf(reportJob)]).toContain(parentOf(s));
    expect(gitlabSpans.some((s) => parentOf(s) === idOf(reportJob))).toBe(true);

    // No client span of this onboarding ended up in another trace.
    const orphans = spans.filter(
      (s) =>
        s.kind === SpanKind.CLIENT &&
        s.spanContext().traceId !== traceId &&
        (urlOf(s).startsWith(stack.entra.url) || urlOf(s).startsWith(stack.gitlab.url)),
    );
    expect(orphans.map(urlOf)).toEqual([]);
  });

  const commentMarkers = [`comment-text-${randomUUID()}`, `second-line-${randomUUID()}`];

  it("a slash command is traced too, without the comment's text", async () => {
    const projectId = [...stack.gitlab.state.projects.values()].find((p) => p.path === "platform/traced")?.id;
    const issue = projectId ? stack.gitlab.project(projectId)?.issues[0] : undefined;
    if (!projectId || !issue) throw new Error("the onboarding issue of the first test is missing");
    const { delivery } = await stack.driver.comment(
      projectId,
      issue.iid,
      alice.id,
      `/entra plan staging ${commentMarkers[0]}\n${commentMarkers[1]}`,
    );
    expect(delivery.status).toBe(202);
    await settled(stack);
    const spans = exporter.getFinishedSpans();
    const root = spans.find(
      (s) => s.name === WEBHOOK_SPAN && s.attributes["gitlab.delivery.id"] === delivery.idempotencyKey,
    );
    expect(root?.attributes["gitlab.event"]).toBe("Note Hook");
    const inTrace = spans.filter((s) => s.spanContext().traceId === root?.spanContext().traceId);
    expect(inTrace.find((s) => s.name === "process gitlab-events")?.attributes["geb.intent"]).toBe("command");
    // The marker was in play: it is in the job GitLab's note became (and so in what the worker handled).
    const job = await stack.service.queues.events.getJob(String(delivery.body.jobId));
    expect(JSON.stringify(job?.data)).toContain(commentMarkers[0]);
    // The reply was written to GitLab inside this trace.
    expect(
      inTrace.some((s) => s.kind === SpanKind.CLIENT && s.attributes["http.request.method"] === "POST"),
    ).toBe(true);
  });

  it("no secret in any span: attributes, events, resource", () => {
    const spans = exporter.getFinishedSpans();
    expect(spans.length).toBeGreaterThan(10);
    const text = JSON.stringify(
      spans.map((s) => ({
        name: s.name,
        attributes: s.attributes,
        events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
        links: s.links,
        resource: s.resource.attributes,
      })),
    );
    for (const [name, secret] of Object.entries(stack.secrets)) {
      expect(text.includes(secret), `${name} found in a span`).toBe(false);
    }
    // Comment text (which can hold a pasted token) reaches no span; neither does a note the bot wrote.
    for (const marker of commentMarkers) expect(text.includes(marker), marker).toBe(false);
    expect(text).not.toMatch(/bearer\s/i);
    expect(text).not.toMatch(/private-token/i);
    // No JWT (Graph access tokens, ID tokens) anywhere.
    expect(text).not.toMatch(/eyJ[\w-]{10,}\.eyJ[\w-]{10,}/);
    // BullMQ's job-completed event would carry the job's return value: dropped.
    expect(text).not.toContain("bullmq.job.result");
  });

  it("BullMQ's polling and stalled-job checks start no traces of their own", () => {
    const roots = exporter.getFinishedSpans().filter((s) => !s.parentSpanContext);
    expect(roots.map((s) => s.name)).toEqual(roots.map(() => WEBHOOK_SPAN));
  });
});
