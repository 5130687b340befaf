import picomatch from "picomatch";
import { z } from "zod";
import { isGroupId, parseTemplate } from "../policy/templates.ts";

/** GitLab access levels, as numbers the members API returns. */
export const ACCESS_LEVELS = {
  guest: 10,
  reporter: 20,
  developer: 30,
  maintainer: 40,
  owner: 50,
} as const;
export type AccessLevelName = keyof typeof ACCESS_LEVELS;

export const SUB_CLAIM_HEADS = ["project_path", "project_id"] as const;
export const SUB_CLAIM_TAILS = [
  "ref_type",
  "ref",
  "deployment_tier",
  "environment_protected",
  "ref_protected",
] as const;
export type SubClaimComponent = (typeof SUB_CLAIM_HEADS)[number] | (typeof SUB_CLAIM_TAILS)[number];

/** `branch:main`, `tag:v1.2.3`. The ref part is taken verbatim (GitLab refs are case-sensitive). */
export const refRuleSchema = z
  .string()
  .regex(/^(branch|tag):\S.*$/, 'must be "branch:<name>" or "tag:<name>", e.g. "branch:main"')
  .refine((s) => !/[*?]/.test(s), {
    message: "wildcards are not allowed: Entra matches subjects exactly; list each ref",
  });

/** An Entra group object id, or a display-name template such as "sg-{namespace}-{environment}". */
export const groupRefSchema = z.string().superRefine((ref, ctx) => {
  if (isGroupId(ref)) return;
  for (const problem of parseTemplate(ref).problems) {
    ctx.addIssue({ code: "custom", message: `group "${ref}": ${problem}` });
  }
});

/** A GitLab username ("alice", "@alice") or a group full path ("payments/leads"). */
export const approverSchema = z
  .string()
  .regex(
    /^@?[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*$/,
    'must be a GitLab username ("alice") or a group full path ("payments/leads")',
  )
  .max(255);

/**
 * Days an identity outlives its environment once GitLab shows the environment stopped or deleted
 * (workers/environment-cleanup.ts); 0 = removed at the next cleanup.
 */
const retainDaysSchema = z
  .number({ message: "must be a whole number of days, e.g. 7" })
  .int("must be a whole number of days, e.g. 7")
  .min(0)
  .max(3650);
/** Used when neither retention.retainStoppedEnvironmentDays nor the top-level field is given. */
export const DEFAULT_RETAIN_STOPPED_ENVIRONMENT_DAYS = 7;

export const environmentPolicySchema = z
  .object({
    refs: z.array(refRuleSchema).min(1, 'list at least one ref, e.g. ["branch:main"]'),
    groups: z.array(groupRefSchema).default([]),
    minAccessLevel: z
      .enum(Object.keys(ACCESS_LEVELS) as [AccessLevelName, ...AccessLevelName[]])
      .default("maintainer"),
    onFirstDeployment: z.boolean().default(false),
    /** Optional GitLab deployment tier this rule also matches on first sight (production, staging, ...). */
    tier: z.enum(["production", "staging", "testing", "development", "other"]).optional(),
    /**
     * Never onboarded automatically, needs approvers' consent when listed, FICs bound to protected refs.
     * Default: true for an environment named production or of tier production.
     */
    privileged: z.boolean().optional(),
    /** Privileged only: onboard on project creation / first deployment anyway (a documented risk). */
    autoOnboard: z.boolean().default(false),
    /** Privileged only: an `/entra approve <env>` from one of these is required before onboarding. */
    approvers: z.array(approverSchema).min(1, "list at least one approver, or remove approvers:").optional(),
    /** Privileged only: onboard even where GitLab cannot bind the credential to protected refs (a risk). */
    allowUnprotectedRefs: z.boolean().default(false),
    /** This environment's own retainStoppedEnvironmentDays (see the policy's); absent = the policy's. */
    retainStoppedEnvironmentDays: retainDaysSchema.optional(),
  })
  .strict();
export type EnvironmentPolicy = z.infer<typeof environmentPolicySchema>;

export const subClaimComponentsSchema = z
  .array(z.enum([...SUB_CLAIM_HEADS, ...SUB_CLAIM_TAILS]))
  .min(1)
  .superRefine((list, ctx) => {
    const head = list[0];
    if (head !== "project_path" && head !== "project_id") {
      ctx.addIssue({ code: "custom", message: "the first component must be project_path or project_id" });
    }
    if (list.filter((c) => c === "project_path" || c === "project_id").length > 1) {
      ctx.addIssue({ code: "custom", message: "use project_path or project_id, not both" });
    }
    if (new Set(list).size !== list.length) {
      ctx.addIssue({ code: "custom", message: "components must not repeat" });
    }
    if (!list.includes("ref")) {
      ctx.addIssue({
        code: "custom",
        message: "include ref: without it every branch of the project could log in",
      });
    }
  });

const onProjectCreateSchema = z
  .object({
    environments: z.array(z.string().min(1)).default([]),
    openIssue: z.boolean().default(true),
    setCiVariables: z.boolean().default(true),
  })
  .strict();

const environmentsSchema = z.record(z.string().min(1), environmentPolicySchema);
/** Names that collide with Object.prototype in naive lookups (zod drops "__proto__" keys by itself). */
const RESERVED_KEYS = ["prototype", "constructor"];

/** One team's rules: the first rule whose match: fits a project's path_with_namespace applies to it. */
export const ruleSchema = z
  .object({
    /** A label for messages and `policy explain`; defaults to rules[<index>]. */
    name: z.string().min(1).max(100).optional(),
    match: z.array(z.string().min(1)).min(1, 'list at least one glob, e.g. ["payments/**"]'),
    /** Fields left out are taken from the top-level onProjectCreate. */
    onProjectCreate: onProjectCreateSchema.partial().optional(),
    environments: environmentsSchema,
  })
  .strict();
export type PolicyRule = z.infer<typeof ruleSchema>;

/**
 * The default `sub` layout: headed by the project id, which GitLab never reuses, so a rename, a transfer or a
 * new project at a freed path can never match another project's credentials. Used where GitLab accepts it
 * (feature-detected per project); where it does not, the credentials follow what GitLab really mints.
 */
export const DEFAULT_SUB_CLAIM_COMPONENTS: readonly SubClaimComponent[] = ["project_id", "ref_type", "ref"];
/** What GitLab puts in `sub` for a project that never set ci_id_token_sub_claim_components. */
export const GITLAB_DEFAULT_SUB_CLAIM_COMPONENTS: readonly SubClaimComponent[] = [
  "project_path",
  "ref_type",
  "ref",
];

const gitlabPolicySchema = z
  .object({
    issuer: z
      .url({ message: "must be an absolute https URL, e.g. https://gitlab.example.com" })
      .refine((u) => u.startsWith("https://"), "must use https: Entra only fetches keys over https")
      .refine((u) => u === u.trim(), "must not have leading or trailing whitespace")
      .optional(),
    subClaimComponents: subClaimComponentsSchema.optional(),
    audience: z.string().min(1).max(600).default("api://AzureADTokenExchange"),
  })
  .strict()
  .transform(({ subClaimComponents, ...rest }) => ({
    ...rest,
    subClaimComponents: subClaimComponents ?? [...DEFAULT_SUB_CLAIM_COMPONENTS],
    /**
     * Whether the policy file names the components. An explicit choice is honoured or refused; the default
     * falls back to what GitLab mints where it refuses project_id (see onboarding/subject-components.ts).
     */
    subClaimComponentsExplicit: subClaimComponents !== undefined,
  }));

export const policySchema = z
  .object({
    gitlab: gitlabPolicySchema.prefault({}),
    scope: z
      .object({
        include: z.array(z.string().min(1)).default(["**"]),
        exclude: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({ include: ["**"], exclude: [] }),
    onProjectCreate: onProjectCreateSchema.default({
      environments: [],
      openIssue: true,
      setCiVariables: true,
    }),
    /** The default rule: applies to projects no entry of rules: matches. */
    environments: environmentsSchema.default({}),
    /** Ordered; the first whose match: fits the project's path wins. */
    rules: z.array(ruleSchema).default([]),
    /** At most this many environments in one slash command. */
    maxEnvironmentsPerCommand: z.number().int().min(1).max(100).default(10),
    /** At most this many identities (app registrations) per project. */
    maxIdentitiesPerProject: z.number().int().min(1).max(1000).default(20),
    /** How long an `/entra approve <env>` stays valid (minutes). */
    approvalValidForMinutes: z.number().int().min(1).max(10_080).default(1440),
    /** The CI snippet the bot posts by default; `/entra snippet <variant>` shows another on demand. */
    snippet: z
      .object({
        variant: z
          .enum(["azure-cli", "terraform", "azure-sdk"], {
            message: 'must be "azure-cli", "terraform" or "azure-sdk"',
          })
          .default("azure-cli"),
      })
      .strict()
      .default({ variant: "azure-cli" }),
    /** Prefix of every display name and FIC name the bot creates; lets several installs share a tenant. */
    naming: z
      .object({
        prefix: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,19}$/, "lowercase letters, digits and dashes, max 20")
          .default("gitlab"),
      })
      .strict()
      .default({ prefix: "gitlab" }),
    /**
     * Identities whose project is gone (404, pending deletion) are retired, not deleted: federated credentials
     * and group memberships removed at once, the service principal disabled, the app kept for the audit trail
     * for this many days, then deleted by drift repair. 0: deleted at the next drift repair.
     */
    retention: z
      .object({
        disabledIdentityDays: z.number().int().min(0).max(3650).default(30),
        /**
         * Identities of environments GitLab shows stopped, or no longer lists, are removed after this many
         * days (default 7); an environment entry's own setting overrides it. See retainStoppedDays().
         */
        retainStoppedEnvironmentDays: retainDaysSchema.optional(),
      })
      .strict()
      .default({ disabledIdentityDays: 30 }),
    /** Accepted here too, with the same meaning as retention.retainStoppedEnvironmentDays. */
    retainStoppedEnvironmentDays: retainDaysSchema.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const nested = p.retention.retainStoppedEnvironmentDays;
    const top = p.retainStoppedEnvironmentDays;
    if (nested !== undefined && top !== undefined && nested !== top) {
      ctx.addIssue({
        code: "custom",
        path: ["retainStoppedEnvironmentDays"],
        message: `is ${top} here but ${nested} under retention: give it in one place (retention.retainStoppedEnvironmentDays), or the same value in both`,
      });
    }
    checkRule(ctx, [], p.environments, p.onProjectCreate.environments, ["onProjectCreate", "environments"]);
    p.rules.forEach((rule, i) => {
      checkRule(
        ctx,
        ["rules", i],
        rule.environments,
        rule.onProjectCreate?.environments ?? p.onProjectCreate.environments,
        rule.onProjectCreate?.environments
          ? ["rules", i, "onProjectCreate", "environments"]
          : ["onProjectCreate", "environments"],
        rule.onProjectCreate?.environments ? undefined : `rules[${i}] inherits it`,
      );
    });
  });
export type Policy = z.infer<typeof policySchema>;

/**
 * The policy-wide retainStoppedEnvironmentDays: retention's, else the top-level one (the schema refuses two
 * different values), else the default. An environment entry's own setting overrides it (policy/rules.ts).
 */
export function policyRetainStoppedDays(policy: Policy): number {
  return (
    policy.retention.retainStoppedEnvironmentDays ??
    policy.retainStoppedEnvironmentDays ??
    DEFAULT_RETAIN_STOPPED_ENVIRONMENT_DAYS
  );
}

/** Whether an environment is privileged: explicit, else named production or of tier production. */
export function isPrivilegedSetting(key: string, env: EnvironmentPolicy, name = key, tier?: string | null) {
  if (env.privileged !== undefined) return env.privileged;
  return (
    key.toLowerCase() === "production" ||
    name.toLowerCase() === "production" ||
    env.tier === "production" ||
    tier === "production"
  );
}

/** Every problem in one rule's environments; zod collects them all, so the operator fixes them in one go. */
function checkRule(
  ctx: z.RefinementCtx,
  at: (string | number)[],
  environments: Record<string, EnvironmentPolicy>,
  onCreate: readonly string[],
  onCreatePath: (string | number)[],
  inherited?: string,
): void {
  const keys = Object.keys(environments);
  for (const env of onCreate) {
    if (!keys.some((key) => key === env || picomatch.isMatch(env, key))) {
      ctx.addIssue({
        code: "custom",
        path: onCreatePath,
        message: `environment "${env}" has no rule under ${at.length ? `rules[${at[1]}].` : ""}environments:${inherited ? ` (${inherited}; give the rule its own onProjectCreate)` : ""}`,
      });
    }
  }
  for (const [key, env] of Object.entries(environments)) {
    const path = [...at, "environments", key];
    if (RESERVED_KEYS.includes(key)) {
      ctx.addIssue({ code: "custom", path, message: "this name is reserved; rename the environment" });
    }
    if (isPrivilegedSetting(key, env)) {
      if (env.approvers && env.autoOnboard) {
        ctx.addIssue({
          code: "custom",
          path,
          message:
            "approvers and autoOnboard exclude each other: an automatic onboarding has nobody to approve it",
        });
      }
      continue;
    }
    const why = env.privileged === false ? "privileged: false" : "not privileged";
    for (const field of ["approvers", "autoOnboard", "allowUnprotectedRefs"] as const) {
      const set = field === "approvers" ? env.approvers !== undefined : env[field];
      if (set) {
        ctx.addIssue({
          code: "custom",
          path: [...path, field],
          message: `only applies to privileged environments, and "${key}" is ${why}; remove ${field} or set privileged: true`,
        });
      }
    }
  }
}
