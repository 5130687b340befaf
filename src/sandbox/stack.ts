import { randomUUID } from "node:crypto";
import type { Config } from "../config/env.ts";
import { loadConfig } from "../config/env.ts";
import { type Policy, parsePolicy } from "../config/policy.ts";
import type { Logger } from "../logging.ts";
import { type Service, startService } from "../service.ts";
import { type EntraSimulator, startEntraSimulator } from "./entra-sim.ts";
import { createGitLabDriver, type GitLabDriver } from "./gitlab-driver.ts";
import { type GitLabSimulator, startGitLabSimulator } from "./gitlab-sim.ts";
import { trustSandboxCa } from "./tls.ts";

/** Fixed identities of the sandbox world, so the README and the tour can name them. */
export const SANDBOX = {
  tenantId: "6f1c3b2a-0d4e-4c5b-9a8f-7e6d5c4b3a21",
  botClientId: "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9",
  productionGroup: "11111111-1111-4111-8111-111111111111",
  stagingGroup: "22222222-2222-4222-8222-222222222222",
  /** Team groups, found by the policy's display-name template sg-{top}-{environment}. */
  teamGroups: {
    "sg-payments-staging": "33333333-3333-4333-8333-333333333301",
    "sg-payments-production": "33333333-3333-4333-8333-333333333302",
    "sg-shop-staging": "33333333-3333-4333-8333-333333333303",
    "sg-shop-production": "33333333-3333-4333-8333-333333333304",
  },
  /** The GitLab group whose members approve payments' production. */
  approverGroup: "payments/leads",
  users: {
    bot: { id: 99, username: "entra-bot", name: "Entra bot" },
    alice: { id: 2, username: "alice", name: "Alice (maintainer)" },
    dave: { id: 3, username: "dave", name: "Dave (developer)" },
    rita: { id: 4, username: "rita", name: "Rita (reporter)" },
    erin: { id: 5, username: "erin", name: "Erin (payments lead)" },
  },
} as const;

/**
 * Sandbox policy: two teams (payments, shop) whose projects get identities in their own groups through one
 * template; production privileged (approvers, protected refs); a safe staging onboarded automatically; every
 * other project (a personal one, say) gets the shared staging only, and production never by creating it.
 */
export function sandboxPolicyYaml(): string {
  return `# Sandbox policy: team rules with a group template; production privileged everywhere.
gitlab:
  subClaimComponents: [project_path, ref_type, ref]
  audience: api://AzureADTokenExchange
scope:
  include: ["**"]
  exclude: ["sandbox-excluded/**"]
# production is privileged, so creating a project never grants it: it is skipped (the bot warns at start-up)
# and the onboarding issue says how to request it. Policies written before privileged environments look so.
onProjectCreate:
  environments: [staging, production]
  openIssue: true
  setCiVariables: true
# The default rule: projects no rule below matches (personal projects, other teams).
environments:
  production:
    refs: ["branch:main"]
    groups: ["${SANDBOX.productionGroup}"]
    minAccessLevel: maintainer
    approvers: ["alice"]
  staging:
    refs: ["branch:main", "branch:develop"]
    groups: ["${SANDBOX.stagingGroup}"]
    minAccessLevel: developer
    onFirstDeployment: true
  "review/*":
    refs: ["branch:develop"]
    minAccessLevel: developer
    onFirstDeployment: true
rules:
  - name: payments
    match: ["payments/**"]
    onProjectCreate: { environments: [staging] }
    environments:
      staging:
        refs: ["branch:main", "branch:develop"]
        groups: ["sg-{top}-{environment}"]
        minAccessLevel: developer
        onFirstDeployment: true
      production:
        refs: ["branch:main"]
        groups: ["sg-{top}-{environment}"]
        minAccessLevel: maintainer
        approvers: ["${SANDBOX.approverGroup}"]
  - name: shop
    match: ["shop/**"]
    onProjectCreate: { environments: [staging] }
    environments:
      staging:
        refs: ["branch:main"]
        groups: ["sg-{top}-{environment}"]
        minAccessLevel: developer
      production:
        refs: ["branch:main"]
        groups: ["sg-{top}-{environment}"]
        minAccessLevel: maintainer
        approvers: ["alice"]
`;
}

export interface SandboxStack {
  entra: EntraSimulator;
  gitlab: GitLabSimulator;
  service: Service;
  config: Config;
  policy: Policy;
  driver: GitLabDriver;
  secrets: {
    webhook: string;
    gitlabToken: string;
    azureClientSecret: string;
    adminToken: string;
    viewerToken: string;
  };
  close(): Promise<void>;
}

export interface SandboxOptions {
  redisUrl: string;
  queuePrefix: string;
  logger: Logger;
  port?: number;
  policyYaml?: string;
  /** Extra environment variables (LOG_LEVEL, WORKER_CONCURRENCY, DRIFT_INTERVAL_SECONDS...). */
  env?: Record<string, string>;
  /** Start the api + worker in this process (default); false = simulators only. */
  startService?: boolean;
}

/**
 * The whole system against the built-in simulators: Entra (login + Graph) and GitLab (API + OIDC issuer),
 * both HTTPS with the sandbox CA, and the bot configured exactly as an operator would, through env vars.
 */
export async function startSandboxStack(opts: SandboxOptions): Promise<SandboxStack> {
  trustSandboxCa();
  const secrets = {
    webhook: `sandbox-webhook-${randomUUID()}`,
    gitlabToken: `glpat-sandbox-${randomUUID()}`,
    azureClientSecret: `sandbox-client-secret-${randomUUID()}`,
    adminToken: `sandbox-admin-${randomUUID().slice(0, 18)}`,
    viewerToken: `sandbox-viewer-${randomUUID().slice(0, 18)}`,
  };
  const entra = await startEntraSimulator({
    tenantId: SANDBOX.tenantId,
    bot: { clientId: SANDBOX.botClientId, clientSecret: secrets.azureClientSecret },
    groups: [
      { id: SANDBOX.productionGroup, displayName: "azure-production-deployers" },
      { id: SANDBOX.stagingGroup, displayName: "azure-staging-deployers" },
      ...Object.entries(SANDBOX.teamGroups).map(([displayName, id]) => ({ id, displayName })),
    ],
  });
  const { bot, alice, dave, rita, erin } = SANDBOX.users;
  const gitlab = await startGitLabSimulator({
    token: secrets.gitlabToken,
    botUser: bot,
    users: [alice, dave, rita, erin],
  });
  gitlab.addGroup(SANDBOX.approverGroup, { [erin.id]: 30 });
  const policyYaml = opts.policyYaml ?? sandboxPolicyYaml();
  const policy = parsePolicy(policyYaml, "sandbox policy");
  const config = loadConfig(
    {
      PORT: String(opts.port ?? 0),
      HOST: "127.0.0.1",
      REDIS_URL: opts.redisUrl,
      QUEUE_PREFIX: opts.queuePrefix,
      POLICY_FILE: "(sandbox policy)",
      LOG_LEVEL: "info",
      GITLAB_URL: gitlab.url,
      GITLAB_TOKEN: secrets.gitlabToken,
      GITLAB_WEBHOOK_SECRETS: secrets.webhook,
      AZURE_TENANT_ID: SANDBOX.tenantId,
      AZURE_CLIENT_ID: SANDBOX.botClientId,
      AZURE_CLIENT_SECRET: secrets.azureClientSecret,
      AZURE_AUTHORITY_HOST: entra.url,
      GRAPH_BASE_URL: entra.url,
      ADMIN_TOKEN: secrets.adminToken,
      ADMIN_VIEWER_TOKEN: secrets.viewerToken,
      DRIFT_INTERVAL_SECONDS: "0",
      ...opts.env,
    },
    "all",
  );
  const service =
    opts.startService === false ? undefined : await startService({ config, policy, logger: opts.logger });
  const driver = createGitLabDriver({
    gitlab,
    botUrl: () => {
      if (!service?.url) throw new Error("the bot is not running in this process");
      return service.url;
    },
    secret: secrets.webhook,
  });
  return {
    entra,
    gitlab,
    service: service as Service,
    config,
    policy,
    driver,
    secrets,
    close: async () => {
      await service?.close();
      await gitlab.close();
      await entra.close();
    },
  };
}
