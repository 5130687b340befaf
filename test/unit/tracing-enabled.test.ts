import { describe, expect, it } from "vitest";
import { tracingRequested } from "../../src/telemetry/enabled.ts";

describe("tracing is configured by the standard OTEL_* variables and off when they are unset", () => {
  it.each([
    [{}, false],
    [{ OTEL_SERVICE_NAME: "bot" }, false],
    [{ OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod" }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "" }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector:4318" }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://otel-collector:4318/v1/traces" }, true],
    [{ OTEL_TRACES_EXPORTER: "otlp" }, true],
    [{ OTEL_TRACES_EXPORTER: "console" }, true],
    [{ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, false],
    [{ OTEL_TRACES_EXPORTER: "otlp,None" }, false],
    [{ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, false],
    [{ OTEL_SDK_DISABLED: "TRUE", OTEL_TRACES_EXPORTER: "otlp" }, false],
    [{ OTEL_SDK_DISABLED: "false", OTEL_TRACES_EXPORTER: "otlp" }, true],
  ])("%o -> %s", (env, on) => {
    expect(tracingRequested(env)).toBe(on);
  });
});
