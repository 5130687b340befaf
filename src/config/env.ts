import { z } from "zod";
import { ConfigError, type ConfigProblem, problemsFromZod } from "./problems.ts";

export type Role = "api" | "worker" | "all";

const csv = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);

const httpsUrl = (what: string) =>
  z
    .url({ message: `must be an absolute URL` })
    .refine((u) => u.startsWith("https://"), `${what} must use https`)
    .transform((u) => u.replace(/\/+$/, ""));

/** A GitLab namespace full path (group, subgroup or user), as in `path_with_namespace` minus the project. */
const NAMESPACE_PATH = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*$/;
const SIGNING_TOKEN = /^whsec_[A-Za-z0-9+/=]+$/;

/** A secret or signing token that speaks only for projects under `namespace` (a group hook's). */
export interface NamespaceSecret {
  namespace: string;
  secret: string;
}

/**
 * `<namespace full path>=<secret>`, comma-separated; a namespace may appear several times (rotation). Every
 * malformed entry is reported, by position: an entry may hold a secret, so it is never echoed.
 */
const namespaceSecrets = (what: "secret" | "signing token") =>
  z.string().transform((raw, ctx) => {
    const out: NamespaceSecret[] = [];
    const problem = (message: string): void => {
      ctx.addIssue({ code: "custom", message });
    };
    for (const [i, entry] of raw.split(",").entries()) {
      const e = entry.trim();
      if (!e) continue;
      const n = i + 1;
      const eq = e.indexOf("=");
      const namespace = eq < 0 ? "" : e.slice(0, eq).trim();
      const secret = eq < 0 ? "" : e.slice(eq + 1).trim();
      if (eq < 0) problem(`entry ${n} has no "=": write <namespace full path>=<${what}>`);
      else if (!namespace)
        problem(`entry ${n} has an empty namespace: write <namespace full path>=<${what}>`);
      else if (!NAMESPACE_PATH.test(namespace)) {
        problem(
          `entry ${n}: "${namespace}" is not a namespace full path such as acme or acme/platform (no "/" at either end)`,
        );
      } else if (!secret) problem(`entry ${n} (${namespace}) has an empty ${what}`);
      else if (what === "signing token" && !SIGNING_TOKEN.test(secret)) {
        problem(`entry ${n} (${namespace}): the signing token must look like "whsec_<base64>"`);
      } else out.push({ namespace, secret });
    }
    return out;
  });

const guid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a GUID");

/** Environment variables, as documented in the README. Strings in, typed config out. */
const envSchema = z.object({
  ROLE: z.enum(["api", "worker", "all"]).default("all"),
  PORT: z.coerce
    .number({ message: "must be a whole number from 0 to 65535" })
    .int("must be a whole number from 0 to 65535")
    .min(0)
    .max(65535)
    .default(3000),
  HOST: z.string().default("0.0.0.0"),
  /**
   * Worker role only: serve /healthz, /readyz and /metrics on this port (Kubernetes probes, Prometheus). Unset:
   * the worker serves no HTTP, so several workers on one host need no ports. The api serves them on PORT.
   */
  WORKER_HTTP_PORT: z.coerce
    .number({ message: "must be a whole number from 0 to 65535" })
    .int("must be a whole number from 0 to 65535")
    .min(0)
    .max(65535)
    .optional(),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must start with redis:// or rediss://")
    .default("redis://127.0.0.1:6379"),
  QUEUE_PREFIX: z.string().min(1).default("geb"),
  /** Redis Sentinel: comma-separated host:port of the sentinels; REDIS_URL then gives credentials and db. */
  REDIS_SENTINELS: csv
    .refine((l) => l.every((h) => /^[^:\s]+:\d{1,5}$/.test(h)), "each sentinel must be host:port")
    .optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).default("mymaster"),
  POLICY_FILE: z.string().min(1).default("./policy.yaml"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /**
   * A Note Hook carries the note twice (`note`, `description`, up to 1,000,000 characters each) plus the issue's
   * description (up to 1,048,576): about 3 MB of ASCII, 12 MB of 4-byte UTF-8. 16 MiB leaves room for that.
   */
  BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(16 * 1024 * 1024),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(200).default(8),
  GITLAB_URL: httpsUrl("GITLAB_URL").optional(),
  GITLAB_TOKEN: z.string().min(1).optional(),
  GITLAB_WEBHOOK_SECRETS: csv.optional(),
  GITLAB_WEBHOOK_SIGNING_TOKENS: csv
    .refine(
      (l) => l.every((t) => /^whsec_[A-Za-z0-9+/=]+$/.test(t)),
      'each token must look like "whsec_<base64>"',
    )
    .optional(),
  GITLAB_GROUP_WEBHOOK_SECRETS: namespaceSecrets("secret").optional(),
  GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: namespaceSecrets("signing token").optional(),
  /**
   * Deprecated: further X-Gitlab-Instance values naming GITLAB_URL's instance (GitLab's external URL when the
   * bot reaches it by another name). The header is not authenticated, so it never grants or refuses anything.
   */
  GITLAB_INSTANCES: csv.optional(),
  /** The service's public origin (what browsers put in Origin); admin writes must come from it. */
  PUBLIC_URL: z
    .url({ message: "must be an absolute URL such as https://entra-bot.example.com" })
    .refine((u) => /^https?:\/\//.test(u), "must use https (or http on a private network)")
    .transform((u) => new URL(u).origin)
    .optional(),
  GITLAB_OIDC_ISSUER: z
    .url({ message: "must be an absolute URL" })
    .refine((u) => u === u.trim(), "must not have leading or trailing whitespace")
    .optional(),
  AZURE_TENANT_ID: guid.optional(),
  AZURE_CLIENT_ID: guid.optional(),
  AZURE_CLIENT_SECRET: z.string().min(1).optional(),
  AZURE_CLIENT_CERTIFICATE_PATH: z.string().min(1).optional(),
  AZURE_FEDERATED_TOKEN_FILE: z.string().min(1).optional(),
  AZURE_CREDENTIAL: z
    .enum(["auto", "secret", "certificate", "managed-identity", "workload-identity"])
    .default("auto"),
  AZURE_AUTHORITY_HOST: httpsUrl("AZURE_AUTHORITY_HOST").default("https://login.microsoftonline.com"),
  GRAPH_BASE_URL: httpsUrl("GRAPH_BASE_URL").default("https://graph.microsoft.com"),
  ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  ADMIN_VIEWER_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  /**
   * Client-side pacing of Graph writes, shared by all workers through Redis. Entra allows about 3,000 writes
   * per 150 s per app and tenant (20/s); pacing below that avoids 429s instead of reacting to them. 0 = off.
   */
  GRAPH_WRITES_PER_SECOND: z.coerce
    .number({ message: "must be a number (0 disables pacing)" })
    .min(0)
    .default(15),
  /**
   * How many Graph reads the shared budget counts as one write, for drift's bulk reads (a $batch of 20 reads
   * takes 20 / this tokens). Entra's per-app budget is 3,500 (under 50 users), 5,000 or 8,000 (over 500) resource
   * units per 10 s, a read with $select costing about 1, against 3,000 writes per 150 s: about 17, 25 or 40
   * reads per write. 20 keeps sweep reads plus paced writes under the smallest tenant's budget.
   */
  GRAPH_READS_PER_WRITE: z.coerce.number({ message: "must be a number" }).min(1).max(1000).default(20),
  DRIFT_INTERVAL_SECONDS: z.coerce
    .number({ message: "must be a number of seconds (0 disables)" })
    .int()
    .min(0)
    .default(3600),
  /**
   * bulk: drift reads GitLab paths from paged project listings and Entra through one app listing plus $batch,
   * in resumable chunks (workers/drift-sweep.ts). per-project: one project after another with its own reads
   * (the original loop, kept as the benchmark baseline and as a fallback).
   */
  DRIFT_SWEEP_MODE: z
    .enum(["bulk", "per-project"], { message: 'must be "bulk" or "per-project"' })
    .default("bulk"),
  /** Projects per drift chunk job: a killed worker redoes at most one chunk. */
  DRIFT_CHUNK_SIZE: z.coerce
    .number({ message: "must be a number of projects" })
    .int()
    .min(1)
    .max(10_000)
    .default(500),
  /**
   * Entra replication (reference/entra.md §9): how long after the bot created an object an answer saying it
   * does not exist is still taken for replication and waited out (in the step, then across job attempts), and
   * the first pause inside a step (doubling, at most 15 s). Tests shorten the pause.
   */
  ENTRA_REPLICATION_WAIT_SECONDS: z.coerce
    .number({ message: "must be a number of seconds" })
    .int()
    .min(1)
    .default(300),
  ENTRA_REPLICATION_RETRY_MS: z.coerce
    .number({ message: "must be a number of milliseconds" })
    .int()
    .min(1)
    .default(1_000),
  /** First retry delay of a failed job (doubling, jittered). Tests shorten it; production keeps 2 s. */
  JOB_BACKOFF_MS: z.coerce
    .number({ message: "must be a number of milliseconds" })
    .int()
    .min(1)
    .default(2_000),
  /**
   * How often a worker looks for jobs whose worker died (stalled-job recovery) and how long a job's lock
   * lives without renewal. BullMQ's defaults (30 s each); tests of a SIGKILLed worker shorten them.
   */
  WORKER_STALLED_INTERVAL_MS: z.coerce
    .number({ message: "must be a number of milliseconds" })
    .int()
    .min(100)
    .default(30_000),
  WORKER_LOCK_DURATION_MS: z.coerce
    .number({ message: "must be a number of milliseconds" })
    .int()
    .min(100)
    .default(30_000),
  /** Slow clients (slow-loris): headers must arrive within this, the whole request within the next. */
  HTTP_HEADERS_TIMEOUT_MS: z.coerce
    .number({ message: "must be a number of milliseconds" })
    .int()
    .min(100)
    .default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: z.coerce
    .number({ message: "must be a number of milliseconds" })
    .int()
    .min(100)
    .default(15_000),
});

const EXAMPLES: Record<string, string> = {
  PORT: "3000",
  REDIS_URL: "redis://127.0.0.1:6379",
  GITLAB_URL: "https://gitlab.example.com",
  GITLAB_TOKEN: "glpat-... (a bot user's token with the api scope)",
  GITLAB_WEBHOOK_SECRETS: "s3cret-current,s3cret-previous",
  GITLAB_WEBHOOK_SIGNING_TOKENS: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  GITLAB_GROUP_WEBHOOK_SECRETS: "acme=s3cret-acme,acme/payments=s3cret-payments",
  GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: "acme=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  PUBLIC_URL: "https://entra-bot.example.com",
  GITLAB_OIDC_ISSUER: "https://gitlab.example.com",
  AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000000",
  AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com",
  GRAPH_BASE_URL: "https://graph.microsoft.com",
  ADMIN_TOKEN: "a long random string (openssl rand -hex 24)",
  LOG_LEVEL: "info",
  BODY_LIMIT_BYTES: "16777216",
};

export type Env = z.infer<typeof envSchema>;

export interface AzureCredentialConfig {
  kind: "secret" | "certificate" | "managed-identity" | "workload-identity";
  tenantId: string;
  clientId: string;
  clientSecret?: string;
  certificatePath?: string;
  federatedTokenFile?: string;
}

export interface Config {
  role: Role;
  port: number;
  host: string;
  redisUrl: string;
  /** Set when REDIS_SENTINELS is: connect through Sentinel to the primary named REDIS_SENTINEL_NAME. */
  redisSentinel?: { sentinels: Array<{ host: string; port: number }>; name: string };
  queuePrefix: string;
  policyFile: string;
  logLevel: Env["LOG_LEVEL"];
  bodyLimitBytes: number;
  workerConcurrency: number;
  /** WORKER_HTTP_PORT: where a worker-only process serves health and metrics; undefined = no HTTP. */
  workerHttpPort?: number;
  driftIntervalSeconds: number;
  drift: { mode: "bulk" | "per-project"; chunkSize: number; readsPerWrite: number };
  graphWritesPerSecond: number;
  gitlab: {
    url: string | undefined;
    token: string | undefined;
    /** Instance-wide (the system hook): may speak for any project. */
    webhookSecrets: string[];
    signingTokens: string[];
    /** Group hooks: each speaks only for projects under its namespace. */
    groupWebhookSecrets?: NamespaceSecret[];
    groupSigningTokens?: NamespaceSecret[];
    /** Deprecated aliases of GITLAB_URL for X-Gitlab-Instance (see the README). */
    instances: string[];
    /** Exactly as GitLab writes `iss`; never normalised (Entra compares byte for byte). */
    oidcIssuer: string | undefined;
  };
  azure: {
    credential: AzureCredentialConfig | undefined;
    authorityHost: string;
    graphBaseUrl: string;
  };
  admin: { token: string | undefined; viewerToken: string | undefined };
  /** PUBLIC_URL's origin: the Origin admin writes must carry; absent = the request's own host. */
  publicOrigin?: string;
  /** Queue timing knobs; absent = the production defaults (2 s backoff, BullMQ's 30 s stall checks). */
  jobs?: { backoffMs: number; stalledIntervalMs: number; lockDurationMs: number };
  /** Waiting out Entra's replication after a create; absent = 5 minutes, first pause 1 s. */
  replication?: { windowMs: number; baseMs: number };
  /** Server timeouts against slow clients; absent = 10 s for headers, 15 s for the whole request. */
  http?: { headersTimeoutMs: number; requestTimeoutMs: number };
}

/**
 * Parses the process environment. Throws ConfigError with one problem per bad or missing variable;
 * which variables are required depends on the role (the api needs webhook secrets, the worker needs
 * GitLab and Azure credentials).
 */
export function loadConfig(env: NodeJS.ProcessEnv, roleOverride?: Role): Config {
  // Empty strings are treated as unset: docker-compose passes `FOO=` for unset variables.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = envSchema.safeParse(cleaned);
  const reused = reusedSecretProblems(cleaned);
  if (!parsed.success) {
    throw new ConfigError([...problemsFromZod(parsed.error, "", undefined, EXAMPLES), ...reused]);
  }
  const e = parsed.data;
  const role = roleOverride ?? e.ROLE;
  const problems: ConfigProblem[] = [...reused];
  const need = (name: keyof typeof EXAMPLES, value: unknown, why: string) => {
    if (value === undefined) problems.push({ name, problem: `is required ${why}`, example: EXAMPLES[name] });
  };

  if (
    role !== "worker" &&
    !e.GITLAB_WEBHOOK_SECRETS?.length &&
    !e.GITLAB_WEBHOOK_SIGNING_TOKENS?.length &&
    !e.GITLAB_GROUP_WEBHOOK_SECRETS?.length &&
    !e.GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS?.length
  ) {
    problems.push({
      name: "GITLAB_WEBHOOK_SECRETS",
      problem:
        "is required (or GITLAB_WEBHOOK_SIGNING_TOKENS, GITLAB_GROUP_WEBHOOK_SECRETS, GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS): the api refuses to accept unauthenticated webhooks",
      example: EXAMPLES.GITLAB_WEBHOOK_SECRETS,
    });
  }
  let credential: AzureCredentialConfig | undefined;
  if (role !== "api") {
    need("GITLAB_URL", e.GITLAB_URL, "for the worker (GitLab API base URL)");
    need("GITLAB_TOKEN", e.GITLAB_TOKEN, "for the worker (comments, issues, CI variables)");
    need("AZURE_TENANT_ID", e.AZURE_TENANT_ID, "for the worker (the Entra tenant to manage)");
    need("AZURE_CLIENT_ID", e.AZURE_CLIENT_ID, "for the worker (the bot's own app registration)");
    if (e.AZURE_TENANT_ID && e.AZURE_CLIENT_ID) {
      let kind = e.AZURE_CREDENTIAL;
      if (kind === "auto") {
        kind = e.AZURE_CLIENT_CERTIFICATE_PATH
          ? "certificate"
          : e.AZURE_CLIENT_SECRET
            ? "secret"
            : e.AZURE_FEDERATED_TOKEN_FILE
              ? "workload-identity"
              : "managed-identity";
      }
      if (kind === "secret" && !e.AZURE_CLIENT_SECRET) {
        problems.push({ name: "AZURE_CLIENT_SECRET", problem: "is required when AZURE_CREDENTIAL=secret" });
      }
      if (kind === "certificate" && !e.AZURE_CLIENT_CERTIFICATE_PATH) {
        problems.push({
          name: "AZURE_CLIENT_CERTIFICATE_PATH",
          problem: "is required when AZURE_CREDENTIAL=certificate",
          example: "/run/secrets/bot.pem (PEM with the private key and certificate)",
        });
      }
      if (kind === "workload-identity" && !e.AZURE_FEDERATED_TOKEN_FILE) {
        problems.push({
          name: "AZURE_FEDERATED_TOKEN_FILE",
          problem: "is required when AZURE_CREDENTIAL=workload-identity",
        });
      }
      credential = {
        kind,
        tenantId: e.AZURE_TENANT_ID,
        clientId: e.AZURE_CLIENT_ID,
        ...(e.AZURE_CLIENT_SECRET ? { clientSecret: e.AZURE_CLIENT_SECRET } : {}),
        ...(e.AZURE_CLIENT_CERTIFICATE_PATH ? { certificatePath: e.AZURE_CLIENT_CERTIFICATE_PATH } : {}),
        ...(e.AZURE_FEDERATED_TOKEN_FILE ? { federatedTokenFile: e.AZURE_FEDERATED_TOKEN_FILE } : {}),
      };
    }
  }
  if (e.ADMIN_TOKEN && e.ADMIN_TOKEN === e.ADMIN_VIEWER_TOKEN) {
    problems.push({
      name: "ADMIN_VIEWER_TOKEN",
      problem: "must differ from ADMIN_TOKEN: a viewer holding the admin token could retry and pause jobs",
    });
  }
  if (problems.length) throw new ConfigError(problems);

  return {
    role,
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    ...(e.REDIS_SENTINELS?.length
      ? {
          redisSentinel: {
            name: e.REDIS_SENTINEL_NAME,
            sentinels: e.REDIS_SENTINELS.map((h) => {
              const i = h.lastIndexOf(":");
              return { host: h.slice(0, i), port: Number(h.slice(i + 1)) };
            }),
          },
        }
      : {}),
    queuePrefix: e.QUEUE_PREFIX,
    policyFile: e.POLICY_FILE,
    logLevel: e.LOG_LEVEL,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    workerConcurrency: e.WORKER_CONCURRENCY,
    ...(e.WORKER_HTTP_PORT !== undefined ? { workerHttpPort: e.WORKER_HTTP_PORT } : {}),
    driftIntervalSeconds: e.DRIFT_INTERVAL_SECONDS,
    drift: {
      mode: e.DRIFT_SWEEP_MODE,
      chunkSize: e.DRIFT_CHUNK_SIZE,
      readsPerWrite: e.GRAPH_READS_PER_WRITE,
    },
    graphWritesPerSecond: e.GRAPH_WRITES_PER_SECOND,
    gitlab: {
      url: e.GITLAB_URL,
      token: e.GITLAB_TOKEN,
      webhookSecrets: e.GITLAB_WEBHOOK_SECRETS ?? [],
      signingTokens: e.GITLAB_WEBHOOK_SIGNING_TOKENS ?? [],
      groupWebhookSecrets: e.GITLAB_GROUP_WEBHOOK_SECRETS ?? [],
      groupSigningTokens: e.GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS ?? [],
      instances: e.GITLAB_INSTANCES ?? [],
      oidcIssuer: e.GITLAB_OIDC_ISSUER ?? e.GITLAB_URL,
    },
    azure: { credential, authorityHost: e.AZURE_AUTHORITY_HOST, graphBaseUrl: e.GRAPH_BASE_URL },
    admin: { token: e.ADMIN_TOKEN, viewerToken: e.ADMIN_VIEWER_TOKEN },
    replication: { windowMs: e.ENTRA_REPLICATION_WAIT_SECONDS * 1000, baseMs: e.ENTRA_REPLICATION_RETRY_MS },
    ...(e.PUBLIC_URL ? { publicOrigin: e.PUBLIC_URL } : {}),
    jobs: {
      backoffMs: e.JOB_BACKOFF_MS,
      stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
      lockDurationMs: e.WORKER_LOCK_DURATION_MS,
    },
    http: { headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS, requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS },
  };
}

/**
 * A secret must identify exactly one source (the instance, or one namespace): a value configured for two
 * sources would let either speak as the other. Read leniently from the raw variables, so that this is
 * reported together with format problems; secrets are never echoed.
 */
function reusedSecretProblems(env: Record<string, string | undefined>): ConfigProblem[] {
  const owners = new Map<string, Set<string>>();
  const variables = new Map<string, Set<string>>();
  const add = (value: string, source: string, variable: string) => {
    if (!value) return;
    owners.set(value, (owners.get(value) ?? new Set()).add(source));
    variables.set(value, (variables.get(value) ?? new Set()).add(variable));
  };
  for (const variable of ["GITLAB_WEBHOOK_SECRETS", "GITLAB_WEBHOOK_SIGNING_TOKENS"]) {
    for (const v of (env[variable] ?? "").split(",")) add(v.trim(), "the instance", variable);
  }
  for (const variable of ["GITLAB_GROUP_WEBHOOK_SECRETS", "GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS"]) {
    for (const entry of (env[variable] ?? "").split(",")) {
      const eq = entry.indexOf("=");
      if (eq < 0) continue;
      const namespace = entry.slice(0, eq).trim().toLowerCase();
      if (namespace) add(entry.slice(eq + 1).trim(), `namespace ${namespace}`, variable);
    }
  }
  const problems: ConfigProblem[] = [];
  for (const [value, sources] of owners) {
    if (sources.size < 2) continue;
    problems.push({
      name: [...(variables.get(value) ?? [])].join(" / "),
      problem: `one secret is configured for ${[...sources].sort().join(" and ")}: a secret must identify exactly one source (give each group hook its own, and the system hook its own)`,
    });
  }
  return problems;
}
