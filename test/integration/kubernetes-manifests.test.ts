import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../../src/config/env.ts";
import { parsePolicy } from "../../src/config/policy.ts";

/**
 * deploy/kubernetes rendered with `kubectl kustomize` (offline) and every object validated against the
 * Kubernetes API schemas: kubernetes-models ships validators generated from Kubernetes' official OpenAPI
 * definitions (compiled with ajv), one per apiVersion/kind. On top of the schemas, the properties the
 * manifests promise: hardened pods, probes, resources, secrets by reference only, references that resolve,
 * and a configuration the bot itself accepts.
 *
 * KUBECTL lists the kubectl binaries to render with (comma-separated; default `kubectl`): .ci/run passes both
 * the machine's and Debian bookworm's (1.20, kustomize v2.0.3), so the manifests stay renderable by both.
 * Skipped only on a developer machine without kubectl; in CI a missing kubectl fails.
 */

const ROOT = fileURLToPath(new URL("../../deploy/kubernetes/", import.meta.url));
const KUBECTLS = (process.env.KUBECTL ?? "kubectl")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);

function kubectlWorks(bin: string): boolean {
  try {
    execFileSync(bin, ["version", "--client"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const available = KUBECTLS.filter(kubectlWorks);
if (available.length === 0) {
  console.warn(
    `kubernetes manifests: skipped, no kubectl (${KUBECTLS.join(", ")}); Debian: apt-get install kubernetes-client`,
  );
}

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked structurally below.
type K8sObject = Record<string, any>;

function render(kubectl: string, dir: string): K8sObject[] {
  const out = execFileSync(kubectl, ["kustomize", `${ROOT}${dir}`], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** The schema validator of kubernetes-models for an apiVersion/kind, e.g. apps/v1 Deployment. */
async function validatorFor(apiVersion: string, kind: string): Promise<(obj: K8sObject) => void> {
  const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<
    string,
    new (
      data: K8sObject,
    ) => { validate(): void }
  >;
  const Model = mod[kind];
  if (!Model) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return (obj) => new Model(obj).validate();
}

async function schemaErrors(objects: K8sObject[]): Promise<string[]> {
  const errors: string[] = [];
  for (const obj of objects) {
    try {
      (await validatorFor(obj.apiVersion, obj.kind))(obj);
    } catch (err) {
      errors.push(`${obj.kind}/${obj.metadata?.name}: ${(err as Error).message}`);
    }
  }
  return errors;
}

const WORKLOADS = new Set(["Deployment", "StatefulSet"]);
const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
/** The object of that kind and name; generated ConfigMaps and Secrets carry a content hash suffix. */
const named = (objects: K8sObject[], kind: string, name: string) =>
  byKind(objects, kind).find(
    (o) => o.metadata.name === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(o.metadata.name),
  );
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe.skipIf(available.length === 0 && !process.env.CI)("Kubernetes manifests (deploy/kubernetes)", () => {
  it("kubectl is available (CI installs Debian's kubernetes-client when the machine has none)", () => {
    expect(available).toEqual(KUBECTLS);
  });

  for (const kubectl of available) {
    describe(`rendered by ${kubectl}`, () => {
      const overlays = ["base", "overlays/example", "overlays/workload-identity"];
      const rendered = new Map(overlays.map((o) => [o, render(kubectl, o)]));
      const example = rendered.get("overlays/example") ?? [];
      const wi = rendered.get("overlays/workload-identity") ?? [];

      it("every object of every overlay validates against the Kubernetes schemas", async () => {
        for (const [dir, objects] of rendered) {
          expect(objects.length, dir).toBeGreaterThan(5);
          expect(await schemaErrors(objects), dir).toEqual([]);
        }
      });

      it("the validator rejects what the API server would (each broken copy fails)", async () => {
        const original = named(example, "Deployment", "gitlab-entra-bot-api");
        const broken = (change: (d: K8sObject) => void) => {
          const copy: K8sObject = structuredClone(original ?? {});
          change(copy);
          return schemaErrors([copy]);
        };
        expect(await broken(() => {})).toEqual([]);
        expect(await broken((d) => (d.spec.replicas = "two"))).toEqual([
          expect.stringMatching(/replicas must be integer/),
        ]);
        expect(await broken((d) => delete d.spec.selector)).toEqual([
          expect.stringMatching(/required property selector/),
        ]);
        expect(
          await broken((d) => (d.spec.template.spec.containers[0].ports[0].containerPort = "http")),
        ).toEqual([expect.stringMatching(/containerPort must be integer/)]);
        expect(
          await broken((d) => (d.spec.template.spec.securityContext.seccompProfile.type = "Relaxed")),
        ).toEqual([expect.stringMatching(/type must be equal to one of the allowed values/)]);
      });

      it("the example overlay has everything the bot needs, in one namespace", () => {
        const kinds = example.map((o) => o.kind).sort();
        expect(kinds).toEqual(
          [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "Service",
            "ServiceAccount",
            "StatefulSet",
          ].sort(),
        );
        for (const o of example.filter((o) => o.kind !== "Namespace")) {
          expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe("gitlab-entra-bot");
        }
      });

      it("every pod is hardened: non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp", () => {
        for (const objects of [example, wi]) {
          for (const w of objects.filter((o) => WORKLOADS.has(o.kind))) {
            const pod = w.spec.template.spec;
            const where = `${w.kind}/${w.metadata.name}`;
            expect(pod.securityContext, where).toMatchObject({
              runAsNonRoot: true,
              seccompProfile: { type: "RuntimeDefault" },
            });
            expect(pod.securityContext.runAsUser, where).toBeGreaterThan(0);
            expect(pod.automountServiceAccountToken, where).toBe(false);
            for (const c of pod.containers) {
              expect(c.securityContext, `${where}/${c.name}`).toMatchObject({
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                privileged: false,
                capabilities: { drop: ["ALL"] },
              });
              for (const key of ["cpu", "memory"]) {
                expect(c.resources?.requests?.[key], `${where}/${c.name} requests.${key}`).toBeTruthy();
                expect(c.resources?.limits?.[key], `${where}/${c.name} limits.${key}`).toBeTruthy();
              }
              expect(c.livenessProbe, `${where}/${c.name}`).toBeTruthy();
              expect(c.readinessProbe, `${where}/${c.name}`).toBeTruthy();
              // Every writable path is a volume: the root filesystem is read-only.
              const volumes = [
                ...(pod.volumes ?? []),
                ...(w.spec.volumeClaimTemplates ?? []).map((t: K8sObject) => t.metadata),
              ].map((v: K8sObject) => v.name);
              for (const m of c.volumeMounts ?? [])
                expect(volumes, `${where} mounts ${m.name}`).toContain(m.name);
            }
          }
        }
      });

      it("api and worker probe /healthz (liveness) and /readyz (readiness) on the port the bot listens on", () => {
        const env = named(example, "ConfigMap", "gitlab-entra-bot-env")?.data ?? {};
        for (const [name, port] of [
          ["gitlab-entra-bot-api", env.PORT],
          ["gitlab-entra-bot-worker", env.WORKER_HTTP_PORT],
        ]) {
          const c = named(example, "Deployment", name as string)?.spec.template.spec.containers[0];
          expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
          expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
          expect(c.ports).toEqual([{ name: "http", containerPort: Number(port), protocol: "TCP" }]);
        }
        expect(
          named(example, "Deployment", "gitlab-entra-bot-api")?.spec.template.spec.containers[0].args,
        ).toEqual(["--role=api"]);
        expect(
          named(example, "Deployment", "gitlab-entra-bot-worker")?.spec.template.spec.containers[0].args,
        ).toEqual(["--role=worker"]);
      });

      it("secrets only by reference: every secretKeyRef, configMapRef and volume resolves; no secret value in the repo", () => {
        const secrets = byKind(example, "Secret");
        expect(secrets).toHaveLength(1);
        for (const [key, value] of Object.entries(secrets[0]?.data ?? {})) {
          expect(Buffer.from(String(value), "base64").toString(), key).toBe("");
        }
        const names = (kind: string) => new Set(byKind(example, kind).map((o) => o.metadata.name));
        for (const d of byKind(example, "Deployment")) {
          const pod = d.spec.template.spec;
          for (const c of pod.containers) {
            for (const e of c.env ?? []) {
              if (e.valueFrom?.secretKeyRef) {
                expect(names("Secret")).toContain(e.valueFrom.secretKeyRef.name);
                expect(Object.keys(secrets[0]?.data ?? {})).toContain(e.valueFrom.secretKeyRef.key);
              } else {
                expect(e.value, `${c.name} ${e.name} must come from a Secret or the ConfigMap`).not.toMatch(
                  /./,
                );
              }
            }
            for (const f of c.envFrom ?? []) expect(names("ConfigMap")).toContain(f.configMapRef.name);
          }
          for (const v of pod.volumes.filter((v: K8sObject) => v.configMap)) {
            expect(names("ConfigMap")).toContain(v.configMap.name);
          }
          expect(names("ServiceAccount")).toContain(pod.serviceAccountName);
        }
        // The api never gets the GitLab token or the Azure credential.
        const apiEnv = named(example, "Deployment", "gitlab-entra-bot-api")?.spec.template.spec.containers[0]
          .env;
        expect(apiEnv.map((e: K8sObject) => e.name).sort()).toEqual(
          [
            "ADMIN_TOKEN",
            "ADMIN_VIEWER_TOKEN",
            "GITLAB_WEBHOOK_SECRETS",
            "GITLAB_WEBHOOK_SIGNING_TOKENS",
          ].sort(),
        );
      });

      it("the bot accepts the rendered configuration: the env ConfigMap per role, and the policy ConfigMap", () => {
        const env = named(example, "ConfigMap", "gitlab-entra-bot-env")?.data ?? {};
        const policy = named(example, "ConfigMap", "gitlab-entra-bot-policy")?.data?.["policy.yaml"];
        expect(parsePolicy(policy, "rendered policy ConfigMap").environments).toBeTruthy();
        // The example's placeholders stop both roles until the operator sets them, naming each one.
        expect(() => loadConfig({ ...env, GITLAB_WEBHOOK_SECRETS: "w" }, "api")).toThrow(
          /AZURE_TENANT_ID.*GUID/s,
        );
        // The Secret's keys left empty: refused, named.
        const emptySecret = Object.fromEntries(
          Object.keys(byKind(example, "Secret")[0]?.data ?? {}).map((k) => [k, ""]),
        );
        const filled = {
          ...env,
          AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
        };
        expect(() => loadConfig({ ...filled, ...emptySecret }, "api")).toThrow(
          /GITLAB_WEBHOOK_SECRETS: is required/,
        );
        const api = loadConfig({ ...filled, GITLAB_WEBHOOK_SECRETS: "filled-in-by-the-operator" }, "api");
        expect(api.port).toBe(3000);
        expect(api.policyFile).toBe("/etc/gitlab-entra-bot/policy.yaml");
        const worker = loadConfig({ ...filled, GITLAB_TOKEN: "t", AZURE_CLIENT_SECRET: "s" }, "worker");
        expect(worker.workerHttpPort).toBe(3000);
        expect(worker.redisUrl).toBe("redis://redis:6379");
      });

      it("selectors of Services, PodDisruptionBudgets and NetworkPolicies select the pods they are for", () => {
        const podLabels = (name: string) => named(example, "Deployment", name)?.spec.template.metadata.labels;
        const api = podLabels("gitlab-entra-bot-api");
        const worker = podLabels("gitlab-entra-bot-worker");
        expect(matches(named(example, "Service", "gitlab-entra-bot-api")?.spec.selector, api)).toBe(true);
        expect(matches(named(example, "Service", "gitlab-entra-bot-api")?.spec.selector, worker)).toBe(false);
        for (const [name, labels] of [
          ["gitlab-entra-bot-api", api],
          ["gitlab-entra-bot-worker", worker],
        ]) {
          expect(
            matches(named(example, "PodDisruptionBudget", name)?.spec.selector.matchLabels, labels),
          ).toBe(true);
          expect(matches(named(example, "NetworkPolicy", name)?.spec.podSelector.matchLabels, labels)).toBe(
            true,
          );
        }
        // The api may reach Redis and DNS only; only the workers reach HTTPS (GitLab, Entra, Graph).
        const egressPorts = (name: string) =>
          named(example, "NetworkPolicy", name)
            ?.spec.egress.flatMap((r: K8sObject) => r.ports.map((p: K8sObject) => p.port))
            .sort();
        expect(egressPorts("gitlab-entra-bot-api")).toEqual([53, 53, 6379]);
        expect(egressPorts("gitlab-entra-bot-worker")).toEqual([443, 53, 53, 6379]);
        const redisPolicy = named(example, "NetworkPolicy", "redis");
        expect(matches(redisPolicy?.spec.ingress[0].from[0].podSelector.matchLabels, api)).toBe(true);
        expect(matches(redisPolicy?.spec.ingress[0].from[0].podSelector.matchLabels, worker)).toBe(true);
      });

      it("the example Redis keeps every job: AOF on and noeviction", () => {
        const args = named(example, "StatefulSet", "redis")?.spec.template.spec.containers[0].args.join(" ");
        expect(args).toMatch(/--appendonly yes/);
        expect(args).toMatch(/--maxmemory-policy noeviction/);
      });

      it("workload identity: the worker trades a projected token with Entra's audience, and the bot picks it up", () => {
        const worker = named(wi, "Deployment", "gitlab-entra-bot-worker")?.spec.template.spec;
        const c = worker.containers[0];
        const file = c.env.find((e: K8sObject) => e.name === "AZURE_FEDERATED_TOKEN_FILE")?.value;
        const mount = c.volumeMounts.find((m: K8sObject) => file?.startsWith(`${m.mountPath}/`));
        const volume = worker.volumes.find((v: K8sObject) => v.name === mount?.name);
        expect(volume.projected.sources[0].serviceAccountToken).toMatchObject({
          audience: "api://AzureADTokenExchange",
          path: file.slice(mount.mountPath.length + 1),
        });
        const env = named(wi, "ConfigMap", "gitlab-entra-bot-env")?.data ?? {};
        const config = loadConfig(
          {
            ...env,
            ...Object.fromEntries(
              c.env.filter((e: K8sObject) => "value" in e).map((e: K8sObject) => [e.name, e.value]),
            ),
            GITLAB_TOKEN: "t",
            AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
          },
          "worker",
        );
        expect(config.azure.credential).toMatchObject({
          kind: "workload-identity",
          federatedTokenFile: file,
        });
        // Only the workers get the token.
        const api = named(wi, "Deployment", "gitlab-entra-bot-api")?.spec.template.spec;
        expect(JSON.stringify(api)).not.toContain("azure-identity-token");
      });
    });
  }
});
