/**
 * Whether to start OpenTelemetry tracing, decided from the standard OTEL_* variables alone. Off unless the
 * operator names a trace exporter or an OTLP endpoint: an unconfigured process loads no OpenTelemetry code
 * at all (src/main.ts imports the SDK only when this says yes).
 *
 * - OTEL_SDK_DISABLED=true: off, whatever else is set (the specification's kill switch).
 * - OTEL_TRACES_EXPORTER=none: off. Any other value (otlp, console, zipkin): on.
 * - OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: on (OTLP over http/protobuf unless
 *   OTEL_EXPORTER_OTLP_PROTOCOL says otherwise).
 * - OTEL_SERVICE_NAME and the other variables alone do not turn it on.
 */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  const value = (name: string) => env[name]?.trim() ?? "";
  if (value("OTEL_SDK_DISABLED").toLowerCase() === "true") return false;
  const exporters = value("OTEL_TRACES_EXPORTER")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (exporters.includes("none")) return false;
  if (exporters.length > 0) return true;
  return value("OTEL_EXPORTER_OTLP_ENDPOINT") !== "" || value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") !== "";
}
