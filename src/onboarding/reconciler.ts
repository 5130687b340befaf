import { EntraError } from "../entra/errors.ts";
import type { GraphApi, GraphApplication, GraphFic, GraphServicePrincipal } from "../entra/graph.ts";
import { environmentTag, parseIdentityTags, projectTag } from "./naming.ts";
import type { DesiredFic, IdentityPlan } from "./planner.ts";
import type { Change, IdentityRecord } from "./types.ts";

export type Mode = "apply" | "plan";

export interface ReconcileOptions {
  mode: Mode;
  /**
   * Retries of 404s on objects this run just created (Entra replication delay), with doubling backoff
   * starting at notFoundBaseMs. Kept inside the step so a fresh app never fails a whole job.
   */
  notFoundRetries?: number;
  notFoundBaseMs?: number;
  log?: (line: string) => void;
}

export interface ReconcileResult {
  /** Undefined in plan mode when the app does not exist yet. */
  identity?: IdentityRecord;
  changes: Change[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function retryNotFound<T>(opts: ReconcileOptions, what: string, fn: () => Promise<T>): Promise<T> {
  const retries = opts.notFoundRetries ?? 5;
  let delay = opts.notFoundBaseMs ?? 500;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof EntraError) || err.code !== "GRAPH_NOT_FOUND" || attempt >= retries) throw err;
      opts.log?.(`${what}: just-created object not replicated yet, retrying in ${delay} ms`);
      await sleep(delay);
      delay *= 2;
    }
  }
}

const sameFic = (have: GraphFic, want: DesiredFic) =>
  have.issuer === want.issuer &&
  have.subject === want.subject &&
  have.audiences.length === want.audiences.length &&
  have.audiences.every((a, i) => a === want.audiences[i]);

const sameTags = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((t, i) => t === [...b].sort()[i]);

/** The bot's apps for one project (optionally one environment), found by tag with one list call. */
export async function findIdentityApps(
  graph: GraphApi,
  projectId: number,
  environment?: string,
): Promise<GraphApplication[]> {
  const apps = await graph.listApplicationsByTag(projectTag(projectId));
  return apps
    .filter((a) => {
      const parsed = parseIdentityTags(a.tags);
      return (
        parsed?.projectId === projectId && (environment === undefined || parsed.environment === environment)
      );
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * Converges one (project, environment) identity to its plan. Idempotent: an already-correct identity costs
 * four reads and no writes. In plan mode it reads the same way and returns the writes it would make.
 * Callers hold the identity lock (lock.ts) so no two runs create the same app.
 */
export async function reconcileIdentity(
  graph: GraphApi,
  plan: IdentityPlan,
  opts: ReconcileOptions,
): Promise<ReconcileResult> {
  const apply = opts.mode === "apply";
  const changes: Change[] = [];
  const existing = await findIdentityApps(graph, plan.projectId, plan.environment);
  if (existing.length > 1) {
    opts.log?.(
      `warning: ${existing.length} apps are tagged ${projectTag(plan.projectId)} + ${environmentTag(plan.environment)}; managing ${existing[0]?.id}`,
    );
  }

  // 1. App registration.
  let app = existing[0];
  const createdApp = !app;
  if (!app) {
    changes.push({ op: "create", kind: "application", target: plan.displayName });
    if (!apply) {
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
      return { changes };
    }
    app = await graph.createApplication({ displayName: plan.displayName, tags: plan.tags });
    changes[0] = { ...changes[0], objectId: app.id } as Change;
  } else if (app.displayName !== plan.displayName || !sameTags(app.tags, plan.tags)) {
    changes.push({
      op: "update",
      kind: "application",
      target: plan.displayName,
      objectId: app.id,
      detail: app.displayName !== plan.displayName ? `renamed from ${app.displayName}` : "tags",
    });
    if (apply) await graph.updateApplication(app.id, { displayName: plan.displayName, tags: plan.tags });
  }
  const appRef = app;

  // 2. Service principal. A just-created app certainly has none, so skip the read.
  let sp: GraphServicePrincipal | null = createdApp
    ? null
    : await graph.getServicePrincipalByAppId(app.appId);
  const createdSp = !sp;
  if (!sp) {
    changes.push({ op: "create", kind: "servicePrincipal", target: plan.displayName });
    if (apply) {
      const up = await retryNotFound(opts, "create service principal", () =>
        graph.upsertServicePrincipal(appRef.appId, plan.tags),
      );
      sp = up.sp;
      (changes.at(-1) as Change).objectId = sp.id;
    }
  }

  // 3. Federated credentials: deletes first, so a desired issuer+subject never collides with a stale one.
  const current = createdApp ? [] : await graph.listFederatedCredentials(app.id);
  const wanted = new Map(plan.fics.map((f) => [f.name, f]));
  for (const have of current) {
    if (wanted.has(have.name)) continue;
    changes.push({
      op: "delete",
      kind: "federatedIdentityCredential",
      target: have.name,
      objectId: have.id,
      detail: have.subject ?? undefined,
    });
    if (apply) await graph.deleteFederatedCredential(app.id, have.id);
  }
  for (const want of plan.fics) {
    const have = current.find((f) => f.name === want.name);
    if (have && sameFic(have, want)) continue;
    changes.push({
      op: have ? "update" : "create",
      kind: "federatedIdentityCredential",
      target: want.name,
      detail: have ? `${have.subject ?? "(expression)"} -> ${want.subject}` : want.subject,
    });
    if (apply) {
      const spec = { issuer: want.issuer, subject: want.subject, audiences: want.audiences };
      const write = () =>
        graph.upsertFederatedCredential(appRef.id, want.name, {
          ...spec,
          description: want.description ?? "",
        });
      await (createdApp ? retryNotFound(opts, `write FIC ${want.name}`, write) : write());
    }
  }

  // 4. Group memberships, read from the principal's side (v1.0 group member lists omit principals).
  const memberOf = createdSp || !sp ? [] : await graph.listGroupMemberships(sp.id);
  const haveGroups = new Set(memberOf.map((g) => g.toLowerCase()));
  const wantGroups = new Set(plan.groups.map((g) => g.toLowerCase()));
  for (const g of plan.groups) {
    if (haveGroups.has(g.toLowerCase())) continue;
    changes.push({ op: "add", kind: "groupMembership", target: g, objectId: sp?.id });
    if (apply && sp) {
      const spId = sp.id;
      const add = () => graph.addGroupMember(g, spId);
      try {
        await (createdSp ? retryNotFound(opts, `add to group ${g}`, add) : add());
      } catch (err) {
        // An established principal cannot be missing, so the 404 is the group: a policy error, not a retry.
        if (createdSp || !(err instanceof EntraError) || err.code !== "GRAPH_NOT_FOUND") throw err;
        throw new EntraError({
          code: "GRAPH_NOT_FOUND",
          permanent: true,
          status: err.status,
          graphCode: err.graphCode,
          requestId: err.requestId,
          message: `group ${g} (policy key environments.${plan.rule}.groups) does not exist in the tenant; fix the group object id in the policy. ${err.message}`,
        });
      }
    }
  }
  for (const g of memberOf) {
    if (wantGroups.has(g.toLowerCase())) continue;
    changes.push({ op: "remove", kind: "groupMembership", target: g, objectId: sp?.id });
    if (apply && sp) await graph.removeGroupMember(g, sp.id);
  }

  const identity: IdentityRecord | undefined = sp
    ? {
        environment: plan.environment,
        appObjectId: app.id,
        appId: app.appId,
        spObjectId: sp.id,
        displayName: plan.displayName,
      }
    : undefined;
  return { ...(identity ? { identity } : {}), changes };
}

/**
 * Removes one identity completely: memberships first (access goes at once), then FICs (no more logins),
 * then the service principal and the app. Missing pieces count as already removed.
 */
export async function offboardApp(
  graph: GraphApi,
  app: GraphApplication,
  opts: Pick<ReconcileOptions, "mode" | "log">,
): Promise<Change[]> {
  const apply = opts.mode === "apply";
  const changes: Change[] = [];
  const sp = await graph.getServicePrincipalByAppId(app.appId);
  if (sp) {
    for (const g of await graph.listGroupMemberships(sp.id)) {
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
