import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Intent, Trigger } from "../../src/gitlab/intents.ts";
import type { AuditRecord } from "../../src/onboarding/audit.ts";
import { enqueueIntent } from "../../src/queue/enqueue.ts";
import type { SimIssue } from "../../src/sandbox/gitlab-sim.ts";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { SANDBOX } from "../../src/sandbox/stack.ts";
import {
  AUD,
  appFor,
  auditOf,
  entraSnapshot,
  exchange,
  metricValue,
  openIssue,
  statusNotes,
  subjectsOf,
} from "../helpers/e2e.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * Forged deliveries, sent with the INSTANCE webhook secret (the strongest one: the system hook's), each telling
 * the bot something GitLab's API contradicts. The bot re-reads what it acts on, so each one changes nothing:
 * the Entra simulator sees zero writes, every identity, credential and membership is byte-for-byte as before,
 * and the audit trail records what was refused or observed.
 */
let stack: SandboxStack;
const { alice, dave } = SANDBOX.users;
const mallory = { id: 7, username: "mallory", name: "Mallory (attacker)" };
const VICTIM = "victims/payments";
let victim = 0;
let attacker = 0;
let issue: SimIssue;
let otherIssue: SimIssue;

beforeAll(async () => {
  stack = await testStack("forged");
  stack.gitlab.addUser(mallory);
  const { project } = await stack.driver.createProject(VICTIM, {
    members: { [alice.id]: 40, [dave.id]: 30 },
  });
  victim = project.id;
  // The attacker's own project, whose main pipeline would get the victim's production token if a forged
  // rename were believed.
  attacker = stack.gitlab.addProject({ path: "mallory/tools", members: { [mallory.id]: 50 } }).id;
  await settled(stack);
  issue = openIssue(stack, victim, alice.id, "Deploy");
  otherIssue = openIssue(stack, victim, alice.id, "Something else");
  expect(await failures(stack)).toEqual([]);
  expect(subjectsOf(stack, victim, "production")).toEqual([
    `project_path:${VICTIM}:ref_type:branch:ref:main`,
  ]);
});
afterAll(async () => {
  await stack?.close();
});

const systemFields = (projectId: number, path: string) => ({
  created_at: "2026-11-26T10:00:00Z",
  updated_at: "2026-11-26T10:00:00Z",
  name: path.split("/").pop(),
  owner_email: "mallory@example.com",
  owner_name: "Mallory",
  owners: [{ name: "Mallory", email: "mallory@example.com" }],
  path: path.split("/").pop(),
  path_with_namespace: path,
  project_id: projectId,
  project_namespace_id: 61,
  project_visibility: "private",
});

/** Delivers with the instance secret, waits until the bot is idle, and returns what changed. */
async function forged(event: string, payload: unknown) {
  const before = entraSnapshot(stack);
  stack.entra.stats.reset();
  const gitlabWritesBefore = stack.gitlab.stats.writes;
  const auditBefore = (await auditOf(stack, victim)).length;
  const res = await stack.driver.send(event, payload);
  expect(res.status).toBe(202);
  await settled(stack);
  expect(await failures(stack)).toEqual([]);
  return {
    graphWrites: stack.entra.stats.writes(),
    gitlabWrites: stack.gitlab.stats.writes - gitlabWritesBefore,
    entraUnchanged: entraSnapshot(stack) === before,
    audit: (await auditOf(stack, victim)).slice(auditBefore),
  };
}

const deliveryRecords = (records: AuditRecord[]) => records.filter((r) => r.change.kind === "delivery");

/** The victim's production credential still works for the victim, and never for the attacker's pipeline. */
async function victimIntact() {
  expect(subjectsOf(stack, victim, "production")).toEqual([
    `project_path:${VICTIM}:ref_type:branch:ref:main`,
  ]);
  expect((await exchange(stack, victim, "production", "main")).status).toBe(200);
  const clientId = appFor(stack, victim, "production")?.appId as string;
  const attackerToken = await stack.gitlab.mintIdToken({
    projectId: attacker,
    ref: "main",
    refType: "branch",
    audience: AUD,
  });
  expect((await stack.entra.exchange({ clientId, assertion: attackerToken })).status).toBe(400);
}

describe("forged lifecycle deliveries with the instance secret", () => {
  it("project_rename naming the victim's project id with the attacker's path: nothing changes, observed", async () => {
    const r = await forged("System Hook", {
      event_name: "project_rename",
      ...systemFields(victim, "mallory/tools"),
      old_path_with_namespace: VICTIM,
    });
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(deliveryRecords(r.audit)).toEqual([
      expect.objectContaining({
        project: { id: victim, path: VICTIM },
        change: expect.objectContaining({ op: "observe", kind: "delivery" }),
        message: "path-mismatch",
      }),
    ]);
    await victimIntact();
  });

  it("project_transfer naming the victim's project id with the attacker's path: nothing changes, observed", async () => {
    const r = await forged("System Hook", {
      event_name: "project_transfer",
      ...systemFields(victim, "mallory/payments"),
      old_path_with_namespace: VICTIM,
    });
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(deliveryRecords(r.audit).map((a) => [a.change.op, a.message])).toEqual([
      ["observe", "path-mismatch"],
    ]);
    await victimIntact();
  });

  it("project_destroy of a project GitLab still has: refused, counted, audited; the identities stay", async () => {
    const counted = await metricValue(stack, "geb_deliveries_refused_total", {
      stage: "worker",
      reason: "destroy-not-confirmed",
    });
    const r = await forged("System Hook", { event_name: "project_destroy", ...systemFields(victim, VICTIM) });
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(deliveryRecords(r.audit)).toEqual([
      expect.objectContaining({
        outcome: "refused",
        change: expect.objectContaining({
          op: "refuse",
          kind: "delivery",
          target: "System Hook/project_destroy",
        }),
        message: "destroy-not-confirmed",
      }),
    ]);
    expect(
      await metricValue(stack, "geb_deliveries_refused_total", {
        stage: "worker",
        reason: "destroy-not-confirmed",
      }),
    ).toBe(counted + 1);
    await victimIntact();
  });

  it("group_rename and user_rename with invented paths: every project is re-read, nothing moves", async () => {
    const group = await forged("System Hook", {
      event_name: "group_rename",
      created_at: "2026-11-26T10:00:00Z",
      updated_at: "2026-11-26T10:00:00Z",
      name: "mallory",
      path: "mallory",
      full_path: "mallory",
      group_id: 4242,
      old_path: "victims",
      old_full_path: "victims",
    });
    expect(group).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(deliveryRecords(group.audit).map((a) => [a.change.op, a.message])).toEqual([
      ["observe", "path-mismatch"],
    ]);

    const user = await forged("System Hook", {
      event_name: "user_rename",
      created_at: "2026-11-26T10:00:00Z",
      updated_at: "2026-11-26T10:00:00Z",
      name: "Victims",
      email: "v@example.com",
      user_id: 4243,
      username: "mallory",
      old_username: "victims",
    });
    expect(user).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });

    const nowhere = await forged("System Hook", {
      event_name: "group_rename",
      name: "x",
      path: "x",
      full_path: "mallory/x",
      group_id: 4244,
      old_path: "nobody",
      old_full_path: "nobody-here",
    });
    expect(nowhere).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    await victimIntact();
  });
});

describe("forged Note Hooks with the instance secret: the command is the note as GitLab's API has it", () => {
  it("the payload says a Maintainer wrote it, GitLab says a Developer did: authorised as the Developer", async () => {
    // Dave (Developer) really wrote it; offboarding production needs Maintainer. Believed as Alice's, it would
    // delete the production identity.
    const note = stack.gitlab.addUserNote(victim, issue.iid, dave.id, "/entra offboard production");
    const r = await forged(
      "Note Hook",
      noteHook({ noteId: note.id, authorId: alice.id, text: "/entra offboard production" }),
    );
    expect(r.graphWrites).toBe(0);
    expect(r.entraUnchanged).toBe(true);
    const reply = statusNotes(stack, victim, issue.iid)[0]?.body ?? "";
    expect(reply).toMatch(/needs the Maintainer role .*your role is Developer/);
    const observed = deliveryRecords(r.audit);
    expect(observed.map((a) => [a.change.op, a.message])).toEqual([["observe", "author-mismatch"]]);
    // The reply's audit records name the real author, not the claimed one.
    expect(
      r.audit.filter((a) => a.change.kind === "note").every((a) => a.trigger.actor?.id === dave.id),
    ).toBe(true);
    await victimIntact();
  });

  it("the payload's text holds /entra offboard production, the note GitLab has does not: nothing happens", async () => {
    const note = stack.gitlab.addUserNote(victim, issue.iid, alice.id, "thanks, looks good");
    const notesBefore = statusNotes(stack, victim, issue.iid).map((n) => n.body);
    const r = await forged(
      "Note Hook",
      noteHook({ noteId: note.id, authorId: alice.id, text: "/entra offboard production" }),
    );
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(statusNotes(stack, victim, issue.iid).map((n) => n.body)).toEqual(notesBefore);
    expect(deliveryRecords(r.audit).map((a) => [a.change.op, a.message])).toEqual([
      ["observe", "body-mismatch"],
    ]);
    await victimIntact();
  });

  it("the note id belongs to another issue: refused, nothing answered", async () => {
    const elsewhere = stack.gitlab.addUserNote(
      victim,
      otherIssue.iid,
      alice.id,
      "/entra offboard production",
    );
    const r = await forged(
      "Note Hook",
      noteHook({ noteId: elsewhere.id, authorId: alice.id, text: "/entra offboard production" }),
    );
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(deliveryRecords(r.audit)).toEqual([
      expect.objectContaining({ outcome: "refused", message: "note-not-found" }),
    ]);
    expect(statusNotes(stack, victim, otherIssue.iid)).toEqual([]);
    await victimIntact();
  });
});

/** A Note Hook claiming note `noteId` on the victim's issue (GitLab itself is not changed). */
function noteHook(claim: { noteId: number; authorId: number; text: string }) {
  return stack.driver.notePayload(victim, issue.iid, claim).payload;
}

describe("a namespace-bound job is bounded by GitLab's path, not the payload's", () => {
  const trigger = (namespace: string): Trigger => ({
    event: "Project Hook/project_create",
    eventId: `ns-${randomUUID()}`,
    receivedAt: new Date().toISOString(),
    source: { kind: "namespace", namespace },
    signed: false,
  });

  async function enqueue(intent: Intent, namespace: string) {
    const before = entraSnapshot(stack);
    stack.entra.stats.reset();
    const gitlabWritesBefore = stack.gitlab.stats.writes;
    const auditBefore = (await auditOf(stack, victim)).length;
    await enqueueIntent(stack.service.queues.events, intent, trigger(namespace), undefined);
    await settled(stack);
    expect(await failures(stack)).toEqual([]);
    return {
      graphWrites: stack.entra.stats.writes(),
      gitlabWrites: stack.gitlab.stats.writes - gitlabWritesBefore,
      entraUnchanged: entraSnapshot(stack) === before,
      audit: (await auditOf(stack, victim)).slice(auditBefore),
    };
  }

  it("a project GitLab places outside the namespace (the payload claims inside): refused, nothing written", async () => {
    // Re-onboarding the victim would re-apply a policy the attacker might have changed nothing about, so take a
    // project the bot has not onboarded yet: onboarding it would be a write.
    const fresh = stack.gitlab.addProject({ path: "victims/ledger", members: { [alice.id]: 40 } }).id;
    for (const namespace of ["mallory", "victim", "victims/pay"]) {
      const r = await enqueue(
        { type: "project.created", project: { id: fresh, path: "mallory/ledger" }, source: "group-hook" },
        namespace,
      );
      expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
      expect(appFor(stack, fresh, "staging")).toBeUndefined();
      const records = await auditOf(stack, fresh);
      expect(records.at(-1)).toMatchObject({
        outcome: "refused",
        change: { op: "refuse", kind: "delivery" },
        message: "outside-namespace",
      });
    }

    // Control: the same job vouched for by the project's own namespace (any letter case) is acted on.
    await enqueue(
      { type: "project.created", project: { id: fresh, path: "victims/ledger" }, source: "group-hook" },
      "VICTIMS",
    );
    expect(appFor(stack, fresh, "staging")).toBeDefined();
  });

  it("a first deployment sourced from another namespace: refused, nothing onboarded", async () => {
    const web = stack.gitlab.addProject({ path: "victims/web", members: { [alice.id]: 40 } }).id;
    const r = await enqueue(
      {
        type: "environment.seen",
        project: { id: web, path: "mallory/web" },
        environments: [{ name: "review/x" }],
        source: "deployment",
      },
      "mallory",
    );
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(appFor(stack, web, "review/x")).toBeUndefined();
    expect((await auditOf(stack, web)).at(-1)).toMatchObject({
      outcome: "refused",
      message: "outside-namespace",
    });
  });

  it("a command sourced from another namespace: refused before anything is answered", async () => {
    const note = stack.gitlab.addUserNote(victim, issue.iid, alice.id, "/entra offboard production");
    const r = await enqueue(
      {
        type: "command",
        project: { id: victim, path: "mallory/payments" },
        issueIid: issue.iid,
        noteId: note.id,
        author: { id: alice.id, username: alice.username },
        line: "/entra offboard production",
        confidential: false,
      },
      "mallory",
    );
    expect(r).toMatchObject({ graphWrites: 0, gitlabWrites: 0, entraUnchanged: true });
    expect(deliveryRecords(r.audit).at(-1)).toMatchObject({
      outcome: "refused",
      message: "outside-namespace",
    });
    await victimIntact();
  });
});
