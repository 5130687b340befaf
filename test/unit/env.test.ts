import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/env.ts";
import { ConfigError } from "../../src/config/problems.ts";

const worker = {
  GITLAB_URL: "https://gitlab.example.com/",
  GITLAB_TOKEN: "glpat-x",
  AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
};

function problems(env: Record<string, string>, role?: "api" | "worker" | "all"): string[] {
  try {
    loadConfig(env, role);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => p.name);
    throw err;
  }
}

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({ GITLAB_WEBHOOK_SECRETS: "a, b ,," }, "api");
    expect(c.port).toBe(3000);
    expect(c.redisUrl).toBe("redis://127.0.0.1:6379");
    expect(c.policyFile).toBe("./policy.yaml");
    expect(c.gitlab.webhookSecrets).toEqual(["a", "b"]);
    expect(c.azure.authorityHost).toBe("https://login.microsoftonline.com");
    expect(c.azure.graphBaseUrl).toBe("https://graph.microsoft.com");
    expect(c.bodyLimitBytes).toBe(16 * 1024 * 1024);
  });

  it("GITLAB_OIDC_ISSUER defaults to GITLAB_URL; an explicit issuer is kept verbatim", () => {
    expect(loadConfig({ ...worker, AZURE_CLIENT_SECRET: "s" }, "worker").gitlab.oidcIssuer).toBe(
      "https://gitlab.example.com",
    );
    expect(
      loadConfig(
        { ...worker, AZURE_CLIENT_SECRET: "s", GITLAB_OIDC_ISSUER: "https://gitlab.example.com/" },
        "worker",
      ).gitlab.oidcIssuer,
    ).toBe("https://gitlab.example.com/");
  });

  it("picks the Azure credential from what is configured", () => {
    expect(loadConfig({ ...worker, AZURE_CLIENT_SECRET: "s" }, "worker").azure.credential?.kind).toBe(
      "secret",
    );
    expect(
      loadConfig({ ...worker, AZURE_CLIENT_CERTIFICATE_PATH: "/c.pem" }, "worker").azure.credential?.kind,
    ).toBe("certificate");
    expect(loadConfig({ ...worker, AZURE_FEDERATED_TOKEN_FILE: "/t" }, "worker").azure.credential?.kind).toBe(
      "workload-identity",
    );
    expect(loadConfig(worker, "worker").azure.credential?.kind).toBe("managed-identity");
  });

  it("treats empty strings as unset (docker-compose passes FOO= for unset variables)", () => {
    expect(loadConfig({ GITLAB_WEBHOOK_SECRETS: "a", PORT: "" }, "api").port).toBe(3000);
  });

  it("requires per role", () => {
    expect(problems({}, "api")).toEqual(["GITLAB_WEBHOOK_SECRETS"]);
    expect(problems({ GITLAB_WEBHOOK_SIGNING_TOKENS: "whsec_AAAA" }, "api")).toEqual([]);
    expect(problems({}, "worker").sort()).toEqual([
      "AZURE_CLIENT_ID",
      "AZURE_TENANT_ID",
      "GITLAB_TOKEN",
      "GITLAB_URL",
    ]);
    expect(problems({}, "all")).toContain("GITLAB_WEBHOOK_SECRETS");
  });

  it("refuses http for Graph and the authority (MSAL and the Graph client need https)", () => {
    expect(problems({ GITLAB_WEBHOOK_SECRETS: "a", GRAPH_BASE_URL: "http://graph.local" }, "api")).toEqual([
      "GRAPH_BASE_URL",
    ]);
    expect(
      problems({ GITLAB_WEBHOOK_SECRETS: "a", AZURE_AUTHORITY_HOST: "http://login.local" }, "api"),
    ).toEqual(["AZURE_AUTHORITY_HOST"]);
  });

  it("never puts a secret value into a problem message", () => {
    try {
      loadConfig(
        { GITLAB_WEBHOOK_SIGNING_TOKENS: "not-a-whsec-value-secret", ADMIN_TOKEN: "short-secret" },
        "api",
      );
      expect.unreachable();
    } catch (err) {
      expect(String((err as Error).message)).not.toContain("not-a-whsec-value-secret");
      expect(String((err as Error).message)).not.toContain("short-secret");
    }
  });
});

describe("admin tokens", () => {
  it("refuses a viewer token equal to the admin token", () => {
    expect(() =>
      loadConfig(
        {
          GITLAB_WEBHOOK_SECRETS: "a",
          ADMIN_TOKEN: "same-token-0123456789",
          ADMIN_VIEWER_TOKEN: "same-token-0123456789",
        },
        "api",
      ),
    ).toThrow(/ADMIN_VIEWER_TOKEN: must differ from ADMIN_TOKEN/);
  });
});

describe("secrets bound to a source", () => {
  function messages(env: Record<string, string>): string[] {
    try {
      loadConfig(env, "api");
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => `${p.name}: ${p.problem}`);
      throw err;
    }
  }

  it("parses <namespace>=<secret> entries, several per namespace for rotation", () => {
    const c = loadConfig(
      {
        GITLAB_GROUP_WEBHOOK_SECRETS: " acme=s-one , acme=s-two,acme/payments=s=three ",
        GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: "Acme=whsec_QUFBQQ==",
      },
      "api",
    );
    expect(c.gitlab.groupWebhookSecrets).toEqual([
      { namespace: "acme", secret: "s-one" },
      { namespace: "acme", secret: "s-two" },
      { namespace: "acme/payments", secret: "s=three" },
    ]);
    expect(c.gitlab.groupSigningTokens).toEqual([{ namespace: "Acme", secret: "whsec_QUFBQQ==" }]);
    expect(c.gitlab.webhookSecrets).toEqual([]);
  });

  it("any one of the four variables satisfies the api; none is a problem naming all four", () => {
    expect(messages({ GITLAB_GROUP_WEBHOOK_SECRETS: "acme=x" })).toEqual([]);
    expect(messages({ GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: "acme=whsec_QUFB" })).toEqual([]);
    const none = messages({});
    expect(none).toHaveLength(1);
    expect(none[0]).toMatch(/GITLAB_GROUP_WEBHOOK_SECRETS.*GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS/);
  });

  it("lists every problem at once, by entry, without echoing a secret", () => {
    const env = {
      GITLAB_WEBHOOK_SECRETS: "instance-secret-1",
      GITLAB_GROUP_WEBHOOK_SECRETS:
        "no-equals-sign-secret-2,=orphan-secret-3,/acme/=slash-secret-4,acme=,team=instance-secret-1,a=shared-5,b=shared-5",
      GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: "acme=not-a-whsec-6",
      PUBLIC_URL: "ftp://x",
    };
    const found = messages(env);
    const text = found.join("\n");
    expect(text).toMatch(/GITLAB_GROUP_WEBHOOK_SECRETS: entry 1 has no "="/);
    expect(text).toMatch(/entry 2 has an empty namespace/);
    expect(text).toMatch(/entry 3: "\/acme\/" is not a namespace full path/);
    expect(text).toMatch(/entry 4 \(acme\) has an empty secret/);
    expect(text).toMatch(
      /GITLAB_GROUP_WEBHOOK_SIGNING_TOKENS: entry 1 \(acme\): the signing token must look like/,
    );
    expect(text).toMatch(
      /GITLAB_WEBHOOK_SECRETS \/ GITLAB_GROUP_WEBHOOK_SECRETS: one secret is configured for namespace team and the instance/,
    );
    expect(text).toMatch(/one secret is configured for namespace a and namespace b/);
    expect(text).toMatch(/PUBLIC_URL/);
    for (const secret of [
      "instance-secret-1",
      "no-equals-sign-secret-2",
      "orphan-secret-3",
      "slash-secret-4",
      "shared-5",
      "not-a-whsec-6",
    ]) {
      expect(text).not.toContain(secret);
    }
  });

  it("the same secret twice for one namespace (case-insensitive) is no conflict", () => {
    expect(messages({ GITLAB_GROUP_WEBHOOK_SECRETS: "acme=x,ACME=x" })).toEqual([]);
  });

  it("PUBLIC_URL keeps the origin; GITLAB_INSTANCES still parses (deprecated)", () => {
    const c = loadConfig(
      {
        GITLAB_WEBHOOK_SECRETS: "a",
        PUBLIC_URL: "https://Bot.Example.com:443/admin/",
        GITLAB_INSTANCES: "https://x",
      },
      "api",
    );
    expect(c.publicOrigin).toBe("https://bot.example.com");
    expect(c.gitlab.instances).toEqual(["https://x"]);
  });
});
