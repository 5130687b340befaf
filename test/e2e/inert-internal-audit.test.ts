import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/onboarding/audit.ts";
import type { SimNote } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import { appFor, botNotes, issueOf, onboardingIssues, openIssue } from "../helpers/e2e.ts";
import { inertnessProblems } from "../helpers/gitlab-markdown-oracle.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Issue 14 replayed in the sandbox (real bot, GitLab and Entra simulators, the driver delivering webhooks):
 * the injection attempts produce inert notes; internal commands get internal answers only; token-shaped
 * usernames and environment names keep a complete audit trail, across a retry.
 */
let stack: SandboxStack;
const { alice, dave, rita, bot } = SANDBOX.users;
const mallory = { id: 7, username: "mallory", name: "Mallory (not a member)" };
const tokenUser = { id: 8, username: "glpat-abcdefghij1234567890", name: "Token-shaped username" };
const JWT_ENV = "review/eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eHh4eHh4eHgifQ.x";
let projectId = 0;

beforeAll(async () => {
  stack = await testStack("issue14", { env: { JOB_BACKOFF_MS: "50" } });
  stack.gitlab.addUser(mallory);
  stack.gitlab.addUser(tokenUser);
  projectId = stack.gitlab.addProject({
    path: "team/inert",
    visibility: "public",
    members: { [alice.id]: 40, [dave.id]: 30, [rita.id]: 20, [tokenUser.id]: 40 },
  }).id;
});
afterAll(async () => {
  await stack?.close();
});

async function say(iid: number, userId: number, text: string, opts: { internal?: boolean } = {}) {
  const { delivery } = await stack.driver.comment(projectId, iid, userId, text, opts);
  expect(delivery.status).toBe(202);
  await settled(stack);
}

function expectInert(notes: SimNote[], allowedReferences: string[] = []) {
  expect(notes.length).toBeGreaterThan(0);
  for (const n of notes) expect(inertnessProblems(n.body, { allowedReferences }), n.body).toEqual([]);
}

async function audit(): Promise<AuditRecord[]> {
  const res = await fetch(`${stack.service.url}/admin/audit?project=${projectId}&limit=500`, {
    headers: { Authorization: `Bearer ${stack.secrets.adminToken}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { records: AuditRecord[] }).records;
}

describe("the injection attempts of issue 14, replayed end to end", () => {
  it("a Reporter's doctor claims with quick actions and @all come back inert", async () => {
    const issue = openIssue(stack, projectId, rita.id, "login fails");
    await say(
      issue.iid,
      rita.id,
      '/entra doctor {"iss":"https://x\n/move mallory/exfil\n/confidential\n@all", "sub":"project_path:team/inert:ref_type:branch:ref:main", "aud":"api://AzureADTokenExchange"}',
    );
    const notes = botNotes(stack, projectId, issue.iid);
    expectInert(notes);
    expect(notes[0]?.body).toContain("/move mallory/exfil"); // shown, as text
    expect(await failures(stack)).toEqual([]);
  });

  it("a non-member's unknown word with a mention and an image gets no answer at all; a member's, an inert one", async () => {
    const issue = openIssue(stack, projectId, rita.id, "hello");
    await say(issue.iid, mallory.id, "/entra x`@all`![](https://evil/p.png)");
    // Help and unknown words are answered to project members only (issue 11): a stranger gets nothing.
    expect(botNotes(stack, projectId, issue.iid)).toEqual([]);
    await say(issue.iid, rita.id, "/entra x`@all`![](https://evil/p.png)");
    const notes = botNotes(stack, projectId, issue.iid);
    expectInert(notes);
    expect(notes[0]?.body).toContain("is not a command I know");
  });

  it("hostile environment names in a command are quoted inert in the refusal", async () => {
    const issue = openIssue(stack, projectId, rita.id, "envs");
    await say(issue.iid, dave.id, "/entra onboard @all,#1,![x](https://evil/p.png),<img/src=x>");
    expectInert(botNotes(stack, projectId, issue.iid));
  });
});

describe("internal in, internal out", () => {
  const COMMANDS: [string, number][] = [
    ["/entra help", dave.id],
    ["/entra onbaord", dave.id],
    ["/entra plan staging", dave.id],
    ["/entra onboard staging", dave.id],
    ["/entra status", dave.id],
    ["/entra snippet terraform staging", dave.id],
    ["/entra doctor iss: https://gitlab.example.com", dave.id],
    ["/entra onboard production", rita.id], // refused
    ["/entra offboard staging", dave.id],
  ];

  it("every command kind in an internal note is answered only with internal notes; public ones stay clean", async () => {
    const issue = openIssue(stack, projectId, alice.id, "internal work");
    // A public command first: the public status note exists and must never receive internal detail.
    await say(issue.iid, dave.id, "/entra help");
    const publicNote = botNotes(stack, projectId, issue.iid)[0];
    const publicBody = publicNote?.body;
    for (const [text, user] of COMMANDS) {
      const before = new Map(botNotes(stack, projectId, issue.iid).map((n) => [n.id, n.body]));
      await say(issue.iid, user, text, { internal: true });
      const touched = botNotes(stack, projectId, issue.iid).filter((n) => before.get(n.id) !== n.body);
      expect(touched.length, text).toBe(1);
      expect(
        touched.map((n) => n.internal),
        text,
      ).toEqual([true]);
      expectInert(touched);
      expect(publicNote?.body, text).toBe(publicBody);
    }
    // What an internal answer holds never reached a public note of the issue.
    const app = appFor(stack, projectId, "staging");
    for (const n of botNotes(stack, projectId, issue.iid).filter((x) => !x.internal)) {
      expect(n.body).not.toContain(SANDBOX.tenantId);
      expect(n.body).not.toMatch(/project_path:team\/inert/);
      if (app) expect(n.body).not.toContain(app.appId);
    }
    // The onboarding issue an internal command created is confidential.
    expect(onboardingIssues(stack, projectId).map((i) => i.confidential)).toEqual([true]);
    expect(await failures(stack)).toEqual([]);
  });

  it("a command on a confidential issue (Confidential Note Hook) is answered internally", async () => {
    const issue = openIssue(stack, projectId, alice.id, "secret", { confidential: true });
    await say(issue.iid, dave.id, "/entra status");
    const notes = botNotes(stack, projectId, issue.iid);
    expect(notes.map((n) => n.internal)).toEqual([true]);
  });
});

describe("token-shaped usernames and environment names keep a complete audit trail", () => {
  it("onboarding (first deployment of a JWT-shaped environment) and offboarding by a glpat-shaped user, across a retry", async () => {
    // First sight of the environment in a Deployment Hook: review/* is onboarded on first deployment.
    const delivery = await stack.driver.deploy(projectId, JWT_ENV, { user: tokenUser.id, ref: "develop" });
    expect(delivery.status).toBe(202);
    await settled(stack);
    const app = appFor(stack, projectId, JWT_ENV);
    expect(app).toBeDefined();

    // Someone added the identity to a group by hand: offboarding removes that membership first (write 1),
    // then its second write (deleting the FIC) fails once, so the job is retried after one write.
    const sp = [...stack.entra.state.servicePrincipals.values()].find((x) => x.appId === app?.appId);
    const group = stack.entra.state.groups.get(SANDBOX.stagingGroup);
    if (!sp || !group) throw new Error("no service principal or group");
    group.members.add(sp.id);
    const fic = [...(app?.fics.values() ?? [])][0] as { id: string } | undefined;
    expect(fic).toBeDefined();
    stack.entra.faults.failNext(1, 503, { pathIncludes: `/federatedIdentityCredentials/${fic?.id}` });
    const issue = openIssue(stack, projectId, alice.id, "remove review app");
    await say(issue.iid, tokenUser.id, "/entra offboard");
    expect(appFor(stack, projectId, JWT_ENV)).toBeUndefined();
    expect(await failures(stack)).toEqual([]);

    const records = await audit();
    const text = JSON.stringify(records);
    expect(text).not.toContain("abcdefghij1234567890");
    expect(text).not.toContain("eyJzdWIiOiJ4eHh4eHh4eHgifQ");

    // Entra writes carry their environment; the report's GitLab changes (issue, variables, note) do not.
    const series = (pred: (r: AuditRecord) => boolean) =>
      records.filter((r) => r.environment !== undefined && pred(r));
    const onboarding = series((r) => r.trigger.event.includes("Deployment"));
    const offboarding = series(
      (r) => r.trigger.event.includes("Note") && r.trigger.actor?.username === "[REDACTED: a GitLab token]",
    );
    for (const [name, rs] of [
      ["onboarding", onboarding],
      ["offboarding", offboarding],
    ] as const) {
      const intended = rs.filter((r) => r.outcome === "intended");
      const closing = rs.filter((r) => r.change.op === "observe");
      expect(intended.length, name).toBeGreaterThan(0);
      expect(
        closing.map((r) => r.outcome),
        name,
      ).toEqual(["ok"]);
      // The closing record comes after every intent of its series.
      const last = records.indexOf(closing[0] as AuditRecord);
      for (const r of intended) expect(records.indexOf(r), name).toBeLessThan(last);
      for (const r of rs) expect(r.environment, name).toBe("review/[REDACTED: a JWT]");
      expect(
        rs.every((r) => r.redacted?.includes("environment")),
        name,
      ).toBe(true);
    }
    // Attempt 1 announced all four writes and made the first (membership) before failing; the retry announced
    // and made the three left. The membership removal has no ok record of its own: the closing record of the
    // same event and environment settles it (entra-audit.ts).
    const kinds = (outcome: string) =>
      offboarding.filter((r) => r.outcome === outcome && r.change.op !== "observe").map((r) => r.change.kind);
    expect(kinds("intended")).toEqual([
      "groupMembership",
      "federatedIdentityCredential",
      "servicePrincipal",
      "application",
      "federatedIdentityCredential",
      "servicePrincipal",
      "application",
    ]);
    expect(kinds("ok")).toEqual(["federatedIdentityCredential", "servicePrincipal", "application"]);
    expect(group.members.has(sp.id)).toBe(false);
    expect(new Set(offboarding.map((r) => r.trigger.eventId)).size).toBe(1);
    expect(issueOf(stack, projectId, issue.iid).notes.some((n) => n.authorId === bot.id)).toBe(true);
  });
});
