import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, jobsInAnyState, settled, testStack } from "../helpers/stack.ts";

/** Nobody gets an identity they should not, and no secret leaks anywhere the bot writes. */
let stack: SandboxStack;
const logLines: string[] = [];
const { alice, dave, rita } = SANDBOX.users;
const eve = { id: 7, username: "eve", name: "Eve (maintainer elsewhere)" };
const AUD = "api://AzureADTokenExchange";
/** Every secret the run handles, beyond the configured ones: minted ID tokens, issued access tokens. */
const issued: string[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  stack = await testStack("security", { logger: createLogger("debug", sink) });
  stack.gitlab.addUser(eve);
});
afterAll(async () => {
  await stack?.close();
});

const appsOf = (projectId: number) =>
  [...stack.entra.state.applications.values()].filter((a) => a.tags.includes(`gitlab-project:${projectId}`));
const graphCalls = () => stack.entra.stats.requests.filter((r) => r.kind !== "login").length;
const onboardingIssue = (projectId: number) =>
  stack.gitlab.project(projectId)?.issues.find((i) => i.description.includes("gitlab-entra-bot:onboarding"));

async function exchange(projectId: number, appId: string) {
  const assertion = await stack.gitlab.mintIdToken({
    projectId,
    ref: "main",
    refType: "branch",
    audience: AUD,
  });
  issued.push(assertion);
  const res = await stack.entra.exchange({ clientId: appId, assertion });
  const token = (res.body as { access_token?: string }).access_token;
  if (token) issued.push(token);
  return res;
}

describe("who may get an identity", () => {
  // Shared, read-only set-up: the tests below only try (and fail) to change it.
  let projectId = 0;
  let iid = 0;

  beforeAll(async () => {
    const { project } = await stack.driver.createProject("secure/payments", {
      members: { [alice.id]: 40, [dave.id]: 30, [rita.id]: 20 },
    });
    projectId = project.id;
    stack.gitlab.addProject({ path: "other/project", members: { [eve.id]: 40 } });
    await settled(stack);
    iid = onboardingIssue(projectId)?.iid ?? 0;
    expect(iid).toBeGreaterThan(0);
  });

  it("slash commands below the policy's level are refused and cause zero Graph calls", async () => {
    // Staging needs developer, production maintainer: a reporter may do neither, a developer not production.
    for (const [user, text] of [
      [rita.id, "/entra onboard staging"],
      [rita.id, "/entra offboard staging"],
      [dave.id, "/entra onboard production"],
      [dave.id, "/entra offboard production"],
    ] as const) {
      stack.entra.stats.reset();
      const { delivery } = await stack.driver.comment(projectId, iid, user, text);
      expect(delivery.status).toBe(202);
      await settled(stack);
      expect(graphCalls(), `${text} by user ${user}`).toBe(0);
    }
    const status = onboardingIssue(projectId)?.notes.find((n) => n.body.includes("gitlab-entra-bot:status"));
    expect(status?.body).toMatch(/Maintainer|Developer/);
    expect(appsOf(projectId)).toHaveLength(2);
  });

  it("a maintainer of another project cannot onboard or offboard this one", async () => {
    stack.entra.stats.reset();
    await stack.driver.comment(projectId, iid, eve.id, "/entra offboard production");
    await stack.driver.comment(projectId, iid, eve.id, "/entra onboard staging");
    await settled(stack);
    expect(graphCalls()).toBe(0);
    expect(appsOf(projectId)).toHaveLength(2);
    expect(await failures(stack)).toEqual([]);
  });

  it("a comment in a project outside the policy's scope is ignored at the door", async () => {
    const out = stack.gitlab.addProject({ path: "sandbox-excluded/tool", members: { [alice.id]: 50 } });
    const now = new Date().toISOString();
    out.issues.push({
      id: 800_001,
      iid: 1,
      projectId: out.id,
      title: "please",
      description: "",
      state: "opened",
      labels: [],
      authorId: alice.id,
      confidential: false,
      createdAt: now,
      updatedAt: now,
      notes: [],
    });
    stack.entra.stats.reset();
    const before = await jobsInAnyState(stack.service.queues.events);
    const { delivery } = await stack.driver.comment(out.id, 1, alice.id, "/entra onboard production");
    expect(delivery.status).toBe(200);
    expect(delivery.body).toMatchObject({ ignored: true });
    expect(String(delivery.body.reason)).toMatch(/outside the policy scope/);
    await settled(stack);
    expect(await jobsInAnyState(stack.service.queues.events)).toBe(before);
    expect(graphCalls()).toBe(0);
    expect(appsOf(out.id)).toHaveLength(0);
  });

  it("path reuse: a new project at a destroyed project's path cannot use the old identity", async () => {
    const { project: old } = await stack.driver.createProject("secure/reused", {
      members: { [alice.id]: 40 },
    });
    await settled(stack);
    const oldApps = appsOf(old.id).map((a) => a.appId);
    expect(oldApps).toHaveLength(2);
    expect((await exchange(old.id, oldApps[0] as string)).status).toBe(200);
    expect((await stack.driver.deleteProject(old.id)).status).toBe(202);
    await settled(stack);
    // Retired: kept for the audit trail, without a single credential, and disabled.
    expect(appsOf(old.id)).toHaveLength(2);
    for (const app of appsOf(old.id)) {
      expect(app.fics).toHaveLength(0);
      const sp = [...stack.entra.state.servicePrincipals.values()].find((x) => x.appId === app.appId);
      expect(sp?.accountEnabled).toBe(false);
    }

    const { project: reborn } = await stack.driver.createProject("secure/reused", {
      members: { [eve.id]: 40 },
    });
    expect(reborn.id).not.toBe(old.id);
    await settled(stack);
    for (const appId of oldApps) {
      const res = await exchange(reborn.id, appId);
      expect(res.status).not.toBe(200);
      // Never reused for the newcomer: still the old project's, still without credentials.
      const retired = [...stack.entra.state.applications.values()].find((a) => a.appId === appId);
      expect(retired?.tags).toContain(`gitlab-project:${old.id}`);
      expect(retired?.fics).toHaveLength(0);
    }
    const fresh = appsOf(reborn.id);
    expect(fresh).toHaveLength(2);
    expect(fresh.some((a) => oldApps.includes(a.appId))).toBe(false);
    expect(await failures(stack)).toEqual([]);
  });
});

async function redisDump(prefix: string): Promise<string> {
  const redis = new Redis(TEST_REDIS_URL);
  const parts: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      if (type === "string") parts.push((await redis.get(key)) ?? "");
      else if (type === "hash") parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === "list") parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === "set") parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === "zset") parts.push(JSON.stringify(await redis.zrange(key, "0", "-1")));
      else if (type === "stream") parts.push(JSON.stringify(await redis.xrange(key, "-", "+")));
      parts.push(key);
    }
  } while (cursor !== "0");
  await redis.quit();
  return parts.join("\n");
}

describe("no secret leaks", () => {
  it("no secret appears in logs, Redis (job data, audit), GitLab comments/issues/variables or error bodies", async () => {
    // Error paths too: a wrong webhook token, a wrong admin token, a Graph failure retried.
    const wrongToken = `wrong-webhook-token-${Date.now()}`;
    const res = await fetch(`${stack.service.url}/webhooks/gitlab`, {
      method: "POST",
      headers: {
        "X-Gitlab-Token": wrongToken,
        "X-Gitlab-Event": "System Hook",
        "Content-Type": "application/json",
      },
      body: "{}",
    });
    const errorBodies = [await res.text()];
    expect(res.status).toBe(401);
    const admin = await fetch(`${stack.service.url}/admin/audit`, {
      headers: { Authorization: `Bearer ${wrongToken}` },
    });
    errorBodies.push(await admin.text());
    expect(admin.status).toBe(401);
    // Failures on both sides while the bot holds its tokens: a Graph 500 and 401, a GitLab 500 on a write.
    stack.entra.faults.failNext(1, 500);
    stack.entra.faults.failNext(1, 401, { pathIncludes: "/servicePrincipals" });
    stack.gitlab.faults.failNext(1, 500, { method: "POST", pathIncludes: "/variables" });
    const { project } = await stack.driver.createProject("secure/leaks", { members: { [alice.id]: 40 } });
    await stack.driver.deploy(project.id, "review/feature-x", { user: alice.id });
    await settled(stack);
    for (const env of ["production", "staging"]) {
      const app = appsOf(project.id).find((a) => a.tags.includes(`gitlab-env:${env}`));
      expect(app, env).toBeTruthy();
      if (app) expect((await exchange(project.id, app.appId)).status).toBe(200);
    }
    const failed = await failures(stack);

    // The bot's own Graph bearer tokens (client-credentials tokens the Entra simulator issued to its client id).
    const botGraphTokens = stack.entra.issuedTokens
      .filter((t) => t.appId === SANDBOX.botClientId && !t.federated)
      .map((t) => t.token);
    expect(botGraphTokens.length).toBeGreaterThanOrEqual(1);
    const secrets = [
      stack.secrets.webhook,
      stack.secrets.gitlabToken,
      stack.secrets.azureClientSecret,
      stack.secrets.adminToken,
      stack.secrets.viewerToken,
      wrongToken,
      ...botGraphTokens,
      ...issued,
    ];
    expect(issued.length).toBeGreaterThanOrEqual(4);
    // The GitLab simulator saw the token and the 500: the scan below would find it if the bot echoed it.
    expect(stack.gitlab.stats.log.some((r) => r.status === 500)).toBe(true);
    expect(stack.entra.stats.requests.some((r) => r.status === 401)).toBe(true);
    const places = {
      logs: logLines.join(""),
      redis: await redisDump(stack.config.queuePrefix),
      gitlab: JSON.stringify(stack.gitlab.state.projects),
      errorBodies: [...errorBodies, ...failed].join("\n"),
    };
    expect(places.logs.length).toBeGreaterThan(1000);
    expect(places.redis).toContain("audit");
    for (const [where, text] of Object.entries(places)) {
      for (const secret of secrets) {
        // Distinctive parts too: a token cut or re-encoded still leaks its signature.
        const probes = [secret, ...(secret.split(".").length === 3 ? [secret.split(".")[2] as string] : [])];
        for (const probe of probes) expect(text.includes(probe), `a secret in ${where}`).toBe(false);
      }
    }
    console.info(
      `[reliability] secret scan: ${secrets.length} secrets (${botGraphTokens.length} bot Graph tokens) x ${logLines.length} log lines, ${places.redis.length} bytes of Redis, ${places.gitlab.length} bytes of GitLab state, ${errorBodies.length} error bodies: 0 found`,
    );
  });
});
