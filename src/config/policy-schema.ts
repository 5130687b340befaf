import picomatch from "picomatch";
import { z } from "zod";

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
export const SUB_CLAIM_TAILS = ["ref_type", "ref", "deployment_tier", "environment_protected"] as const;
export type SubClaimComponent = (typeof SUB_CLAIM_HEADS)[number] | (typeof SUB_CLAIM_TAILS)[number];

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `branch:main`, `tag:v1.2.3`. The ref part is taken verbatim (GitLab refs are case-sensitive). */
export const refRuleSchema = z
  .string()
  .regex(/^(branch|tag):\S.*$/, 'must be "branch:<name>" or "tag:<name>", e.g. "branch:main"')
  .refine((s) => !/[*?]/.test(s), {
    message: "wildcards are not allowed: Entra matches subjects exactly; list each ref",
  });

export const environmentPolicySchema = z
  .object({
    refs: z.array(refRuleSchema).min(1, 'list at least one ref, e.g. ["branch:main"]'),
    groups: z.array(z.string().regex(GUID, "must be an Entra group object id (a GUID)")).default([]),
    minAccessLevel: z
      .enum(Object.keys(ACCESS_LEVELS) as [AccessLevelName, ...AccessLevelName[]])
      .default("maintainer"),
    onFirstDeployment: z.boolean().default(false),
    /** Optional GitLab deployment tier this rule also matches on first sight (production, staging, ...). */
    tier: z.enum(["production", "staging", "testing", "development", "other"]).optional(),
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
    onProjectCreate: z
      .object({
        environments: z.array(z.string().min(1)).default([]),
        openIssue: z.boolean().default(true),
        setCiVariables: z.boolean().default(true),
      })
      .strict()
      .default({ environments: [], openIssue: true, setCiVariables: true }),
    environments: z.record(z.string().min(1), environmentPolicySchema),
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
      .object({ disabledIdentityDays: z.number().int().min(0).max(3650).default(30) })
      .strict()
      .default({ disabledIdentityDays: 30 }),
  })
  .strict()
  .superRefine((p, ctx) => {
    for (const env of p.onProjectCreate.environments) {
      if (!Object.keys(p.environments).some((key) => key === env || picomatch.isMatch(env, key))) {
        ctx.addIssue({
          code: "custom",
          path: ["onProjectCreate", "environments"],
          message: `environment "${env}" has no rule under environments:`,
        });
      }
    }
  });
export type Policy = z.infer<typeof policySchema>;
