import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const EXAMPLE_POLICY = new URL("../../policy.example.yaml", import.meta.url).pathname;

function run(
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    // A clean environment: only what the test sets, plus PATH so node can be found.
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stderr.on("data", (d) => {
      stderr += String(d);
    });
    child.stdout.on("data", (d) => {
      stdout += String(d);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

function policyFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "geb-policy-"));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, text);
  return path;
}

describe("start-up fails cleanly on bad configuration (exit 2, one line per problem, no stack trace)", () => {
  it("bad and missing environment variables", async () => {
    const r = await run({
      PORT: "eighty",
      REDIS_URL: "localhost:6379",
      AZURE_TENANT_ID: "not-a-guid",
      GITLAB_WEBHOOK_SIGNING_TOKENS: "nope",
      GITLAB_TOKEN: "glpat-supersecret-value",
      POLICY_FILE: EXAMPLE_POLICY,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ {2}- PORT: must be a whole number from 0 to 65535 \(example: 3000\)$/m);
    expect(r.stderr).toMatch(/REDIS_URL: must start with redis:\/\//);
    expect(r.stderr).toMatch(/AZURE_TENANT_ID: must be a GUID \(example: /);
    expect(r.stderr).toMatch(/GITLAB_WEBHOOK_SIGNING_TOKENS: .*whsec_/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr + r.stdout).not.toContain("glpat-supersecret-value");
  });

  it("missing required values for the role", async () => {
    const api = await run({ POLICY_FILE: EXAMPLE_POLICY }, ["--role=api"]);
    expect(api.code).toBe(2);
    expect(api.stderr).toMatch(/GITLAB_WEBHOOK_SECRETS: is required/);

    const worker = await run({ POLICY_FILE: EXAMPLE_POLICY }, ["--role=worker"]);
    expect(worker.code).toBe(2);
    for (const name of ["GITLAB_URL", "GITLAB_TOKEN", "AZURE_TENANT_ID", "AZURE_CLIENT_ID"]) {
      expect(worker.stderr).toContain(`${name}: is required`);
    }
    expect(worker.stderr).not.toContain("GITLAB_WEBHOOK_SECRETS");

    const secretless = await run(
      {
        POLICY_FILE: EXAMPLE_POLICY,
        GITLAB_URL: "https://gitlab.example.com",
        GITLAB_TOKEN: "t",
        AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
        AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
        AZURE_CREDENTIAL: "secret",
      },
      ["--role=worker"],
    );
    expect(secretless.code).toBe(2);
    expect(secretless.stderr).toMatch(/AZURE_CLIENT_SECRET: is required when AZURE_CREDENTIAL=secret/);
  });

  it("an unknown role", async () => {
    const r = await run({}, ["--role=everything"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--role must be api, worker or all/);
  });

  const base = { GITLAB_WEBHOOK_SECRETS: "s3cret-value-123" };

  it("a missing policy file", async () => {
    const r = await run({ ...base, POLICY_FILE: "/nonexistent/policy.yaml" }, ["--role=api"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/POLICY_FILE: cannot read \/nonexistent\/policy.yaml \(ENOENT\)/);
  });

  it("a policy file that is not YAML", async () => {
    const r = await run({ ...base, POLICY_FILE: policyFile("environments: [unclosed\n  : :") }, [
      "--role=api",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not valid YAML/);
  });

  it("a policy with wrong fields names each one", async () => {
    const path = policyFile(`
gitlab:
  subClaimComponents: [ref, project_path]
  issuer: http://gitlab.example.com/
onProjectCreate:
  environments: [qa]
environments:
  production:
    refs: ["main"]
    groups: ["sg-{team}-prod"]
    minAccessLevel: admin
  staging:
    refs: ["branch:*"]
    colour: blue
`);
    const r = await run({ ...base, POLICY_FILE: path }, ["--role=api"]);
    expect(r.code).toBe(2);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("  - "));
    const text = lines.join("\n");
    expect(text).toMatch(
      /gitlab\.subClaimComponents: the first component must be project_path or project_id/,
    );
    expect(text).toMatch(/gitlab\.issuer: must use https/);
    expect(text).toMatch(/environments\.production\.refs\.0: must be "branch:<name>" or "tag:<name>"/);
    expect(text).toMatch(
      /environments\.production\.groups\.0: group "sg-\{team\}-prod": unknown placeholder \{team\}/,
    );
    expect(text).toMatch(/environments\.production\.minAccessLevel:/);
    expect(text).toMatch(/environments\.staging\.refs\.0: wildcards are not allowed/);
    expect(text).toMatch(/environments\.staging: Unrecognized key: "colour"/i);
    expect(text).toContain(path);
  });

  it("cross-field checks run once the fields themselves are valid", async () => {
    const path = policyFile(`
onProjectCreate:
  environments: [qa]
environments:
  production:
    refs: ["branch:main"]
`);
    const r = await run({ ...base, POLICY_FILE: path }, ["--role=api"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /onProjectCreate\.environments: environment "qa" has no rule under environments:/,
    );
  });

  it("starts with the example policy and a good environment", async () => {
    const child = spawn(process.execPath, [MAIN, "--role=api"], {
      env: {
        PATH: process.env.PATH ?? "",
        ...base,
        POLICY_FILE: EXAMPLE_POLICY,
        PORT: "0",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const started = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += String(d);
        if (out.includes("gitlab-entra-bot started")) resolve(out);
      });
      child.on("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    expect(started).toMatch(/api listening/);
    const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
  });
});

describe("a policy written before privileged environments still starts", () => {
  it("the old example starts, and says at start-up that production is skipped on project creation", async () => {
    const old = new URL("../fixtures/policies/example-before-rules.yaml", import.meta.url).pathname;
    const child = spawn(process.execPath, [MAIN, "--role=api"], {
      env: {
        PATH: process.env.PATH ?? "",
        PORT: "0",
        HOST: "127.0.0.1",
        GITLAB_WEBHOOK_SECRETS: "s3cret-value-123",
        POLICY_FILE: old,
        REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
        QUEUE_PREFIX: `startup-warning-${process.pid}`,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const listening = new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        out += String(d);
        if (out.includes("api listening")) resolve();
      });
      child.on("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    await listening;
    child.kill("SIGTERM");
    const warning = out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: string; msg: string })
      .find((l) => l.msg.includes("privileged"));
    expect(warning?.level).toBe("warn");
    expect(warning?.msg).toMatch(/onProjectCreate\.environments lists "production", which is privileged/);
  });
});
