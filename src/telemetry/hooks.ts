import type { Telemetry } from "bullmq";

/**
 * The seams through which tracing reaches the rest of the code. This module imports nothing from
 * OpenTelemetry: with tracing off (the default) every seam is a no-op or the identity, so the webhook path and
 * the workers load and run exactly what they did before. src/telemetry/tracing.ts installs real hooks when
 * OTEL_* configuration asks for traces (src/telemetry/enabled.ts).
 */
export interface TracingHooks {
  /** BullMQ's telemetry (Queue and Worker option): producer span per add, consumer span per job. */
  bullmq: Telemetry;
  /** Wraps the HTTP server's fetch handler: a server span for each webhook delivery. */
  traceFetch<F extends FetchHandler>(fetch: F): F;
  /** Adds what identifies a job (GitLab event id, intent, project id) to the span of the job being processed. */
  annotateJob(data: unknown): void;
}

// biome-ignore lint/suspicious/noExplicitAny: the server adapter's second argument is its own business.
export type FetchHandler = (request: Request, ...rest: any[]) => Response | Promise<Response>;

let hooks: TracingHooks | undefined;

export function installTracingHooks(next: TracingHooks | undefined): void {
  hooks = next;
}

/** Spread into BullMQ Queue and Worker options: `{ telemetry }` when tracing is on, `{}` otherwise. */
export function bullmqTelemetry(): { telemetry?: Telemetry } {
  return hooks ? { telemetry: hooks.bullmq } : {};
}

export function traceFetch<F extends FetchHandler>(fetch: F): F {
  return hooks ? hooks.traceFetch(fetch) : fetch;
}

export function annotateJob(data: unknown): void {
  hooks?.annotateJob(data);
}
