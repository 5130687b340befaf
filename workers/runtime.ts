import type { Redis } from "ioredis";
import type { Config } from "../src/config/env.ts";
import type { Policy } from "../src/config/policy.ts";
import { createTokenCredential } from "../src/entra/credential.ts";
import type { GraphApi } from "../src/entra/graph.ts";
import { createGraphApi } from "../src/entra/graph-client.ts";
import { createRedisPacer, type GraphPacer } from "../src/entra/pacer.ts";
import { BotServicePrincipal } from "../src/entra/self.ts";
import { createGitLabApi, type GitLabApi } from "../src/gitlab/api.ts";
import { isGitLabError } from "../src/gitlab/errors.ts";
import type { Trigger } from "../src/gitlab/intents.ts";
import { metrics } from "../src/http/metrics.ts";
import type { Logger } from "../src/logging.ts";
import { AuditLog } from "../src/onboarding/audit.ts";
import { createEntraWriteAudit } from "../src/onboarding/entra-audit.ts";
import type { OnboardingDeps } from "../src/onboarding/onboard.ts";
import { resolveIssuer } from "../src/onboarding/planner.ts";
import { Registry } from "../src/onboarding/registry.ts";
import { GroupResolver } from "../src/policy/group-resolver.ts";
import type { Queues } from "../src/queue/queues.ts";

/** Everything the job processors share, built once per worker process. */
export interface WorkerRuntime {
  config: Config;
  policy: Policy;
  logger: Logger;
  redis: Redis;
  queues: Queues;
  graph: GraphApi;
  gitlab: GitLabApi;
  audit: AuditLog;
  registry: Registry;
  /** The bot's own service principal, resolved once per process (owner of everything it manages). */
  botSp: BotServicePrincipal;
  issuer: string;
  tenantId: string;
  /** Group templates -> ids, cached for the life of the worker. */
  groups: GroupResolver;
  /** The shared Graph budget (GRAPH_WRITES_PER_SECOND > 0): writes take from it, drift's bulk reads its spare half. */
  graphPacer?: GraphPacer;
  /**
   * Onboarding dependencies for one job: every Entra write it makes is audited under `trigger` (required, so
   * no Entra work can run unaudited). `where` labels ownership collisions in geb_ownership_collisions_total.
   */
  onboarding(
    log: ((line: string) => void) | undefined,
    where: CollisionWhere,
    trigger: Trigger,
  ): OnboardingDeps;
}

export type CollisionWhere = "onboarding" | "drift" | "offboarding";

/** Collapses ids in Graph paths so metric labels stay low-cardinality. */
export function graphOperation(method: string, path: string): string {
  const shape = path
    .replace(/^\/(v1\.0|beta)/, "")
    .split("?")[0]
    ?.replace(/\([^)]*\)/g, "(…)")
    .replace(/\/[0-9a-f]{8}-[0-9a-f-]{27,}/gi, "/{id}")
    .replace(/\/\{id\}\/federatedIdentityCredentials\/[^/]+/, "/{id}/federatedIdentityCredentials/{name}");
  return `${method} ${shape ?? path}`;
}

/** Counts every GitLab API call by method and outcome, without touching the client itself. */
export function instrumentGitLab(api: GitLabApi): GitLabApi {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return async (...args: unknown[]) => {
        try {
          const out = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          metrics.gitlabRequestsTotal.inc({ operation: String(prop), status: "ok" });
          return out;
        } catch (err) {
          const status = isGitLabError(err) ? String(err.status ?? err.code) : "error";
          metrics.gitlabRequestsTotal.inc({ operation: String(prop), status });
          if (isGitLabError(err) && err.status === 429) metrics.throttledTotal.inc({ service: "gitlab" });
          throw err;
        }
      };
    },
  });
}

export function createWorkerRuntime(opts: {
  config: Config;
  policy: Policy;
  logger: Logger;
  redis: Redis;
  queues: Queues;
  /** Injected in tests that build their own clients; production builds them from config. */
  graph?: GraphApi;
  gitlab?: GitLabApi;
}): WorkerRuntime {
  const { config, policy, logger, redis, queues } = opts;
  const credential = config.azure.credential;
  if (!credential || !config.gitlab.url || !config.gitlab.token) {
    throw new Error(
      "worker runtime needs GitLab and Azure configuration (loadConfig checks this for the worker role)",
    );
  }
  const onRequest = (method: string, path: string, status: number) => {
    metrics.graphRequestsTotal.inc({ operation: graphOperation(method, path), status: String(status) });
    if (status === 429) metrics.throttledTotal.inc({ service: "graph" });
  };
  // One bucket for every worker process on this prefix: together they stay under the tenant's budget.
  const pacer =
    config.graphWritesPerSecond > 0
      ? createRedisPacer(redis, {
          key: `${config.queuePrefix}:graph-writes`,
          ratePerSecond: config.graphWritesPerSecond,
        })
      : undefined;
  const graph =
    opts.graph ??
    createGraphApi({
      graphBaseUrl: config.azure.graphBaseUrl,
      credential: createTokenCredential(config.azure),
      onRequest,
      ...(pacer ? { pacer } : {}),
    });
  const gitlab = instrumentGitLab(
    opts.gitlab ?? createGitLabApi({ url: config.gitlab.url, token: config.gitlab.token }),
  );
  const audit = new AuditLog(redis, { key: `${config.queuePrefix}:audit`, logger });
  const registry = new Registry(redis, config.queuePrefix);
  const botSp = new BotServicePrincipal(graph, credential.clientId);
  const issuer = resolveIssuer(policy, config);
  const groups = new GroupResolver(graph);
  return {
    config,
    policy,
    logger,
    redis,
    queues,
    graph,
    gitlab,
    audit,
    registry,
    botSp,
    issuer,
    tenantId: credential.tenantId,
    groups,
    ...(pacer ? { graphPacer: pacer } : {}),
    onboarding: (log, where, trigger) => ({
      graph,
      botSp,
      redis,
      keyPrefix: config.queuePrefix,
      policy,
      issuer,
      tenantId: credential.tenantId,
      groups,
      // The identity lease follows the job lock: a SIGKILLed worker frees both at about the same time.
      ...(config.jobs ? { lock: { leaseMs: config.jobs.lockDurationMs } } : {}),
      ...(config.replication ? { replication: config.replication } : {}),
      ...(log ? { log } : {}),
      onCollision: (c) => {
        metrics.ownershipCollisionsTotal.inc({ where });
        logger.warn(
          {
            project: c.projectId,
            environment: c.environment,
            app: c.objectId,
            owners: c.owners,
            pinned: c.pinned,
            where,
          },
          "ownership collision: an app tagged as the bot's identity is not owned by the bot alone; not used, not written to",
        );
      },
      // Drift records its findings (refusals, observations) once a day itself: here only its writes.
      audit: createEntraWriteAudit({
        audit,
        redis,
        keyPrefix: config.queuePrefix,
        trigger,
        findings: where !== "drift",
      }),
    }),
  };
}
