import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "workers/**/*.test.ts", "test/**/*.test.ts"],
    setupFiles: ["test/setup/trust-sandbox-ca.ts"],
    pool: "forks",
    // Integration tests start HTTPS simulators, Redis connections and child processes.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ["default"],
  },
});
