import { randomUUID } from "node:crypto";
import { EntraError, notFoundNames } from "../entra/errors.ts";
import type { GraphApi, GraphApplication, GraphFic, GraphServicePrincipal } from "../entra/graph.ts";
import {
  environmentTag,
  isRetired,
  parseIdentityTags,
  projectTag,
  RETIRED_TAG,
  retiredOnTag,
} from "./naming.ts";
import type { DesiredFic, IdentityPlan } from "./planner.ts";
import { describeOwners, type IdentityPin, type PinStore, soleOwner } from "./registry.ts";
import { pinTime, type ReplicationWait, replicationWait, untilReplicated } from "./replication.ts";
import type { Change, IdentityRecord } from "./types.ts";

export type Mode = "apply" | "plan";

/** An app tagged like one of the bot's identities that the bot does not own alone: never used, reported. */
export interface OwnershipCollision {
  projectId: number;
  environment: string;
  /** Object id of the app registration. */
  objectId: string;
  /** Who owns it, e.g. "user 5b31…, the bot". */
  owners: string;
  /** The identity's own pinned app gained another owner or lost the bot (rather than a look-alike). */
  pinned: boolean;
}

export interface ReconcileOptions {
  mode: Mode;
  /** Object id of the bot's own service principal (BotServicePrincipal). */
  botSpId: string;
  /** Where this identity's object ids are pinned (the registry). */
  pins: PinStore;
  /** Groups some current policy rule names (managed-groups.ts): the only ones the bot removes memberships from. */
  managedGroups: ReadonlySet<string>;
  /** Apps the caller found by this project's tag: only ever checked and reported, never used. */
  tagged?: readonly GraphApplication[];
  replication?: Partial<ReplicationWait>;
  log?: (line: string) => void;
  onCollision?: (c: OwnershipCollision) => void;
  /**
   * Apply mode: awaited right before each Entra write with the change it is about to make (the audit's
   * "intended" record, entra-audit.ts), so the intent is on record before the write without a second plan.
   */
  beforeWrite?: (change: Change) => Promise<void>;
}

export interface ReconcileResult {
  /** Undefined in plan mode when the app does not exist yet, and when refused. */
  identity?: IdentityRecord;
  changes: Change[];
  /** Set when the identity's own app is no longer the bot's alone: nothing was written. Operator-facing. */
  refused?: string;
}

/** Changes that are reports, not writes: they never make an outcome "changed". */
export const isWrite = (c: Change): boolean => c.op !== "refuse" && c.op !== "observe";

const sameFic = (have: GraphFic, want: DesiredFic) =>
  have.issuer === want.issuer &&
  have.subject === want.subject &&
  have.audiences.length === want.audiences.length &&
  have.audiences.every((a, i) => a === want.audiences[i]);

const sameTags = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((t, i) => t === [...b].sort()[i]);

const iso = (ms: number) => new Date(ms).toISOString();

/** Apps among a project's tag-search results that are tagged for this environment. */
function taggedFor(
  tagged: readonly GraphApplication[],
  projectId: number,
  environment: string,
): GraphApplication[] {
  return tagged
    .filter((a) => {
      const t = parseIdentityTags(a.tags);
      return t?.projectId === projectId && t.environment === environment;
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}

/** The apps a tag search says belong to a project: a hint for reports, never a source of identities. */
export async function taggedApps(graph: GraphApi, projectId: number): Promise<GraphApplication[]> {
  const apps = await graph.listApplicationsByTag(projectTag(projectId));
  return apps.filter((a) => parseIdentityTags(a.tags)?.projectId === projectId);
}

/** Owners of an app, or undefined when it vanished since the list that named it. */
async function ownersOf(graph: GraphApi, appId: string) {
  try {
    return await graph.listApplicationOwners(appId);
  } catch (err) {
    if (err instanceof EntraError && err.code === "GRAPH_NOT_FOUND") return undefined;
    throw err;
  }
}

/**
 * Look-alikes: apps tagged as this identity that are not its pinned app. None is ever used; each is reported
 * (a refusal when someone else owns it, an observation when it is the bot's own unpinned leftover).
 */
async function reportLookAlikes(
  graph: GraphApi,
  plan: Pick<IdentityPlan, "projectId" | "environment">,
  opts: ReconcileOptions,
  ownAppId: string | undefined,
  changes: Change[],
): Promise<void> {
  const env = plan.environment;
  for (const app of taggedFor(opts.tagged ?? [], plan.projectId, env)) {
    if (app.id === ownAppId) continue;
    const owners = await ownersOf(graph, app.id);
    if (!owners) continue;
    if (soleOwner(owners, opts.botSpId)) {
      changes.push({
        op: "observe",
        kind: "application",
        target: app.id,
        objectId: app.id,
        detail:
          "the bot's own app, but not pinned for this identity (left by a lost registry?): not used; run npm run registry:rebuild, or delete it",
      });
      opts.log?.(
        `${env}: app registration ${app.id} is the bot's but not this identity's pinned app: not used`,
      );
      continue;
    }
    const who = describeOwners(owners, opts.botSpId);
    changes.push({
      op: "refuse",
      kind: "application",
      target: app.id,
      objectId: app.id,
      detail: `tagged ${projectTag(plan.projectId)} ${environmentTag(env)} but owned by ${who}: not the bot's, never used or written to`,
    });
    opts.log?.(
      `${env}: ownership collision: app registration ${app.id} carries this identity's tags but is owned by ${who}; the bot does not use it and left it untouched`,
    );
    opts.onCollision?.({
      projectId: plan.projectId,
      environment: env,
      objectId: app.id,
      owners: who,
      pinned: false,
    });
  }
}

/**
 * Converges one (project, environment) identity to its plan. Only the app the registry pins is managed, read by
 * id, and only while the bot's service principal is its sole owner; a new one is created (and pinned as the
 * create happens) when there is none. Idempotent: an already-correct identity costs five reads (app, owners,
 * service principal, FICs, memberOf) and no writes; in plan mode it reads the same way and returns the writes it
 * would make. Callers hold the identity lock (lock.ts) so no two runs create the same app.
 */
export async function reconcileIdentity(
  graph: GraphApi,
  plan: IdentityPlan,
  opts: ReconcileOptions,
): Promise<ReconcileResult> {
  const apply = opts.mode === "apply";
  const wait = replicationWait(opts.replication);
  const log = opts.log;
  const env = plan.environment;
  const me = opts.botSpId;
  const changes: Change[] = [];
  const young = (t: number | undefined) => t !== undefined && wait.now() - t < wait.windowMs;
  /** Records the change; in apply mode announces it (beforeWrite) and reports whether to write it now. */
  const intend = async (change: Change): Promise<boolean> => {
    changes.push(change);
    if (!apply) return false;
    await opts.beforeWrite?.(change);
    return true;
  };

  let pin: IdentityPin = (await opts.pins.get()) ?? { environment: env, displayName: plan.displayName };
  const savePin = async (next: IdentityPin) => {
    pin = next;
    if (apply) await opts.pins.save(next);
  };

  // 1. App registration: the pinned one, read by id. A tag search never supplies it.
  let app: GraphApplication | null = null;
  let createdApp = false;
  let appCreatedAt = pinTime(pin.appCreatedAt);
  if (pin.appObjectId) {
    const id = pin.appObjectId;
    app = await graph.getApplication(id);
    if (!app && young(appCreatedAt)) {
      // Just created by the bot, yet not found by id: give Entra's replication its window before concluding
      // that someone deleted it (a new app too early would be a duplicate).
      const gone = new EntraError({ code: "GRAPH_NOT_FOUND", message: `app registration ${id} not found` });
      app = await untilReplicated(
        wait,
        {
          what: `app registration ${id}`,
          createdAt: appCreatedAt,
          isLag: (e) => e.code === "GRAPH_NOT_FOUND",
          otherwise: () => gone,
        },
        log,
        async () => {
          const got = await graph.getApplication(id);
          if (!got) throw gone;
          return got;
        },
      ).catch((err: unknown) => {
        if (err === gone) return null;
        throw err;
      });
    }
    if (!app) {
      log?.(
        `${env}: the pinned app registration ${id} no longer exists in Entra (deleted outside the bot); ${apply ? "creating" : "would create"} a new one`,
      );
      pin = { environment: env, displayName: plan.displayName };
      appCreatedAt = undefined;
    }
  } else if (pin.uniqueName && !apply) {
    // An earlier attempt recorded its intent and may have created the app before it died.
    app = await graph.getApplicationByUniqueName(pin.uniqueName);
  }

  if (!app) {
    if (!apply) {
      changes.push({ op: "create", kind: "application", target: plan.displayName });
      changes.push({ op: "create", kind: "servicePrincipal", target: plan.displayName });
      for (const f of plan.fics) {
        changes.push({
          op: "create",
          kind: "federatedIdentityCredential",
          target: f.name,
          detail: f.subject,
        });
      }
      for (const g of plan.groups) changes.push({ op: "add", kind: "groupMembership", target: g });
      await reportLookAlikes(graph, plan, opts, undefined, changes);
      return { changes };
    }
    await intend({ op: "create", kind: "application", target: plan.displayName });
    // The intent first: a job that dies after Graph created the app but before it heard back repeats the same
    // upsert on its next attempt and gets that app back (204), never a second one.
    if (!pin.uniqueName) {
      await savePin({
        environment: env,
        displayName: plan.displayName,
        uniqueName: `gitlab-entra-bot-${randomUUID()}`,
        intentAt: iso(wait.now()),
      });
    }
    const uniqueName = pin.uniqueName as string;
    const up = await graph.upsertApplication(uniqueName, { displayName: plan.displayName, tags: plan.tags });
    app = up.app;
    createdApp = up.created;
    appCreatedAt = up.created ? wait.now() : pinTime(pin.intentAt);
    // The object id is recorded the moment Graph returns it, before anything else can fail.
    await savePin({
      ...pin,
      appObjectId: app.id,
      appId: app.appId,
      ...(appCreatedAt !== undefined ? { appCreatedAt: iso(appCreatedAt) } : {}),
    });
    changes[0] = {
      op: "create",
      kind: "application",
      target: plan.displayName,
      objectId: app.id,
      ...(up.created
        ? {}
        : { detail: "created by an earlier attempt that did not record it; found by its uniqueName" }),
    };
    if (!up.created)
      log?.(
        `${env}: found app registration ${app.id}, created by an earlier attempt (uniqueName ${uniqueName})`,
      );
  }

  // Ownership, from Graph, for every app the bot did not create in this very run.
  if (!createdApp) {
    const owners = await graph.listApplicationOwners(app.id);
    if (!soleOwner(owners, me)) {
      const who = describeOwners(owners, me);
      changes.push({
        op: "refuse",
        kind: "application",
        target: app.id,
        objectId: app.id,
        detail: `this identity's pinned app, now owned by ${who}: the bot no longer writes to it`,
      });
      opts.onCollision?.({
        projectId: plan.projectId,
        environment: env,
        objectId: app.id,
        owners: who,
        pinned: true,
      });
      const refused = `app registration ${app.id} (client id ${app.appId}) is this identity's app, but it is now owned by ${who}. The bot never writes to an app it does not own alone, so it left the app, its federated credentials and group memberships as they are. Whoever owns it can add a secret and log in as this identity: have an Entra administrator remove the other owners (or delete the app and run /entra onboard for a new identity)`;
      log?.(`${env}: refused: ${refused}`);
      await reportLookAlikes(graph, plan, opts, app.id, changes);
      return { changes, refused };
    }
    if (app.displayName !== plan.displayName || !sameTags(app.tags, plan.tags)) {
      const write = await intend({
        op: "update",
        kind: "application",
        target: plan.displayName,
        objectId: app.id,
        detail: app.displayName !== plan.displayName ? `renamed from ${app.displayName}` : "tags",
      });
      if (write) await graph.updateApplication(app.id, { displayName: plan.displayName, tags: plan.tags });
    }
  }
  const appRef = app;

  // 2. Service principal: the pinned one by id, else by its app (a just-created app certainly has none).
  let sp: GraphServicePrincipal | null = null;
  let spCreatedAt = pinTime(pin.spCreatedAt) ?? appCreatedAt;
  if (!createdApp) {
    if (pin.spObjectId) {
      sp = await graph.getServicePrincipal(pin.spObjectId);
      if (sp && sp.appId !== appRef.appId) sp = null;
    }
    sp ??= await graph.getServicePrincipalByAppId(appRef.appId);
  }
  let createdSp = false;
  if (!sp) {
    if (await intend({ op: "create", kind: "servicePrincipal", target: plan.displayName })) {
      const up = await untilReplicated(
        wait,
        {
          what: `app registration ${appRef.id} (client id ${appRef.appId}) before its service principal can be created`,
          createdAt: appCreatedAt,
          isLag: (e) => e.code === "GRAPH_NOT_REPLICATED" || e.code === "GRAPH_NOT_FOUND",
          otherwise: (e, age) =>
            age !== undefined
              ? undefined
              : new EntraError({
                  code: "GRAPH_INVALID",
                  permanent: true,
                  ...(e.status !== undefined ? { status: e.status } : {}),
                  ...(e.graphCode !== undefined ? { graphCode: e.graphCode } : {}),
                  ...(e.requestId !== undefined ? { requestId: e.requestId } : {}),
                  message: `Graph refused to create the service principal of app registration ${appRef.id} (client id ${appRef.appId}): ${e.graphCode ?? e.code}: ${e.graphMessage ?? e.message}. The bot did not create this app recently, so this is not Entra's replication delay: check that the app registration still exists and that the bot's service principal owns it`,
                }),
        },
        log,
        () => graph.upsertServicePrincipal(appRef.appId, plan.tags),
      );
      sp = up.sp;
      createdSp = up.created;
      if (up.created) spCreatedAt = wait.now();
      await savePin({
        ...pin,
        spObjectId: sp.id,
        ...(spCreatedAt !== undefined ? { spCreatedAt: iso(spCreatedAt) } : {}),
      });
      (changes.at(-1) as Change).objectId = sp.id;
    }
  }

  // A retired identity whose project is back (restored, or onboarded again): its principal was disabled.
  if (sp && sp.accountEnabled === false) {
    const write = await intend({
      op: "update",
      kind: "servicePrincipal",
      target: plan.displayName,
      objectId: sp.id,
      detail: "enabled again",
    });
    if (write) await graph.setServicePrincipalEnabled(sp.id, true);
  }

  // 3. Federated credentials: deletes first, so a desired issuer+subject never collides with a stale one.
  const appFresh = young(appCreatedAt);
  const onApp = <T>(fn: () => Promise<T>): Promise<T> =>
    appFresh
      ? untilReplicated(
          wait,
          {
            what: `app registration ${appRef.id}`,
            createdAt: appCreatedAt,
            isLag: (e) => e.code === "GRAPH_NOT_FOUND",
            otherwise: (e) => e,
          },
          log,
          fn,
        )
      : fn();
  const current = createdApp ? [] : await onApp(() => graph.listFederatedCredentials(appRef.id));
  const wanted = new Map(plan.fics.map((f) => [f.name, f]));
  for (const have of current) {
    if (wanted.has(have.name)) continue;
    const write = await intend({
      op: "delete",
      kind: "federatedIdentityCredential",
      target: have.name,
      objectId: have.id,
      detail: have.subject ?? undefined,
    });
    if (write) await graph.deleteFederatedCredential(appRef.id, have.id);
  }
  for (const want of plan.fics) {
    const have = current.find((f) => f.name === want.name);
    if (have && sameFic(have, want)) continue;
    const write = await intend({
      op: have ? "update" : "create",
      kind: "federatedIdentityCredential",
      target: want.name,
      detail: have ? `${have.subject ?? "(expression)"} -> ${want.subject}` : want.subject,
    });
    if (write) {
      const spec = { issuer: want.issuer, subject: want.subject, audiences: want.audiences };
      await onApp(() =>
        graph.upsertFederatedCredential(appRef.id, want.name, {
          ...spec,
          description: want.description ?? "",
        }),
      );
    }
  }

  // 4. Group memberships, read from the principal's side (v1.0 group member lists omit principals).
  const spFresh = young(spCreatedAt);
  const spLabel = sp ? `service principal ${sp.id} (client id ${appRef.appId})` : "";
  const memberOf =
    createdSp || !sp
      ? []
      : await (spFresh
          ? untilReplicated(
              wait,
              {
                what: spLabel,
                createdAt: spCreatedAt,
                isLag: (e) => e.code === "GRAPH_NOT_FOUND",
                otherwise: (e) => e,
              },
              log,
              () => graph.listGroupMemberships((sp as GraphServicePrincipal).id),
            )
          : graph.listGroupMemberships(sp.id));
  const haveGroups = new Set(memberOf.map((g) => g.toLowerCase()));
  const wantGroups = new Set(plan.groups.map((g) => g.toLowerCase()));
  for (const g of plan.groups) {
    if (haveGroups.has(g.toLowerCase())) continue;
    const write = await intend({ op: "add", kind: "groupMembership", target: g, objectId: sp?.id });
    if (write && sp) {
      const spId = sp.id;
      try {
        await untilReplicated(
          wait,
          {
            what: spLabel,
            createdAt: spCreatedAt,
            // The answer names the missing object: the group is a policy error, the new principal is replication.
            isLag: (e) => e.code === "GRAPH_NOT_FOUND" && !notFoundNames(e, g),
            otherwise: (e, age) =>
              age !== undefined
                ? undefined
                : memberAddNotFound(e, { group: g, spId, appId: appRef.appId, where: plan.where }),
          },
          log,
          () => graph.addGroupMember(g, spId),
        );
      } catch (err) {
        if (err instanceof EntraError && notFoundNames(err, g)) throw groupMissing(err, g, plan.where);
        throw err;
      }
    }
  }
  for (const g of memberOf) {
    if (wantGroups.has(g.toLowerCase())) continue;
    if (!opts.managedGroups.has(g.toLowerCase())) {
      // Someone else's grant, or a group the policy stopped naming: report it, never remove it.
      changes.push({
        op: "observe",
        kind: "groupMembership",
        target: g,
        objectId: sp?.id,
        detail:
          "member of a group no policy rule names: left alone (the bot removes memberships only in groups the policy names)",
      });
      log?.(
        `${env}: ${spLabel} is a member of group ${g}, which no policy rule names: reported, not removed`,
      );
      continue;
    }
    const write = await intend({ op: "remove", kind: "groupMembership", target: g, objectId: sp?.id });
    if (write && sp) await graph.removeGroupMember(g, sp.id);
  }

  await reportLookAlikes(graph, plan, opts, appRef.id, changes);

  if (!sp) return { changes };
  const identity: IdentityRecord = {
    environment: env,
    appObjectId: appRef.id,
    appId: appRef.appId,
    spObjectId: sp.id,
    displayName: plan.displayName,
  };
  if (apply) {
    await savePin({
      ...pin,
      environment: env,
      displayName: plan.displayName,
      appObjectId: appRef.id,
      appId: appRef.appId,
      spObjectId: sp.id,
    });
  }
  return { identity, changes };
}

function groupMissing(err: EntraError, group: string, where: string): EntraError {
  return new EntraError({
    code: "GRAPH_NOT_FOUND",
    permanent: true,
    ...(err.status !== undefined ? { status: err.status } : {}),
    ...(err.graphCode !== undefined ? { graphCode: err.graphCode } : {}),
    ...(err.requestId !== undefined ? { requestId: err.requestId } : {}),
    message: `group ${group} (policy key ${where}.groups) does not exist in the tenant; fix the group object id in the policy. ${err.message}`,
  });
}

/** A 404 on a group add for a principal the bot did not create recently: say which object Graph named. */
function memberAddNotFound(
  err: EntraError,
  ctx: { group: string; spId: string; appId: string; where: string },
): EntraError {
  const named = notFoundNames(err, ctx.spId);
  return new EntraError({
    code: "GRAPH_NOT_FOUND",
    permanent: true,
    ...(err.status !== undefined ? { status: err.status } : {}),
    ...(err.graphCode !== undefined ? { graphCode: err.graphCode } : {}),
    ...(err.requestId !== undefined ? { requestId: err.requestId } : {}),
    message: named
      ? `Graph answered that service principal ${ctx.spId} (client id ${ctx.appId}) does not exist while adding it to group ${ctx.group}, though the bot read it moments before and did not create it recently (so this is not replication delay). Retry the job; if it persists, check the principal in Entra. ${err.message}`
      : `group ${ctx.group} (policy key ${ctx.where}.groups) or service principal ${ctx.spId} does not exist: Graph did not say which. Check the group object id in the policy. ${err.message}`,
  });
}

export interface OffboardIdentityOptions {
  mode: Mode;
  botSpId: string;
  projectId: number;
  environment: string;
  pin: IdentityPin | undefined;
  managedGroups: ReadonlySet<string>;
  tagged?: readonly GraphApplication[];
  log?: (line: string) => void;
  onCollision?: (c: OwnershipCollision) => void;
  /** Retire (retireApp) instead of delete: the project is gone or its path freed, the app is kept disabled. */
  retire?: { now: Date };
}

/**
 * Removes one identity: the pinned app and, failing closed, any unpinned app tagged for it that the bot alone
 * owns (left by a lost registry: stale credentials on a reusable path are a takeover risk). An app anyone else
 * owns is never touched, pinned or not: it is reported instead.
 */
export async function offboardIdentity(
  graph: GraphApi,
  opts: OffboardIdentityOptions,
): Promise<{ changes: Change[]; refused?: string }> {
  const { pin, environment: env } = opts;
  const pinned = pin?.appObjectId
    ? await graph.getApplication(pin.appObjectId)
    : pin?.uniqueName
      ? await graph.getApplicationByUniqueName(pin.uniqueName)
      : null;
  const candidates = taggedFor(opts.tagged ?? [], opts.projectId, env).filter((a) => a.id !== pinned?.id);
  const changes: Change[] = [];
  let refused: string | undefined;
  for (const app of [...(pinned ? [pinned] : []), ...candidates]) {
    const owners = await ownersOf(graph, app.id);
    if (!owners) continue;
    if (soleOwner(owners, opts.botSpId)) {
      changes.push(
        ...(await (opts.retire
          ? retireApp(graph, app, { ...opts, now: opts.retire.now })
          : offboardApp(graph, app, opts))),
      );
      continue;
    }
    const who = describeOwners(owners, opts.botSpId);
    const isPinned = app.id === pinned?.id;
    changes.push({
      op: "refuse",
      kind: "application",
      target: app.id,
      objectId: app.id,
      detail: isPinned
        ? `this identity's pinned app, now owned by ${who}: not removed by the bot`
        : `tagged ${projectTag(opts.projectId)} ${environmentTag(env)} but owned by ${who}: not the bot's, left untouched`,
    });
    opts.onCollision?.({
      projectId: opts.projectId,
      environment: env,
      objectId: app.id,
      owners: who,
      pinned: isPinned,
    });
    opts.log?.(`${env}: app registration ${app.id} is owned by ${who}: the bot does not touch it`);
    if (isPinned) {
      refused = `app registration ${app.id} (client id ${app.appId}) was this identity's app but is now owned by ${who}: the bot never writes to an app it does not own alone, so it did not remove it or its federated credentials. An Entra administrator must delete it`;
    }
  }
  return { changes, ...(refused ? { refused } : {}) };
}

/**
 * Removes one app the bot owns completely: memberships first (access goes at once), then FICs (no more
 * logins), then the service principal and the app. Memberships in groups no policy rule names end with the
 * principal's deletion; the bot does not remove them one by one (it has no business in those groups).
 */
export async function offboardApp(
  graph: GraphApi,
  app: GraphApplication,
  opts: { mode: Mode; managedGroups: ReadonlySet<string> },
): Promise<Change[]> {
  const apply = opts.mode === "apply";
  const changes: Change[] = [];
  const sp = await graph.getServicePrincipalByAppId(app.appId);
  if (sp) {
    for (const g of await graph.listGroupMemberships(sp.id)) {
      if (!opts.managedGroups.has(g.toLowerCase())) {
        changes.push({
          op: "observe",
          kind: "groupMembership",
          target: g,
          objectId: sp.id,
          detail: "member of a group no policy rule names: ends with the service principal's deletion",
        });
        continue;
      }
      changes.push({ op: "remove", kind: "groupMembership", target: g, objectId: sp.id });
      if (apply) await graph.removeGroupMember(g, sp.id);
    }
  }
  for (const f of await graph.listFederatedCredentials(app.id)) {
    changes.push({ op: "delete", kind: "federatedIdentityCredential", target: f.name, objectId: f.id });
    if (apply) await graph.deleteFederatedCredential(app.id, f.id);
  }
  if (sp) {
    changes.push({ op: "delete", kind: "servicePrincipal", target: app.displayName, objectId: sp.id });
    if (apply) await graph.deleteServicePrincipal(sp.id);
  }
  changes.push({ op: "delete", kind: "application", target: app.displayName, objectId: app.id });
  if (apply) await graph.deleteApplication(app.id);
  return changes;
}

/** Tag search, for read-only diagnosis (doctor) only: a tagged app is not proof of anything. */
export async function findIdentityApps(
  graph: GraphApi,
  projectId: number,
  environment?: string,
): Promise<GraphApplication[]> {
  const apps = await taggedApps(graph, projectId);
  return environment === undefined
    ? apps.sort((a, b) => a.id.localeCompare(b.id))
    : taggedFor(apps, projectId, environment);
}

/**
 * Retires one app the bot owns, whose project is gone or no longer owns its path: federated credentials first
 * (no pipeline can log in from the next request on), then the service principal is disabled (Entra issues no
 * token at all, whatever credential), then memberships in groups the policy names are removed (others are
 * reported, as offboardApp does). The app and principal stay, tagged retired with the date, for the audit trail
 * until drift repair deletes them after the retention period. Idempotent.
 */
export async function retireApp(
  graph: GraphApi,
  app: GraphApplication,
  opts: { mode: Mode; managedGroups: ReadonlySet<string>; now: Date },
): Promise<Change[]> {
  const apply = opts.mode === "apply";
  const changes: Change[] = [];
  for (const f of await graph.listFederatedCredentials(app.id)) {
    changes.push({
      op: "delete",
      kind: "federatedIdentityCredential",
      target: f.name,
      objectId: f.id,
      ...(f.subject ? { detail: f.subject } : {}),
    });
    if (apply) await graph.deleteFederatedCredential(app.id, f.id);
  }
  const sp = await graph.getServicePrincipalByAppId(app.appId);
  if (sp && sp.accountEnabled !== false) {
    changes.push({
      op: "update",
      kind: "servicePrincipal",
      target: app.displayName,
      objectId: sp.id,
      detail: "disabled (accountEnabled false)",
    });
    if (apply) await graph.setServicePrincipalEnabled(sp.id, false);
  }
  if (sp) {
    for (const g of await graph.listGroupMemberships(sp.id)) {
      if (!opts.managedGroups.has(g.toLowerCase())) {
        changes.push({
          op: "observe",
          kind: "groupMembership",
          target: g,
          objectId: sp.id,
          detail: "member of a group no policy rule names: left alone (the principal is disabled)",
        });
        continue;
      }
      changes.push({ op: "remove", kind: "groupMembership", target: g, objectId: sp.id });
      if (apply) await graph.removeGroupMember(g, sp.id);
    }
  }
  if (!isRetired(app.tags)) {
    changes.push({
      op: "update",
      kind: "application",
      target: app.displayName,
      objectId: app.id,
      detail: "tagged retired",
    });
    if (apply)
      await graph.updateApplication(app.id, { tags: [...app.tags, RETIRED_TAG, retiredOnTag(opts.now)] });
  }
  return changes;
}
