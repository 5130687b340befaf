import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import type { SubClaimComponent } from "../../src/config/policy-schema.ts";
import {
  deployJobName,
  renderOnboardingMarkdown,
  renderSnippet,
  type SnippetInput,
  type SnippetVariant,
  snippetJobs,
  templateName,
} from "../../src/onboarding/snippet.ts";
import type { OnboardResult } from "../../src/onboarding/types.ts";

const schema = JSON.parse(
  readFileSync(new URL("../fixtures/gitlab-ci.schema.json", import.meta.url), "utf8"),
) as {
  $id: string;
};
// GitLab's schema uses its own keywords (markdownDescription) and formats ajv does not ship: not strict.
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema(schema);
const validateFile = ajv.getSchema(schema.$id);
const validateTemplate = ajv.compile({ $ref: `${schema.$id}#/definitions/job_template` });
const validateJob = ajv.compile({ $ref: `${schema.$id}#/definitions/job` });

const APP = "11111111-2222-3333-4444-555555555555";
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const VARIANTS: SnippetVariant[] = ["azure-cli", "terraform", "azure-sdk"];

interface Case {
  name: string;
  environment: string;
  refs: string[];
  subClaimComponents: SubClaimComponent[];
  audience: string;
}

const CASES: Case[] = [
  {
    name: "branch main to production",
    environment: "production",
    refs: ["branch:main"],
    subClaimComponents: ["project_path", "ref_type", "ref"],
    audience: "api://AzureADTokenExchange",
  },
  {
    name: "tags and branches with slashes to a review environment",
    environment: "review/fix-1",
    refs: ["branch:release/2024.1", "tag:v1.2.3", "branch:feature/a-b_c"],
    subClaimComponents: ["project_id", "ref_type", "ref"],
    audience: "api://AzureADTokenExchangeUSGov",
  },
  {
    name: "staging with develop and main, tier-bound subject",
    environment: "Staging EU",
    refs: ["branch:develop", "branch:main"],
    subClaimComponents: ["project_path", "ref_type", "ref", "deployment_tier"],
    audience: "https://gitlab.example.com",
  },
];

function inputs(): SnippetInput[] {
  const out: SnippetInput[] = [];
  for (const c of CASES)
    for (const variant of VARIANTS)
      for (const ciVariablesSet of [false, true])
        out.push({
          environment: c.environment,
          appId: APP,
          tenantId: TENANT,
          audience: c.audience,
          refs: c.refs,
          variant,
          ciVariablesSet,
          subClaimComponents: c.subClaimComponents,
        });
  return out;
}

function errorsOf(v: { errors?: unknown } | undefined): string {
  return JSON.stringify(v?.errors ?? null, null, 1).slice(0, 2000);
}

describe("renderSnippet: every variant validates against GitLab's CI schema", () => {
  for (const input of inputs()) {
    const label = `${input.environment} / ${input.variant} / ${input.ciVariablesSet ? "CI variables" : "inline ids"} / ${input.subClaimComponents[0]}`;
    it(label, () => {
      const text = renderSnippet(input);
      const doc = parseYaml(text) as Record<string, Record<string, unknown>>;
      expect(validateFile?.(doc), errorsOf(validateFile)).toBe(true);

      const tpl = doc[templateName(input.environment)];
      const job = doc[deployJobName(input.environment)];
      if (!tpl || !job) throw new Error(`missing jobs in:\n${text}`);
      // Hidden keys are "anything" at the top level of the schema: validate the template as a job template,
      // and the deploy job with `extends` resolved the way GitLab merges it.
      expect(validateTemplate(tpl), errorsOf(validateTemplate)).toBe(true);
      const { extends: parent, ...own } = job;
      expect(parent).toBe(templateName(input.environment));
      expect(validateJob({ ...tpl, ...own }), errorsOf(validateJob)).toBe(true);

      expect(job.environment).toBe(input.environment);
      expect(tpl.id_tokens).toEqual({ GITLAB_OIDC_TOKEN: { aud: input.audience } });
      const expectedRules = input.refs.map((r) => {
        const [type, ...rest] = r.split(":");
        return { if: `${type === "branch" ? "$CI_COMMIT_BRANCH" : "$CI_COMMIT_TAG"} == "${rest.join(":")}"` };
      });
      expect(job.rules).toEqual(expectedRules);

      const vars = tpl.variables as Record<string, string>;
      if (input.ciVariablesSet) {
        expect(vars.AZURE_CLIENT_ID).toBeUndefined();
        expect(vars.AZURE_TENANT_ID).toBeUndefined();
        expect(text).toContain("CI/CD variables");
      } else {
        expect(vars.AZURE_CLIENT_ID).toBe(APP);
        expect(vars.AZURE_TENANT_ID).toBe(TENANT);
      }
      const script = (tpl.before_script as string[]).join("\n");
      for (const code of ["AADSTS70021", "AADSTS700211", "AADSTS700213"]) expect(script).toContain(code);
      expect(script).toContain("entra_claims");
      if (input.variant === "azure-cli") {
        expect(script).toContain(
          "az login --service-principal -u $AZURE_CLIENT_ID -t $AZURE_TENANT_ID --federated-token $GITLAB_OIDC_TOKEN",
        );
      }
      if (input.variant === "terraform") {
        expect(vars).toMatchObject({
          ARM_USE_OIDC: "true",
          ARM_OIDC_TOKEN: "$GITLAB_OIDC_TOKEN",
          ARM_CLIENT_ID: input.ciVariablesSet ? "$AZURE_CLIENT_ID" : APP,
          ARM_TENANT_ID: input.ciVariablesSet ? "$AZURE_TENANT_ID" : TENANT,
          // azurerm 4 requires it; the user sets AZURE_SUBSCRIPTION_ID and the script checks it is there.
          ARM_SUBSCRIPTION_ID: "$AZURE_SUBSCRIPTION_ID",
        });
        expect(script).toContain('if [ -z "$ARM_SUBSCRIPTION_ID" ]');
      }
      if (input.variant === "azure-sdk") expect(script).toContain("AZURE_FEDERATED_TOKEN_FILE");

      // Header comment: which refs, the propagation delay, and the sub-claim change when project_id leads.
      const header = text
        .split("\n")
        .filter((l) => l.startsWith("#"))
        .join("\n");
      expect(header).toContain("Only these refs can log in");
      expect(header).toContain("propagate");
      // The subject code Entra really answers for a disallowed ref, and the others of the family.
      expect(header).toMatch(/AADSTS700213 \(subject\)/);
      expect(header).toContain("AADSTS700211");
      expect(header).toContain("AADSTS7002121");
      expect(header.includes("ci_id_token_sub_claim_components")).toBe(
        input.subClaimComponents[0] === "project_id",
      );
    });
  }

  it("uses a schema check that does reject invalid jobs", () => {
    expect(validateFile?.({ deploy: { script: [], rules: [{ iff: "x" }] } })).toBe(false);
    expect(validateTemplate({ id_tokens: { T: { audience: "x" } } })).toBe(false);
  });

  it("quotes variable values so a YAML 1.1 parser keeps them strings", () => {
    const text = renderSnippet({
      ...(inputs()[0] as SnippetInput),
      appId: "12345678-0000-0000-0000-000000000000",
    });
    expect(text).toContain('AZURE_CLIENT_ID: "12345678-0000-0000-0000-000000000000"');
  });

  it("refuses an environment without refs", () => {
    expect(() => renderSnippet({ ...(inputs()[0] as SnippetInput), refs: [] })).toThrow(/no refs/);
  });
});

describe("the login script, run with a stub az", () => {
  const dir = mkdtempSync(join(tmpdir(), "snippet-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const claims = {
    iss: "https://gitlab.example.com",
    sub: "project_path:grp/app:ref_type:branch:ref:main",
    aud: "api://AzureADTokenExchange",
    exp: 1700000000,
  };
  const b64url = (s: string) => Buffer.from(s).toString("base64url");
  const token = `${b64url('{"alg":"RS256"}')}.${b64url(JSON.stringify(claims))}.c2lnbmF0dXJl`;

  const run = (azBehaviour: string, ci: Record<string, string> = { CI_COMMIT_REF_NAME: "main" }) => {
    const counter = join(dir, "count");
    writeFileSync(counter, "0");
    const az = join(dir, "az");
    writeFileSync(az, `#!/bin/sh\nn=$(($(cat ${counter}) + 1)); echo $n > ${counter}\n${azBehaviour}\n`);
    chmodSync(az, 0o755);
    const tpl = snippetJobs({ ...(inputs()[0] as SnippetInput), variant: "azure-cli" })[
      templateName("production")
    ];
    const script = ((tpl?.before_script ?? []) as string[]).join("\n");
    const result = spawnSync("sh", ["-c", script], {
      env: {
        PATH: `${dir}:${process.env.PATH ?? ""}`,
        GITLAB_OIDC_TOKEN: token,
        AZURE_CLIENT_ID: APP,
        AZURE_TENANT_ID: TENANT,
        ENTRA_LOGIN_ATTEMPTS: "4",
        ENTRA_LOGIN_DELAY: "0",
        CI_ENVIRONMENT_NAME: "production",
        ...ci,
      },
      encoding: "utf8",
    });
    return { ...result, calls: Number(readFileSync(counter, "utf8").trim()) };
  };

  it("retries while the credential propagates, then succeeds", () => {
    const r = run(
      `if [ $n -lt 3 ]; then echo "ERROR: AADSTS70021: No matching federated identity record found" >&2; exit 1; fi`,
    );
    expect(r.status).toBe(0);
    expect(r.calls).toBe(3);
    expect(r.stdout).toContain("Azure login OK");
  });

  it("stops at once on other errors and prints the token's claims, never the token", () => {
    const r = run(`echo "ERROR: AADSTS700016: Application not found" >&2; exit 1`);
    expect(r.status).toBe(1);
    expect(r.calls).toBe(1);
    const all = `${r.stdout}\n${r.stderr}`;
    expect(all).toContain(`"sub":"${claims.sub}"`);
    expect(all).toContain(`"iss":"${claims.iss}"`);
    expect(all).toContain(`"aud":"${claims.aud}"`);
    expect(all).toContain(`"exp":${claims.exp}`);
    expect(all).not.toContain(token);
  });

  it("gives up after the configured attempts", () => {
    const r = run(`echo "AADSTS700213: No matching federated identity record found" >&2; exit 1`);
    expect(r.status).toBe(1);
    expect(r.calls).toBe(4);
    expect(r.stdout).toContain("/entra doctor");
  });

  it("does not retry a case-only subject mismatch (AADSTS7002138): waiting never fixes it", () => {
    const r = run(`echo "AADSTS7002138: No matching federated identity record found" >&2; exit 1`);
    expect(r.status).toBe(1);
    expect(r.calls).toBe(1);
  });

  it("retries the audience and issuer forms of the family too", () => {
    const r = run(
      `if [ $n -eq 1 ]; then echo "AADSTS7002121: audience" >&2; exit 1; fi
if [ $n -eq 2 ]; then echo "AADSTS700211: issuer" >&2; exit 1; fi`,
    );
    expect(r.status).toBe(0);
    expect(r.calls).toBe(3);
  });

  it("fails at once, without calling az, for a ref the policy does not allow (no five-minute loop)", () => {
    const r = run(`echo "AADSTS700213: No matching federated identity record found" >&2; exit 1`, {
      CI_COMMIT_REF_NAME: "feature/x",
    });
    expect(r.status).toBe(1);
    expect(r.calls).toBe(0);
    expect(r.stdout).toContain("This job runs for branch:feature/x");
    expect(r.stdout).toContain("AADSTS700213");
  });

  it("treats a tag pipeline as tag:<name>, not as the branch of the same name", () => {
    const r = run(`exit 0`, { CI_COMMIT_REF_NAME: "main", CI_COMMIT_TAG: "main" });
    expect(r.status).toBe(1);
    expect(r.calls).toBe(0);
    expect(r.stdout).toContain("tag:main");
  });

  it("takes a ref with shell metacharacters literally", () => {
    const tpl = snippetJobs({
      ...(inputs()[0] as SnippetInput),
      refs: ["branch:it's-$(id)-*"],
      variant: "azure-cli",
    })[templateName("production")];
    const script = ((tpl?.before_script ?? []) as string[]).join("\n");
    const env = { PATH: process.env.PATH ?? "", CI_ENVIRONMENT_NAME: "p", ENTRA_LOGIN_ATTEMPTS: "1" };
    const ok = spawnSync("sh", ["-c", `${script.split("attempt=1")[0]}echo REF-OK`], {
      env: { ...env, CI_COMMIT_REF_NAME: "it's-$(id)-*" },
      encoding: "utf8",
    });
    expect(ok.stdout).toContain("REF-OK");
    const glob = spawnSync("sh", ["-c", `${script.split("attempt=1")[0]}echo REF-OK`], {
      env: { ...env, CI_COMMIT_REF_NAME: "it's-$(id)-anything" },
      encoding: "utf8",
    });
    expect(glob.stdout).not.toContain("REF-OK");
  });

  it("is valid POSIX sh for every variant (dash -n)", () => {
    for (const variant of VARIANTS) {
      const tpl = snippetJobs({ ...(inputs()[0] as SnippetInput), variant })[templateName("production")];
      const script = ((tpl?.before_script ?? []) as string[]).join("\n");
      expect(() => execFileSync("dash", ["-n", "-c", script])).not.toThrow();
    }
  });
});

describe("renderOnboardingMarkdown", () => {
  const result: OnboardResult = {
    project: { id: 42, path: "platform/payments" },
    mode: "apply",
    tenantId: TENANT,
    issuer: "https://gitlab.example.com",
    audience: "api://AzureADTokenExchange",
    subClaimComponents: ["project_path", "ref_type", "ref"],
    environments: [
      {
        environment: "production",
        status: "changed",
        identity: {
          environment: "production",
          appObjectId: "o1",
          appId: APP,
          spObjectId: "s1",
          displayName: "gitlab-42-production",
        },
        refs: ["branch:main"],
        subjects: ["project_path:platform/payments:ref_type:branch:ref:main"],
        groups: ["g1"],
        changes: [],
      },
      {
        environment: "staging",
        status: "refused",
        refs: [],
        subjects: [],
        groups: [],
        changes: [],
        message: "needs more than 20 | federated credentials",
      },
    ],
  };

  it("renders a status table and a valid yaml block per usable environment", () => {
    const md = renderOnboardingMarkdown(result, { ciVariablesSet: true });
    expect(md).toContain(`| \`production\` | ready (updated) | \`${APP}\` | \`branch:main\` | 1 |`);
    expect(md).toContain(
      "| `staging` | refused | - | - | 0 | `needs more than 20 \\| federated credentials` |",
    );
    const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
    expect(blocks).toHaveLength(1);
    const doc = parseYaml(blocks[0] ?? "");
    expect(validateFile?.(doc), errorsOf(validateFile)).toBe(true);
    expect(md).toContain("project_path:platform/payments:ref_type:branch:ref:main");
  });

  it("says plan mode changed nothing and shows no snippet for would-change environments", () => {
    const plan: OnboardResult = {
      ...result,
      mode: "plan",
      environments: [
        { ...(result.environments[0] as OnboardResult["environments"][number]), status: "would-change" },
      ],
    };
    const md = renderOnboardingMarkdown(plan, { ciVariablesSet: false });
    expect(md).toContain("Plan only");
    expect(md).not.toContain("```yaml");
  });
});
