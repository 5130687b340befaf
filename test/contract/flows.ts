import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Job } from "bullmq";
import { expect } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX, sandboxPolicyYaml } from "../../src/sandbox/stack.ts";
import { onboardingIssues, openIssue } from "../helpers/e2e.ts";
import { settled } from "../helpers/stack.ts";
import { botEnv } from "../reliability/bot-process.ts";

/**
 * Representative end-to-end flows whose outgoing requests the contract test records: each returns once the bot
 * has finished (queues idle, child processes exited), so every request it made is in the simulators' logs.
 */
const { alice, dave } = SANDBOX.users;

export interface Flow {
  name: string;
  /** A policy other than the sandbox's, for this flow's own stack. */
  policyYaml?: string;
  run(stack: SandboxStack): Promise<void>;
}

async function onboarded(stack: SandboxStack, path: string) {
  const { project, delivery } = await stack.driver.createProject(path, {
    members: { [alice.id]: 40, [dave.id]: 30 },
  });
  expect(delivery.status).toBe(202);
  await settled(stack);
  return project;
}

function cli(script: string, stack: SandboxStack): Promise<{ code: number; out: string }> {
  const file = fileURLToPath(new URL(`../../src/cli/${script}`, import.meta.url));
  return new Promise((resolve) => {
    execFile(process.execPath, [file, "--sandbox-ca"], { env: botEnv(stack) }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

async function comment(stack: SandboxStack, projectId: number, iid: number, userId: number, text: string) {
  const { delivery } = await stack.driver.comment(projectId, iid, userId, text);
  expect(delivery.status).toBe(202);
  await settled(stack);
}

export const FLOWS: Flow[] = [
  {
    name: "onboarding on project_create (identities, CI variables, sub-claim setting, onboarding issue)",
    async run(stack) {
      const p = await onboarded(stack, "contract/onboard");
      expect(onboardingIssues(stack, p.id)).toHaveLength(1);
    },
  },
  {
    name: "onboarding with a project_id sub-claim policy (the bot sets ci_id_token_sub_claim_components)",
    policyYaml: sandboxPolicyYaml().replace(
      "subClaimComponents: [project_path, ref_type, ref]",
      "subClaimComponents: [project_id, ref_type, ref]",
    ),
    async run(stack) {
      const p = await onboarded(stack, "contract/ids");
      expect(stack.gitlab.project(p.id)?.subClaimComponents?.[0]).toBe("project_id");
    },
  },
  {
    name: "every slash command in the onboarding issue, then offboarding",
    async run(stack) {
      const p = await onboarded(stack, "contract/commands");
      const iid = onboardingIssues(stack, p.id)[0]?.iid ?? 0;
      for (const text of [
        "/entra help",
        "/entra status",
        "/entra plan staging",
        "/entra onboard staging",
        "/entra onbaord staging",
        `/entra doctor\niss: ${stack.gitlab.url}\nsub: project_path:contract/commands:ref_type:branch:ref:feature\naud: api://AzureADTokenExchange`,
        "/entra snippet azure-cli production",
        "/entra offboard staging",
      ]) {
        await comment(stack, p.id, iid, alice.id, text);
      }
      // An internal note is answered with an internal note.
      const { delivery } = await stack.driver.comment(p.id, iid, alice.id, "/entra status", {
        internal: true,
      });
      expect(delivery.status).toBe(202);
      await settled(stack);
    },
  },
  {
    name: "commands in merge-request comments (public and internal)",
    async run(stack) {
      const p = await onboarded(stack, "contract/merge-requests");
      const mr = stack.gitlab.addMergeRequest(p.id, "Add deploy job", dave.id);
      for (const internal of [false, true]) {
        const { delivery } = await stack.driver.commentOnMergeRequest(
          p.id,
          mr.iid,
          dave.id,
          "/entra status",
          {
            internal,
          },
        );
        expect(delivery.status).toBe(202);
        await settled(stack);
      }
      expect(mr.notes.filter((n) => n.authorId === stack.gitlab.botUser.id)).toHaveLength(2);
    },
  },
  {
    name: "a command in an issue a person opened (the bot answers there)",
    async run(stack) {
      const p = stack.gitlab.addProject({ path: "contract/fresh", members: { [alice.id]: 40 } });
      const issue = openIssue(stack, p.id, alice.id, "Azure please");
      await comment(stack, p.id, issue.iid, alice.id, "/entra onboard production");
    },
  },
  {
    name: "first deployment to a review environment",
    async run(stack) {
      const p = await onboarded(stack, "contract/deploy");
      expect((await stack.driver.deploy(p.id, "review/feature-x", { user: dave.id })).status).toBe(202);
      await settled(stack);
    },
  },
  {
    name: "project rename, transfer and group rename",
    async run(stack) {
      const p = await onboarded(stack, "contract-group/app");
      expect((await stack.driver.renameProject(p.id, "contract-group/app-v2")).status).toBe(202);
      await settled(stack);
      expect((await stack.driver.transferProject(p.id, "contract-other/app-v2")).status).toBe(202);
      await settled(stack);
      expect((await stack.driver.renameGroup("contract-other", "contract-renamed")).status).toBe(202);
      await settled(stack);
    },
  },
  {
    name: "project destroy",
    async run(stack) {
      const p = await onboarded(stack, "contract/destroyed");
      expect((await stack.driver.deleteProject(p.id)).status).toBe(202);
      await settled(stack);
    },
  },
  {
    name: "drift repair after changes behind the bot's back",
    async run(stack) {
      const p = await onboarded(stack, "contract/drift");
      const app = [...stack.entra.state.applications.values()].find(
        (a) => a.tags.includes(`gitlab-project:${p.id}`) && a.tags.includes("gitlab-env:production"),
      );
      if (app) app.fics.splice(0, app.fics.length);
      const project = stack.gitlab.project(p.id);
      if (project) project.variables = [];
      const queue = stack.service.queues.maintenance;
      const job: Job = await queue.add("drift-repair", {});
      await expect
        .poll(() => queue.getJobState(job.id as string), { timeout: 20_000, interval: 50 })
        .toBe("completed");
      await settled(stack);
    },
  },
  {
    name: "npm run registry:rebuild",
    async run(stack) {
      await onboarded(stack, "contract/rebuild");
      const r = await cli("registry-rebuild.ts", stack);
      expect(r.code, r.out).toBe(0);
    },
  },
  {
    name: "npm run preflight",
    async run(stack) {
      const r = await cli("preflight.ts", stack);
      expect(r.code, r.out).toBe(0);
    },
  },
];
