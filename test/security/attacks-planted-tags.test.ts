import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { entraSnapshot } from "../helpers/e2e.ts";
import { plantApp } from "../helpers/entra.ts";
import { inertnessProblems } from "../helpers/gitlab-markdown-oracle.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Tags are labels, not proof: any tenant user can register an app and tag it like one of the bot's
 * identities, including the `gitlab-path:` tag the bot falls back to when its registry has no entry for a
 * project. An app the bot does not own must not make a project "managed" (so that lifecycle events write to
 * GitLab for it), and its tag text must never reach a note or issue.
 */
const EVIL_SECRET = `evil-${randomUUID()}`;
const MALLORY = "9e0c1a52-0000-4000-8000-00000000abcd";
const { alice } = SANDBOX.users;
const HOSTILE_PATH = "x` @all [click](https://evil.example/p) ![i](https://evil.example/i.png) `y";

let stack: SandboxStack;

beforeAll(async () => {
  stack = await testStack("attack-tags", { env: { GITLAB_GROUP_WEBHOOK_SECRETS: `evil=${EVIL_SECRET}` } });
});
afterAll(async () => {
  await stack?.close();
});

function postAsEvil(event: string, body: unknown) {
  return fetch(`${stack.service.url}/webhooks/gitlab`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Gitlab-Event": event,
      "X-Gitlab-Token": EVIL_SECRET,
      "Idempotency-Key": randomUUID(),
    },
    body: JSON.stringify(body),
  });
}

/** Every issue description and note the bot wrote anywhere. */
function botWritings(): string[] {
  const bot = stack.gitlab.botUser.id;
  return stack.gitlab.state.projects.flatMap((p) =>
    p.issues.flatMap((i) => [
      ...(i.authorId === bot ? [i.description] : []),
      ...i.notes.filter((n) => n.authorId === bot).map((n) => n.body),
    ]),
  );
}

describe("a planted app's tags", () => {
  it("do not make the bot write their path into an issue of a project pending deletion", async () => {
    // The group owner's own project, which the bot never onboarded, with an issue the bot could write to.
    const p = stack.gitlab.addProject({ path: "evil/bait", members: { [alice.id]: 50 } });
    p.issues.push({
      id: ++stack.gitlab.state.seq.issue,
      iid: 1,
      projectId: p.id,
      title: "Azure access for CI/CD (Entra workload identity federation)",
      description: "<!-- gitlab-entra-bot:onboarding -->",
      state: "opened",
      labels: [],
      authorId: stack.gitlab.botUser.id,
      confidential: false,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      notes: [],
    });
    plantApp(stack.entra, { projectId: p.id, environment: "staging", path: HOSTILE_PATH, owners: [MALLORY] });
    stack.gitlab.scheduleDeletion(p.id);
    const snap = entraSnapshot(stack);
    const writes = stack.gitlab.stats.writes;
    const r = await postAsEvil("Project Hook", {
      event_name: "project_destroy",
      project_id: p.id,
      path_with_namespace: "evil/bait",
      name: "bait",
      path: "bait",
    });
    expect(r.status).toBe(202);
    await settled(stack);
    for (const text of botWritings()) expect(inertnessProblems(text)).toEqual([]);
    expect(stack.gitlab.stats.writes).toBe(writes);
    expect(entraSnapshot(stack)).toBe(snap);
    expect(await failures(stack)).toEqual([]);
  });

  it("a registry path that is not a GitLab path (hand-edited, older data) stays code in the retirement notice", async () => {
    const { project } = await stack.driver.createProject("team/registered", { members: { [alice.id]: 50 } });
    await settled(stack);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await redis.hset(`${stack.config.queuePrefix}:registry:project:${project.id}`, "path", HOSTILE_PATH);
    } finally {
      await redis.quit();
    }
    stack.gitlab.scheduleDeletion(project.id);
    const queue = stack.service.queues.maintenance;
    const job = await queue.add("drift-repair", {});
    await expect
      .poll(async () => ["completed", "failed"].includes(await queue.getJobState(job.id as string)), {
        timeout: 20_000,
        interval: 50,
      })
      .toBe(true);
    await settled(stack);
    const issue = stack.gitlab
      .project(project.id)
      ?.issues.find((i) => i.authorId === stack.gitlab.botUser.id);
    expect(issue?.description).toContain("are retired");
    expect(inertnessProblems(issue?.description ?? "")).toEqual([]);
    expect(await failures(stack)).toEqual([]);
  });
});

describe("a planted app's tags in /entra doctor", () => {
  it("doctor never names a look-alike app's client id, nor compares with its credentials", async () => {
    const { project } = await stack.driver.createProject("team/doctored", { members: { [alice.id]: 50 } });
    await settled(stack);
    // Mallory's app, tagged as this project's production identity, with a credential matching its pipelines:
    // were the developer told to use its client id, their production pipeline would log in as Mallory's app.
    const planted = plantApp(stack.entra, {
      projectId: project.id,
      environment: "production",
      path: "team/doctored",
      owners: [MALLORY],
    });
    planted.app.fics.push({
      id: randomUUID(),
      name: "zz-mallory",
      issuer: stack.gitlab.url,
      subject: "project_path:team/doctored:ref_type:branch:ref:main",
      audiences: ["api://AzureADTokenExchange"],
      description: null,
      claimsMatchingExpression: null,
      createdAtMs: Date.now() - 3_600_000,
    });
    const iid = stack.gitlab.project(project.id)?.issues[0]?.iid ?? 0;
    await stack.driver.comment(
      project.id,
      iid,
      alice.id,
      [
        "/entra doctor AADSTS700016: Application with identifier '00000000-0000-0000-0000-000000000000' was not found in the directory.",
        `"iss":"${stack.gitlab.url}"`,
        '"sub":"project_path:team/doctored:ref_type:branch:ref:main"',
        '"aud":"api://AzureADTokenExchange"',
      ].join("\n"),
    );
    await settled(stack);
    const reply = stack.gitlab
      .project(project.id)
      ?.issues[0]?.notes.filter((n) => n.authorId === stack.gitlab.botUser.id);
    const text = (reply ?? []).map((n) => n.body).join("\n");
    expect(text).toContain("doctor");
    expect(text).not.toContain(planted.app.appId);
    expect(text).not.toContain("zz-mallory");
    expect(await failures(stack)).toEqual([]);
  });
});

describe("a planted app's tags, under the default (project_id) subject layout", () => {
  let own: SandboxStack;
  beforeAll(async () => {
    own = await testStack("attack-tags-layout", {
      policyYaml: `
gitlab:
  audience: api://AzureADTokenExchange
onProjectCreate:
  environments: [staging]
environments:
  staging:
    refs: ["branch:main"]
    groups: ["${SANDBOX.stagingGroup}"]
    minAccessLevel: developer
`,
    });
  });
  afterAll(async () => {
    await own?.close();
  });

  it("do not make a rename of a project the bot never onboarded change its ID-token subject setting", async () => {
    // Created without any event reaching the bot (e.g. before it was installed): not onboarded. Its other
    // OIDC integrations (Vault, another cloud) trust GitLab's default `sub`.
    const project = own.gitlab.addProject({ path: "team/untouched", members: { [alice.id]: 50 } });
    const components = [...project.subClaimComponents];
    plantApp(own.entra, {
      projectId: project.id,
      environment: "staging",
      path: "team/untouched",
      owners: [MALLORY],
    });
    const writes = own.gitlab.stats.writes;
    // A legitimate rename: the system hook sends project_rename.
    await own.driver.renameProject(project.id, "team/renamed");
    await settled(own);
    expect(own.gitlab.project(project.id)?.subClaimComponents).toEqual(components);
    expect(own.gitlab.stats.writes).toBe(writes);
    expect(await failures(own)).toEqual([]);
  });
});
