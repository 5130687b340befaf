import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/config/policy.ts";
import { createLogger } from "../../src/logging.ts";
import { explainProject } from "../../src/policy/explain.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX, sandboxPolicyYaml } from "../../src/sandbox/stack.ts";
import { repairDrift } from "../../workers/drift.ts";
import { createWorkerRuntime } from "../../workers/runtime.ts";
import { e2ePolicyYaml, STAGING_GROUP } from "../helpers/policy.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { settled, testStack } from "../helpers/stack.ts";
import { botEnv, killAllBots } from "../reliability/bot-process.ts";

/**
 * `npm run policy -- explain|diff` (src/cli/policy.ts) as child processes against the simulators: explain
 * tells the rule, subjects, resolved groups and who may onboard; diff lists exactly what a new policy would
 * change and writes nothing (the simulators' write counters prove it); drift repair then converges to it.
 */
const CLI = fileURLToPath(new URL("../../src/cli/policy.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "geb-policy-cli-"));
let stack: SandboxStack;
let redis: Redis;
const projects: number[] = [];

function run(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args, "--sandbox-ca"],
      { env, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === "number" ? code : 1, out: `${stdout}${stderr}` });
      },
    );
  });
}

const stagingMembers = () => stack.entra.state.groups.get(STAGING_GROUP)?.members.size ?? 0;

beforeAll(async () => {
  stack = await testStack("policy-cli");
  redis = new Redis(TEST_REDIS_URL);
  for (const path of ["team/one", "team/two"]) {
    const { project } = await stack.driver.createProject(path, { members: { [SANDBOX.users.alice.id]: 40 } });
    projects.push(project.id);
  }
  await settled(stack);
});
afterAll(async () => {
  await killAllBots();
  await redis?.quit();
  await stack?.close();
});

describe("npm run policy -- diff", () => {
  const file = join(dir, "next.yaml");

  it("after removing a group, lists exactly the membership removals and writes nothing", async () => {
    const next = e2ePolicyYaml().replace(`groups: ["${STAGING_GROUP}"]`, "groups: []");
    expect(next).not.toBe(e2ePolicyYaml());
    writeFileSync(file, next);
    expect(stagingMembers()).toBe(2);
    stack.entra.stats.reset();
    stack.gitlab.stats.reset();
    const r = await run(["diff", file], botEnv(stack));
    expect(r.code).toBe(0);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(stack.entra.stats.reads()).toBeGreaterThan(0);
    expect(stack.gitlab.stats.requests).toBe(0);
    expect(stagingMembers()).toBe(2);
    const changeLines = r.out.split("\n").filter((l) => /^ {4}[-+~!=] /.test(l));
    expect(changeLines).toHaveLength(2);
    for (const l of changeLines)
      expect(l).toMatch(new RegExp(`^ {4}- remove groupMembership ${STAGING_GROUP}$`));
    expect(r.out).toContain("team/one (project");
    expect(r.out).toContain("team/two (project");
    expect(r.out).toContain("2 project(s) managed; 2 would change; 2 change(s) in Entra.");
    expect(r.out).not.toContain(stack.secrets.azureClientSecret);
  });

  it("drift repair then converges the existing identities to the new policy", async () => {
    const next = parsePolicy(e2ePolicyYaml().replace(`groups: ["${STAGING_GROUP}"]`, "groups: []"));
    const logger = createLogger("silent");
    const rt = createWorkerRuntime({
      config: stack.config,
      policy: next,
      logger,
      redis,
      queues: stack.service.queues,
    });
    const job = { id: "policy-change", log: async () => 0 } as unknown as Job;
    const report = await repairDrift(rt, job, logger);
    expect(report.repaired).toBe(2);
    expect(stagingMembers()).toBe(0);
    // Converged: the same diff is now empty.
    const r = await run(["diff", file], botEnv(stack));
    expect(r.out).toContain("2 project(s) managed; 0 would change; 0 change(s) in Entra.");
  });

  it("a membership the bot did not make, in a group no rule names, is left alone (not the bot's to remove)", async () => {
    const foreign = "44444444-4444-4444-8444-444444444444";
    const app = [...stack.entra.state.applications.values()].find(
      (a) => a.tags.includes(`gitlab-project:${projects[0]}`) && a.tags.includes("gitlab-env:staging"),
    );
    const sp = [...stack.entra.state.servicePrincipals.values()].find((s) => s.appId === app?.appId);
    if (!sp) throw new Error("no service principal");
    stack.entra.state.groups.set(foreign, {
      id: foreign,
      displayName: "someone-elses-group",
      description: null,
      members: new Set([sp.id]),
    });
    stack.entra.stats.reset();
    const r = await run(["diff", file], botEnv(stack));
    expect(r.out).toContain("0 would change; 0 change(s) in Entra.");
    expect(r.out).toMatch(/note: team\/one staging: observe groupMembership 44444444-[^\n]*left alone/);
    expect(stack.entra.stats.writes()).toBe(0);
    expect(stack.entra.state.groups.get(foreign)?.members.has(sp.id)).toBe(true);
    stack.entra.state.groups.delete(foreign);
  });

  it("a rule that now binds protected refs: the sub-claim change and the re-subjected credentials, nothing written", async () => {
    const bound = join(dir, "bound.yaml");
    const next = e2ePolicyYaml()
      .replace(`groups: ["${STAGING_GROUP}"]`, "groups: []")
      .replace("    allowUnprotectedRefs: true\n", "");
    expect(next).not.toContain("allowUnprotectedRefs");
    writeFileSync(bound, next);
    stack.entra.stats.reset();
    stack.gitlab.stats.reset();
    const r = await run(["diff", bound], botEnv(stack));
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      "  ~ GitLab ci_id_token_sub_claim_components: [project_path, ref_type, ref] -> [project_path, ref_type, ref, ref_protected]",
    );
    expect(r.out).toMatch(
      /~ update federatedIdentityCredential \S+ \(project_path:team\/one:ref_type:branch:ref:main -> project_path:team\/one:ref_type:branch:ref:main:ref_protected:true\)/,
    );
    expect(stack.entra.stats.writes()).toBe(0);
    expect(stack.gitlab.stats.requests).toBe(0);
  });

  it("a policy file with mistakes is named, exit 2", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "environments:\n  staging:\n    refs: []\n    groups: ['sg-{team}']\n");
    const r = await run(["diff", bad], botEnv(stack));
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/unknown placeholder \{team\}/);
    expect(r.out).toMatch(/list at least one ref/);
  });
});

describe("npm run policy -- explain", () => {
  it("prints the matching rule and, per environment, refs, subjects, resolved groups and who may onboard it", async () => {
    const file = join(dir, "sandbox.yaml");
    writeFileSync(file, sandboxPolicyYaml());
    stack.entra.stats.reset();
    const r = await run(["explain", "payments/api"], botEnv(stack, { POLICY_FILE: file }));
    expect(r.code).toBe(0);
    expect(r.out).toContain("Rule: payments (rules[0], match: payments/**)");
    expect(r.out).toContain("ID token subject: project_path, ref_type, ref, ref_protected");
    expect(r.out).toContain(
      `groups: sg-{top}-{environment} -> "sg-payments-production" -> ${SANDBOX.teamGroups["sg-payments-production"]}`,
    );
    expect(r.out).toMatch(
      /production {2}\[privileged\][^\n]*\n[^\n]*\n[^\n]*\n[^\n]*\n {6}project_path:payments\/api:ref_type:branch:ref:main:ref_protected:true\n {4}who may onboard it: Maintainer or higher with \/entra onboard production, then \/entra approve production by one of: payments\/leads/,
    );
    expect(r.out).toContain("project_path:payments/api:ref_type:branch:ref:develop:ref_protected:false");
    expect(r.out).toContain(
      "who may onboard it: Developer or higher with /entra onboard staging; automatically on project creation",
    );
    expect(stack.entra.stats.writes()).toBe(0);
  });

  it("with --project-id: the layout the registry recorded as established in GitLab, as status and diff read it", async () => {
    const file = join(dir, "sandbox.yaml");
    writeFileSync(file, sandboxPolicyYaml());
    const id = projects[0] as number;
    stack.gitlab.stats.reset();
    const r = await run(
      ["explain", "team/one", "--project-id", String(id)],
      botEnv(stack, { POLICY_FILE: file }),
    );
    expect(r.code).toBe(0);
    // Onboarded under the test policy (no privileged rule): the sandbox policy's default rule would add
    // ref_protected, which the next onboarding asks GitLab for.
    expect(r.out).toContain(
      `Established in GitLab for project ${id}: project_path, ref_type, ref; the next onboarding asks GitLab for project_path, ref_type, ref, ref_protected`,
    );
    expect(r.out).toContain(`project_path:team/one:ref_type:branch:ref:main:ref_protected:true`);
    expect(stack.gitlab.stats.requests).toBe(0);
  });

  it("offline, for a project no rule matches: the default rule, templates unresolved, project_id placeholders", async () => {
    const policy = parsePolicy(
      sandboxPolicyYaml().replace(
        "subClaimComponents: [project_path, ref_type, ref]",
        "subClaimComponents: [project_id, ref_type, ref]",
      ),
    );
    const text = await explainProject({
      policy,
      projectPath: "dave/side-project",
      issuer: "https://gitlab.example.com",
    });
    expect(text).toContain("Rule: default (the top-level environments: no entry of rules: matches)");
    expect(text).toContain("project_id:<project id>:ref_type:branch:ref:main:ref_protected:true");
    expect(text).toContain("not on project creation (privileged)");
    expect(text).toContain("then /entra approve production by one of: alice");
  });
});
