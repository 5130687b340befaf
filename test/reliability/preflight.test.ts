import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { testStack } from "../helpers/stack.ts";
import { botEnv, killAllBots } from "./bot-process.ts";

/** `npm run preflight` (src/cli/preflight.ts) as a child process against the simulators. */
const CLI = fileURLToPath(new URL("../../src/cli/preflight.ts", import.meta.url));
let stack: SandboxStack;
let narrowEntra: EntraSimulator;
const NARROW_SECRET = "narrow-bot-secret-0123456789";

beforeAll(async () => {
  stack = await testStack("preflight", { startService: false });
  // A tenant where the bot was granted only Application.ReadWrite.OwnedBy.
  narrowEntra = await startEntraSimulator({
    tenantId: SANDBOX.tenantId,
    bot: {
      clientId: SANDBOX.botClientId,
      clientSecret: NARROW_SECRET,
      roles: ["Application.ReadWrite.OwnedBy"],
    },
  });
});
afterAll(async () => {
  await killAllBots();
  await narrowEntra?.close();
  await stack?.close();
});

function preflight(env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "--sandbox-ca"], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, out: `${stdout}${stderr}` });
    });
  });
}

describe("preflight", () => {
  it("passes against a correctly configured sandbox and lists the roles it found", async () => {
    const r = await preflight(botEnv(stack));
    expect(r.out).toMatch(/ok {3}policy/);
    // The sandbox policy chooses project_path subjects explicitly: allowed, with a warning naming the risk.
    expect(r.out).toMatch(/warning: gitlab\.subClaimComponents starts with project_path/);
    expect(r.out).toMatch(/ok {3}graph-roles .*Application\.ReadWrite\.OwnedBy/);
    expect(r.out).toContain(
      `ok   graph-ownership  the bot's service principal is ${stack.entra.botServicePrincipalId}; it owns 0 app registration(s)`,
    );
    expect(r.out).toMatch(/ok {3}gitlab-user .*@entra-bot/);
    expect(r.out).toMatch(/ok {3}issuer-discovery/);
    expect(r.out).toMatch(/ok {3}redis/);
    expect(r.out).toContain("all checks passed");
    expect(r.code).toBe(0);
  });

  it("names the missing Graph permission, the wrong GitLab token, unreachable Redis and a bad policy; exits 1", async () => {
    // With Application.ReadWrite.OwnedBy alone the bot can still read what it owns.
    const owned = await preflight(
      botEnv(stack, {
        AZURE_AUTHORITY_HOST: narrowEntra.url,
        GRAPH_BASE_URL: narrowEntra.url,
        AZURE_CLIENT_SECRET: NARROW_SECRET,
      }),
    );
    expect(owned.out).toMatch(/ok {3}graph-ownership .*ownedObjects works/);
    const env = botEnv(stack, {
      AZURE_AUTHORITY_HOST: narrowEntra.url,
      GRAPH_BASE_URL: narrowEntra.url,
      AZURE_CLIENT_SECRET: NARROW_SECRET,
      GITLAB_TOKEN: "glpat-wrong-token-for-preflight",
      REDIS_URL: "redis://127.0.0.1:1",
    });
    const r = await preflight(env);
    expect(r.code).toBe(1);
    // The sandbox policy adds identities to groups: both group permissions are needed and missing.
    expect(r.out).toMatch(
      /FAIL graph-roles .*missing Graph application permissions: GroupMember\.ReadWrite\.All, Application\.ReadWrite\.All \(the policy adds identities to groups\)/,
    );
    expect(r.out).toMatch(/FAIL gitlab-user .*answered 401: the token is wrong, expired or revoked/);
    expect(r.out).toMatch(/FAIL redis .*127\.0\.0\.1:1 is not reachable/);
    expect(r.out).toMatch(/[3-5] checks failed/);
    for (const secret of [NARROW_SECRET, "glpat-wrong-token-for-preflight", stack.secrets.webhook]) {
      expect(r.out).not.toContain(secret);
    }

    writeFileSync(env.POLICY_FILE as string, "environments: {}\nscope: 12\n");
    const bad = await preflight(botEnv(stack, { POLICY_FILE: env.POLICY_FILE as string }));
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/FAIL policy .*is invalid/);
  });

  it("the bot's own service principal cannot be found: graph-ownership fails and says what AZURE_CLIENT_ID must be", async () => {
    narrowEntra.state.servicePrincipals.delete(narrowEntra.botServicePrincipalId);
    try {
      const r = await preflight(
        botEnv(stack, {
          AZURE_AUTHORITY_HOST: narrowEntra.url,
          GRAPH_BASE_URL: narrowEntra.url,
          AZURE_CLIENT_SECRET: NARROW_SECRET,
        }),
      );
      expect(r.code).toBe(1);
      expect(r.out).toMatch(
        /FAIL graph-ownership .*could not resolve the bot's own service principal .*no service principal has appId 0a1b2c3d-.*AZURE_CLIENT_ID must be the application \(client\) id/,
      );
    } finally {
      narrowEntra.reset();
    }
  });

  it("warns that an old policy's production is skipped on project creation; names the group-read permission templates need", async () => {
    const old = fileURLToPath(new URL("../fixtures/policies/example-before-rules.yaml", import.meta.url));
    const r = await preflight(botEnv(stack, { POLICY_FILE: old }));
    expect(r.out).toMatch(/ok {3}policy .*is valid/);
    expect(r.out).toMatch(/warning: onProjectCreate\.environments lists "production", which is privileged/);

    const env = botEnv(stack, {
      AZURE_AUTHORITY_HOST: narrowEntra.url,
      GRAPH_BASE_URL: narrowEntra.url,
      AZURE_CLIENT_SECRET: NARROW_SECRET,
    });
    writeFileSync(
      env.POLICY_FILE as string,
      "environments:\n  staging:\n    refs: ['branch:main']\n    groups: ['sg-{namespace}-{environment}']\n",
    );
    const narrow = await preflight(env);
    expect(narrow.code).toBe(1);
    expect(narrow.out).toMatch(
      /FAIL graph-group-read .*GET \/groups\?\$filter=displayName eq '\.\.\.': grant GroupMember\.Read\.All \(least privileged/,
    );
    const full = await preflight(botEnv(stack, { POLICY_FILE: env.POLICY_FILE as string }));
    expect(full.out).toMatch(
      /ok {3}graph-group-read .*GroupMember\.ReadWrite\.All lets the bot look them up/,
    );
  });

  it("a wrong Azure client secret: no token, said plainly, secret not echoed", async () => {
    const r = await preflight(botEnv(stack, { AZURE_CLIENT_SECRET: "wrong-azure-secret-0123456789" }));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL graph-token .*could not get a Graph token as 0a1b2c3d/);
    expect(r.out).not.toContain("wrong-azure-secret-0123456789");
  });
});
