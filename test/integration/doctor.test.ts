import { execFile, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { doctorReply } from "../../src/doctor/reply.ts";
import { checkIssuerDiscovery, type DoctorDeps } from "../../src/doctor/run.ts";
import { AuditLog } from "../../src/onboarding/audit.ts";
import { type OnboardingDeps, onboardProject } from "../../src/onboarding/onboard.ts";
import { Registry } from "../../src/onboarding/registry.ts";
import { snippetJobs, templateName } from "../../src/onboarding/snippet.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";
import { type EntraSimulator, startEntraSimulator } from "../../src/sandbox/entra-sim.ts";
import {
  type MintOptions,
  type OidcIssuerServer,
  startOidcIssuerServer,
} from "../../src/sandbox/gitlab-oidc.ts";
import { simBotSp, simGraph } from "../helpers/entra.ts";
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from "../helpers/redis.ts";

/**
 * Real failures, real diagnoses: tokens minted by the GitLab issuer simulator are exchanged at the Entra
 * simulator's token endpoint against credentials onboardProject made; the error text Entra answers (or the
 * token's claims) goes to doctor, which must name the cause.
 */
const TENANT = "0d0d0d0d-aaaa-bbbb-cccc-000000000001";
const BOT = { clientId: "0d0d0d0d-aaaa-bbbb-cccc-000000000002", clientSecret: "sim-only-doctor-secret" };
const G_PROD = "0d0d0d0d-0000-0000-0000-00000000000a";
const G_STAGE = "0d0d0d0d-0000-0000-0000-00000000000b";
const AUDIENCE = "api://AzureADTokenExchange";
const POLICY = `
gitlab:
  audience: ${AUDIENCE}
  subClaimComponents: [project_path, ref_type, ref]
environments:
  production:
    refs: ["branch:main"]
    groups: ["${G_PROD}"]
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${G_STAGE}"]
`;

let sim: EntraSimulator;
let gitlab: OidcIssuerServer;
let redis: Redis;
let onboarding: OnboardingDeps;
let doctor: DoctorDeps;
let audit: AuditLog;
const prefix = uniquePrefix("doctor");
const project = { id: 5151, path: "platform/payments/api" };
let prodAppId = "";

/** What the worker does with an onboarding result: one audit record per change. */
async function recordChanges(res: OnboardResult): Promise<void> {
  for (const env of res.environments) {
    for (const change of env.changes) {
      await audit.append({
        trigger: { event: "Note Hook", eventId: `doctor-test-${env.environment}` },
        project: res.project,
        environment: env.environment,
        change,
        outcome: "ok",
      });
    }
  }
}

const mint = (opts: Partial<MintOptions> & { ref?: string; path?: string } = {}) =>
  gitlab.issuer.mint({
    issuer: gitlab.url,
    audience: AUDIENCE,
    project: { id: project.id, path: opts.path ?? project.path },
    ref: opts.ref ?? "main",
    refType: "branch",
    ...opts,
  });

/** Exchanges at the simulated Entra token endpoint and returns its error_description (fails on success). */
async function entraError(token: string, appId = prodAppId): Promise<string> {
  const res = await sim.exchange({ clientId: appId, assertion: token });
  expect(res.status).toBe(400);
  const body = res.body as { error_description: string };
  return body.error_description;
}

beforeAll(async () => {
  sim = await startEntraSimulator({
    tenantId: TENANT,
    bot: BOT,
    groups: [
      { id: G_PROD, displayName: "payments-prod" },
      { id: G_STAGE, displayName: "payments-staging" },
    ],
  });
  gitlab = await startOidcIssuerServer();
  redis = new Redis(TEST_REDIS_URL);
  const graph = simGraph(sim, BOT);
  const policy = parsePolicy(POLICY);
  onboarding = {
    graph,
    botSp: simBotSp(graph, BOT),
    redis,
    keyPrefix: prefix,
    policy,
    issuer: gitlab.url,
    tenantId: TENANT,
    replication: { baseMs: 5 },
  };
  audit = new AuditLog(redis, { key: `${prefix}:audit` });
  doctor = { graph, policy, issuer: gitlab.url, registry: new Registry(redis, prefix), audit };
  const res = await onboardProject(onboarding, {
    project,
    environments: ["production", "staging"],
    mode: "apply",
  });
  prodAppId = res.environments[0]?.identity?.appId ?? "";
  // Audit times are backdated an hour so these credentials count as long propagated.
  for (const env of res.environments) {
    for (const change of env.changes) {
      await audit.append({
        time: new Date(Date.now() - 3_600_000 + 60_000).toISOString(),
        trigger: { event: "System Hook/project_create", eventId: "doctor-setup" },
        project,
        environment: env.environment,
        change,
        outcome: "ok",
      });
    }
  }
});

afterAll(async () => {
  await sim?.close();
  await gitlab?.close();
  await deletePrefix(prefix);
  await redis?.quit();
});

describe("doctor explains real Entra failures", () => {
  it("a matching token exchanges, and doctor agrees it matches", async () => {
    const token = await mint();
    expect((await sim.exchange({ clientId: prodAppId, assertion: token })).status).toBe(200);
    const claims = JSON.stringify({
      iss: gitlab.url,
      sub: `project_path:${project.path}:ref_type:branch:ref:main`,
      aud: AUDIENCE,
      project_id: String(project.id),
    });
    const md = await doctorReply(doctor, project.id, claims);
    expect(md).toContain(`Entra accepts it`);
    expect(md).toContain(prodAppId);
  });

  it("a branch the policy does not allow for production (AADSTS700213 text)", async () => {
    const text = await entraError(await mint({ ref: "feature/x" }));
    expect(text).toMatch(/^AADSTS700213:/);
    const md = await doctorReply(doctor, project.id, text);
    expect(md).toContain(
      "branch feature/x is not allowed for production by the policy (allowed: branch main)",
    );
    expect(md).toContain("AADSTS700213");
  });

  it("a branch allowed for staging but deployed to production (claims name the environment)", async () => {
    const token = await mint({ ref: "develop", environment: { name: "production", tier: "production" } });
    await entraError(token);
    const md = await doctorReply(doctor, project.id, token);
    expect(md).toContain("branch develop is not allowed for production by the policy");
    expect(md).not.toContain(token);
  });

  it("a renamed project: the token carries the new path", async () => {
    const renamed = "platform/billing/api";
    const text = await entraError(await mint({ path: renamed }));
    const md = await doctorReply(doctor, project.id, text);
    expect(md).toContain(`project renamed from ${project.path} to ${renamed}`);
    expect(md).toContain("run /entra onboard or wait for the reconciler");
  });

  it("a path differing only in letter case (AADSTS7002138)", async () => {
    const text = await entraError(await mint({ path: "platform/Payments/api" }));
    expect(text).toMatch(/^AADSTS7002138:/);
    const md = await doctorReply(doctor, project.id, text);
    expect(md).toContain("letter case only");
    // The caret line points at the one differing character.
    expect(md).toMatch(
      /credential "project_path:platform\/payments\/api[^\n]*\n\s+token {6}"project_path:platform\/Payments/,
    );
  });

  it("an issuer with a trailing slash (AADSTS700211 text)", async () => {
    const text = await entraError(await mint({ issuer: `${gitlab.url}/` }));
    expect(text).toMatch(/^AADSTS700211:/);
    const md = await doctorReply(doctor, project.id, text);
    expect(md).toContain("issuer differs only by a trailing slash");
    expect(md).toContain(`'${gitlab.url}/'`);
  });

  it("an audience that is not the snippet's id_tokens aud (AADSTS70021 text)", async () => {
    const text = await entraError(await mint({ audience: "https://gitlab.example.com" }));
    expect(text).toMatch(/^AADSTS70021:/);
    const md = await doctorReply(doctor, project.id, text);
    expect(md).toContain("audience differs from the snippet's id_tokens aud");
    expect(md).toContain(`aud: ${AUDIENCE}`);
  });

  it("an expired token (AADSTS700024 text, and the token itself)", async () => {
    const token = await mint({ issuedAt: Math.floor(Date.now() / 1000) - 900, expiresInSeconds: 300 });
    const text = await entraError(token);
    expect(text).toMatch(/^AADSTS700024:/);
    expect(await doctorReply(doctor, project.id, text)).toContain("token expired");
    const md = await doctorReply(doctor, project.id, token);
    expect(md).toContain("token expired");
    expect(md).toContain("read a fresh ID token");
  });

  it("a credential created seconds ago (propagation), known from the audit trail", async () => {
    sim.faults.ficPropagationDelayMs = 60_000;
    try {
      const fresh = { id: 5152, path: "platform/payments/web" };
      const res = await onboardProject(onboarding, {
        project: fresh,
        environments: ["production"],
        mode: "apply",
      });
      await recordChanges(res);
      const appId = res.environments[0]?.identity?.appId ?? "";
      const token = await mint({ project: { id: fresh.id, path: fresh.path } });
      const text = await entraError(token, appId);
      expect(text).toMatch(/^AADSTS700211:/);
      const md = await doctorReply(doctor, fresh.id, text);
      expect(md).toMatch(/credential gitlab-branch-main-[0-9a-f]+ \(production\) created \d+ s ago/);
      expect(md).toContain("retry in a few minutes");
    } finally {
      sim.faults.ficPropagationDelayMs = 0;
    }
  });

  it("a project without identities", async () => {
    const md = await doctorReply(
      doctor,
      999_999,
      `iss: ${gitlab.url}\nsub: project_path:x/y:ref_type:branch:ref:main`,
    );
    expect(md).toContain("has no Entra identity made by the bot");
  });
});

describe("the CI snippet's printed claims", () => {
  it("a failed job's output, pasted after /entra doctor, is diagnosed", async () => {
    const token = await mint({ ref: "feature/x" });
    const error = await entraError(token);
    const dir = mkdtempSync(join(tmpdir(), "doctor-snippet-"));
    // A fake az that fails the way az login does: it prints Entra's message.
    writeFileSync(
      join(dir, "az"),
      `#!/bin/sh\necho "ERROR: ${error.split("\r\n")[0]?.replace(/[`"$\\]/g, "")}" >&2\nexit 1\n`,
    );
    chmodSync(join(dir, "az"), 0o755);
    const tpl = snippetJobs({
      environment: "production",
      appId: prodAppId,
      tenantId: TENANT,
      audience: AUDIENCE,
      refs: ["branch:main"],
      variant: "azure-cli",
      ciVariablesSet: true,
      subClaimComponents: ["project_path", "ref_type", "ref"],
    })[templateName("production")];
    const script = ((tpl?.before_script ?? []) as string[]).join("\n");
    const r = spawnSync("sh", ["-c", script], {
      env: {
        PATH: `${dir}:${process.env.PATH ?? ""}`,
        GITLAB_OIDC_TOKEN: token,
        AZURE_CLIENT_ID: prodAppId,
        AZURE_TENANT_ID: TENANT,
        ENTRA_LOGIN_ATTEMPTS: "1",
        ENTRA_LOGIN_DELAY: "0",
        // An allowed ref: the login is attempted (a disallowed one stops before it).
        CI_COMMIT_REF_NAME: "main",
        CI_ENVIRONMENT_NAME: "production",
      },
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    const printed = `${r.stderr}${r.stdout}`;
    expect(printed).toContain('"sub":"project_path:platform/payments/api:ref_type:branch:ref:feature/x"');
    const md = await doctorReply(doctor, project.id, printed);
    expect(md).toContain("branch feature/x is not allowed for production by the policy");
    expect(md).toMatch(/expired|in \d+ (s|min)/);
  });
});

describe("issuer discovery check", () => {
  it("reaches the GitLab issuer's discovery document and keys over HTTPS", async () => {
    const ok = await checkIssuerDiscovery(gitlab.url);
    expect(ok).toMatchObject({ ok: true, url: `${gitlab.url}/.well-known/openid-configuration` });
  });

  it("reports an unreachable issuer", async () => {
    const bad = await checkIssuerDiscovery("https://localhost:1", fetch, 2000);
    expect(bad.ok).toBe(false);
  });
});

describe("doctor CLI (child process)", () => {
  const run = (args: string[], stdin?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const policyFile = join(mkdtempSync(join(tmpdir(), "doctor-policy-")), "policy.yaml");
      writeFileSync(policyFile, POLICY);
      const child = execFile(
        process.execPath,
        ["src/cli/doctor.ts", "--sandbox-ca", ...args],
        {
          env: {
            PATH: process.env.PATH ?? "",
            REDIS_URL: TEST_REDIS_URL,
            QUEUE_PREFIX: prefix,
            POLICY_FILE: policyFile,
            GITLAB_URL: gitlab.url,
            GITLAB_TOKEN: "not-used-by-doctor",
            AZURE_TENANT_ID: TENANT,
            AZURE_CLIENT_ID: BOT.clientId,
            AZURE_CLIENT_SECRET: BOT.clientSecret,
            AZURE_AUTHORITY_HOST: sim.url,
            GRAPH_BASE_URL: sim.url,
          },
        },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
      if (stdin !== undefined) child.stdin?.end(stdin);
      else child.stdin?.end();
    });

  it("reads a JWT from stdin, diagnoses it, never prints it", async () => {
    const token = await mint({ ref: "feature/x", environment: { name: "production" } });
    const r = await run([], token);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("branch feature/x is not allowed for production by the policy");
    expect(r.stdout).toContain(`GitLab project ${project.id}`);
    expect(r.stdout).not.toContain(token);
    for (const part of token.split(".")) expect(r.stdout).not.toContain(part);
  });

  it("takes a JWT as an argument with --check-issuer and exits 0 when it would log in", async () => {
    const token = await mint();
    const r = await run(["--check-issuer", token]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Entra accepts it");
    expect(r.stdout).toContain("issuer discovery OK");
    expect(`${r.stdout}${r.stderr}`).not.toContain(token);
  });

  it("reads an AADSTS message from --file with --project", async () => {
    const text = await entraError(await mint({ path: "platform/billing/api" }));
    const file = join(mkdtempSync(join(tmpdir(), "doctor-in-")), "error.txt");
    writeFileSync(file, text);
    const r = await run(["--project", String(project.id), "--file", file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`project renamed from ${project.path} to platform/billing/api`);
  });

  it("rejects input without claims (exit 2, input not echoed)", async () => {
    const r = await run(["just some words"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no ID token claims or AADSTS error found");
    expect(r.stderr).not.toContain("just some words");
  });
});
