import {
  context,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { NodeSDK } from "@opentelemetry/sdk-node";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from "@opentelemetry/semantic-conventions";
import type { Span as BullMQSpan, Telemetry } from "bullmq";
import { BullMQOTelSpan, BullMQOtel } from "bullmq-otel";
import { z } from "zod";
import { HANDLED_EVENTS } from "../gitlab/normalise.ts";
import { type FetchHandler, installTracingHooks } from "./hooks.ts";

/**
 * OpenTelemetry tracing for the bot, loaded only when OTEL_* configuration asks for it (enabled.ts). One trace
 * per webhook delivery: a server span for POST /webhooks/gitlab, BullMQ's producer span for the enqueue, a
 * consumer span per job (the context travels in the job's options, written by BullMQ's own telemetry
 * interface, so job data is unchanged), and a client span for every Graph and GitLab request.
 *
 * Nothing here patches modules: both HTTP clients use Node's fetch, which undici reports through
 * diagnostics_channel, and BullMQ calls its telemetry option itself. So load order does not matter and it
 * works the same under ESM, type stripping and test runners.
 *
 * Configuration is the SDK's own, from the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER(_ARG),
 * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_PROPAGATORS, OTEL_SDK_DISABLED...
 */

export const WEBHOOK_ROUTE = "/webhooks/gitlab";
export const WEBHOOK_SPAN = `POST ${WEBHOOK_ROUTE}`;
const DEFAULT_SERVICE_NAME = "gitlab-entra-bot";
const TRACER = "gitlab-entra-bot";
/** Response headers copied onto client spans: how Graph and GitLab support find one request. */
const RESPONSE_HEADERS = ["request-id", "client-request-id", "x-request-id", "retry-after"];

export interface TracingOptions {
  /** Replaces the exporters configured from the environment (tests use an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  env?: NodeJS.ProcessEnv;
}

export interface Tracing {
  /** Flushes pending spans and stops tracing; the hooks go back to no-ops. */
  shutdown(): Promise<void>;
}

export function startTracing(opts: TracingOptions = {}): Tracing {
  const env = opts.env ?? process.env;
  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: DEFAULT_SERVICE_NAME }),
    ...(opts.spanProcessors ? { spanProcessors: opts.spanProcessors } : {}),
    // Metrics stay on /metrics (Prometheus) and logs on stdout (pino): the SDK's OTLP defaults for those
    // signals apply only when the operator asks for them explicitly.
    ...(env.OTEL_METRICS_EXPORTER ? {} : { metricReaders: [] }),
    ...(env.OTEL_LOGS_EXPORTER ? {} : { logRecordProcessors: [] }),
    instrumentations: [
      new UndiciInstrumentation({
        // Only requests made inside a trace (a job): no orphan spans from start-up checks.
        requireParentforSpans: true,
        headersToSpanAttributes: { responseHeaders: RESPONSE_HEADERS },
      }),
    ],
  });
  sdk.start();
  const tracer = trace.getTracer(TRACER);
  installTracingHooks({
    bullmq: jobTelemetry(new BullMQOtel({ tracerName: "bullmq" })),
    traceFetch: (fetch) => traceWebhook(tracer, fetch),
    annotateJob,
  });
  return {
    shutdown: async () => {
      installTracingHooks(undefined);
      await sdk.shutdown();
    },
  };
}

const KNOWN_EVENTS: ReadonlySet<string> = new Set(HANDLED_EVENTS);
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/**
 * A root server span around each webhook delivery. Root on purpose: the sender is unauthenticated until the
 * handler has verified it, so a traceparent header it sends is not followed. Attributes are the request line,
 * the GitLab event (a fixed set, else "other"), the delivery id and the bot's X-Request-Id (the `reqId` of its
 * log lines); never a header carrying a secret, never the body.
 */
function traceWebhook<F extends FetchHandler>(tracer: Tracer, fetch: F): F {
  const traced = (request: Request, ...rest: unknown[]) => {
    if (request.method !== "POST" || new URL(request.url).pathname !== WEBHOOK_ROUTE) {
      return fetch(request, ...rest);
    }
    const event = request.headers.get("x-gitlab-event") ?? "";
    const deliveryId =
      request.headers.get("idempotency-key") ??
      request.headers.get("x-gitlab-event-uuid") ??
      request.headers.get("webhook-id");
    const span = tracer.startSpan(
      WEBHOOK_SPAN,
      {
        kind: SpanKind.SERVER,
        root: true,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: "POST",
          [ATTR_HTTP_ROUTE]: WEBHOOK_ROUTE,
          [ATTR_URL_PATH]: WEBHOOK_ROUTE,
          [ATTR_URL_SCHEME]: new URL(request.url).protocol.replace(":", ""),
          "gitlab.event": KNOWN_EVENTS.has(event) ? event : event ? "other" : "(none)",
          ...(deliveryId ? { "gitlab.delivery.id": clip(deliveryId, 128) } : {}),
          ...(request.headers.get("user-agent")
            ? { [ATTR_USER_AGENT_ORIGINAL]: clip(request.headers.get("user-agent") ?? "", 128) }
            : {}),
        },
      },
      ROOT_CONTEXT,
    );
    const finish = (response: Response) => {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, response.status);
      const requestId = response.headers.get("x-request-id");
      if (requestId) span.setAttribute("geb.request_id", clip(requestId, 128));
      // A 4xx is the sender's problem (bad secret, bad body): not an error of this service.
      if (response.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      return response;
    };
    const failed = (err: unknown) => {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      throw err;
    };
    try {
      const out = context.with(trace.setSpan(ROOT_CONTEXT, span), () => fetch(request, ...rest));
      return out instanceof Promise ? out.then(finish, failed) : finish(out);
    } catch (err) {
      return failed(err);
    }
  };
  return traced as F;
}

const jobIdentity = z.object({
  trigger: z.object({ event: z.string(), eventId: z.string() }).partial().optional(),
  intent: z
    .object({ type: z.string(), project: z.object({ id: z.number() }).partial().optional() })
    .partial()
    .optional(),
  project: z.object({ id: z.number() }).partial().optional(),
});

/**
 * What ties a job span to the delivery and the project: the GitLab event and its id, the intent and the project
 * id. Read from the raw job data with a tolerant schema (the processor parses it properly); nothing else of the
 * job, which can hold a comment's text, goes into the span.
 */
function annotateJob(data: unknown): void {
  const span = trace.getActiveSpan();
  if (!span) return;
  const parsed = jobIdentity.safeParse(data);
  if (!parsed.success) return;
  const { trigger, intent, project } = parsed.data;
  const projectId = intent?.project?.id ?? project?.id;
  span.setAttributes({
    ...(trigger?.event ? { "gitlab.event": clip(trigger.event, 64) } : {}),
    ...(trigger?.eventId ? { "gitlab.delivery.id": clip(trigger.eventId, 128) } : {}),
    ...(intent?.type ? { "geb.intent": clip(intent.type, 64) } : {}),
    ...(projectId !== undefined ? { "gitlab.project.id": projectId } : {}),
  });
}

/** BullMQ span kinds mirror OpenTelemetry's. */
const INTERNAL = 0;
/** Span events BullMQ adds with the job's return value: kept out of traces (it can hold rendered text). */
const DROPPED_EVENT_ATTRIBUTES = new Set(["bullmq.job.result"]);

/**
 * BullMQ's telemetry, narrowed to the spans that belong to a job's story. BullMQ also opens an INTERNAL span
 * for every poll of the queue and every stalled-job check; outside a trace those would each start a new trace
 * every few seconds per worker, so they are not recorded. Inside a job (a rate-limit pause, say) they are.
 */
function jobTelemetry(inner: BullMQOtel): Telemetry {
  const unrecorded = () => new BullMQOTelSpan(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  return {
    contextManager: inner.contextManager,
    tracer: {
      startSpan(name, options, ctx) {
        const parent = trace.getSpan(ctx ?? context.active());
        if (options?.kind === INTERNAL && !parent) return unrecorded();
        const span = inner.tracer.startSpan(name, options, ctx);
        return withoutResults(span);
      },
    },
  };
}

function withoutResults(span: BullMQSpan): BullMQSpan {
  const addEvent = span.addEvent.bind(span);
  span.addEvent = (name, attributes) => {
    const kept = attributes
      ? Object.fromEntries(Object.entries(attributes).filter(([k]) => !DROPPED_EVENT_ATTRIBUTES.has(k)))
      : attributes;
    addEvent(name, kept);
  };
  return span;
}
