import type { Config } from "../../src/config/env.ts";

/** A complete Config for in-process tests; override what the test is about. */
export function baseConfig(overrides: Partial<Config> = {}): Config {
  return {
    role: "all",
    port: 0,
    host: "127.0.0.1",
    redisUrl: process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379",
    queuePrefix: "geb-test",
    policyFile: "policy.example.yaml",
    logLevel: "silent",
    bodyLimitBytes: 1024 * 1024,
    workerConcurrency: 4,
    driftIntervalSeconds: 0,
    drift: { mode: "bulk", chunkSize: 500, readsPerWrite: 20 },
    graphWritesPerSecond: 0,
    gitlab: {
      url: "https://gitlab.example.com",
      token: undefined,
      webhookSecrets: ["test-secret-0123456789"],
      signingTokens: [],
      instances: [],
      oidcIssuer: "https://gitlab.example.com",
    },
    azure: {
      credential: undefined,
      authorityHost: "https://login.microsoftonline.com",
      graphBaseUrl: "https://graph.microsoft.com",
    },
    admin: { token: undefined, viewerToken: undefined },
    ...overrides,
  };
}
