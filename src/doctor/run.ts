import { z } from "zod";
import type { Policy } from "../config/policy.ts";
import { EntraError } from "../entra/errors.ts";
import type { GraphApi, GraphApplication } from "../entra/graph.ts";
import type { BotServicePrincipal } from "../entra/self.ts";
import type { AuditLog } from "../onboarding/audit.ts";
import { parseIdentityTags, pathTag } from "../onboarding/naming.ts";
import { findIdentityApps } from "../onboarding/reconciler.ts";
import { type Registry, soleOwner } from "../onboarding/registry.ts";
import { type Diagnosis, type DoctorFic, diagnose, type IssuerCheck } from "./diagnose.ts";
import type { DoctorInput } from "./input.ts";
import { parseSubject } from "./subject-parts.ts";

/**
 * The impure half of doctor: find the project, load its credentials from Graph and their change times
 * from the audit trail, optionally probe the issuer's discovery document, then call the pure diagnose().
 *
 * When was a credential created? Graph's federatedIdentityCredential has no timestamp, and the bot's FIC
 * descriptions carry none. The bot's audit trail does: every FIC create/update is a record with its time,
 * project, environment and FIC name. We read the last hour of the project's records (bounded, newest wins);
 * older changes do not matter for propagation, which takes minutes.
 */
export interface DoctorDeps {
  graph: GraphApi;
  policy: Policy;
  /** The issuer the bot writes into credentials (resolveIssuer). */
  issuer: string;
  registry?: Registry;
  audit?: AuditLog;
  /**
   * The bot's own service principal (object id). With it, only apps the bot alone owns are compared and
   * named: a tag search also finds look-alikes anyone can register, whose client ids doctor must never
   * recommend (a pipeline told to use one would log in as someone else's app).
   */
  botSp?: Pick<BotServicePrincipal, "objectId">;
  now?: () => Date;
  /** Injected for tests; defaults to global fetch. */
  fetch?: typeof fetch;
}

export interface DoctorOptions {
  projectId?: number;
  environment?: string;
  checkIssuer?: boolean;
}

export interface DoctorRun {
  diagnosis: Diagnosis;
  project?: { id: number; path?: string };
  /** How the project was found, for the report ("--project", "token project_id", "registry path", ...). */
  projectSource?: string;
}

const AUDIT_WINDOW_MS = 60 * 60 * 1000;

export function changeKey(environment: string | undefined, ficName: string): string {
  return `${environment ?? ""}\u0000${ficName}`;
}

/** Latest successful create/update time per (environment, FIC name) in the recent audit trail. */
export async function ficChangeTimes(
  audit: AuditLog,
  projectId: number,
  now: Date,
): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  let cursor: string | undefined;
  for (let page = 0; page < 20; page++) {
    const res = await audit.query({
      project: projectId,
      since: new Date(now.getTime() - AUDIT_WINDOW_MS).toISOString(),
      limit: 500,
      ...(cursor ? { cursor } : {}),
    });
    for (const rec of res.records) {
      const { change } = rec;
      if (change.kind !== "federatedIdentityCredential" || rec.outcome !== "ok") continue;
      if (change.op !== "create" && change.op !== "update") continue;
      // Records come oldest first, so the last one seen is the latest change.
      out.set(changeKey(rec.environment, change.target), new Date(rec.time));
    }
    if (!res.nextCursor) break;
    cursor = res.nextCursor;
  }
  return out;
}

/** The apps among a tag search's results that the bot alone owns (all of them without botSp). */
async function botsOwn(
  deps: Pick<DoctorDeps, "graph" | "botSp">,
  apps: GraphApplication[],
): Promise<GraphApplication[]> {
  if (!deps.botSp) return apps;
  const me = await deps.botSp.objectId();
  const out: GraphApplication[] = [];
  for (const app of apps) {
    const owners = await deps.graph.listApplicationOwners(app.id).catch((err: unknown) => {
      if (err instanceof EntraError && err.code === "GRAPH_NOT_FOUND") return [];
      throw err;
    });
    if (soleOwner(owners, me)) out.push(app);
  }
  return out;
}

/** Every credential of the project's bot-made identities (optionally one environment), with app and env. */
export async function loadProjectFics(
  deps: Pick<DoctorDeps, "graph" | "audit" | "botSp">,
  projectId: number,
  now: Date,
  environment?: string,
): Promise<{ fics: DoctorFic[]; path?: string }> {
  const apps = await botsOwn(deps, await findIdentityApps(deps.graph, projectId, environment));
  const times = deps.audit ? await ficChangeTimes(deps.audit, projectId, now) : new Map<string, Date>();
  const fics: DoctorFic[] = [];
  let path: string | undefined;
  for (const app of apps) {
    const tags = parseIdentityTags(app.tags);
    path ??= tags?.path;
    for (const f of await deps.graph.listFederatedCredentials(app.id)) {
      const changedAt = times.get(changeKey(tags?.environment, f.name));
      fics.push({
        ...f,
        appId: app.appId,
        ...(tags ? { environment: tags.environment } : {}),
        ...(changedAt ? { changedAt } : {}),
      });
    }
  }
  return { fics, ...(path ? { path } : {}) };
}

/** Project id from the flag, the token's project_id, or its project_path (registry, then Entra's path tag). */
export async function resolveProject(
  deps: Pick<DoctorDeps, "graph" | "registry" | "botSp">,
  input: DoctorInput,
  explicit?: number,
): Promise<{ id: number; path?: string; source: string } | undefined> {
  if (explicit !== undefined) return { id: explicit, source: "--project" };
  const fromClaim = Number(input.claims.project_id);
  if (input.claims.project_id && Number.isSafeInteger(fromClaim) && fromClaim > 0) {
    return { id: fromClaim, source: "the token's project_id claim" };
  }
  const parts = input.claims.sub ? parseSubject(input.claims.sub) : undefined;
  const idInSub = Number(parts?.values.project_id);
  if (parts?.values.project_id && Number.isSafeInteger(idInSub) && idInSub > 0) {
    return { id: idInSub, source: "the subject's project_id" };
  }
  const path = input.claims.project_path ?? parts?.values.project_path ?? undefined;
  if (!path) return undefined;
  if (deps.registry) {
    const hit = (await deps.registry.list()).find((p) => p.path === path);
    if (hit) return { id: hit.projectId, path, source: "the registry (by project path)" };
  }
  for (const app of await botsOwn(deps, await deps.graph.listApplicationsByTag(pathTag(path)))) {
    const tags = parseIdentityTags(app.tags);
    if (tags) return { id: tags.projectId, path, source: "Entra app tags (by project path)" };
  }
  return undefined;
}

const discoverySchema = z.object({ issuer: z.string(), jwks_uri: z.string() });

/** Fetches the issuer's discovery document and key set over HTTPS, as Entra will. */
export async function checkIssuerDiscovery(
  issuer: string,
  fetchImpl: typeof fetch = fetch,
  timeoutMs = 5000,
): Promise<IssuerCheck> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  if (!issuer.startsWith("https://")) return { ok: false, url, detail: "the issuer is not an https:// URL" };
  try {
    const res = await fetchImpl(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { ok: false, url, detail: `HTTP ${res.status}` };
    const doc = discoverySchema.safeParse(await res.json());
    if (!doc.success) return { ok: false, url, detail: "the answer is not an OIDC discovery document" };
    if (doc.data.issuer !== issuer) {
      return { ok: false, url, detail: `the document names issuer '${doc.data.issuer}', not '${issuer}'` };
    }
    const keys = await fetchImpl(doc.data.jwks_uri, { signal: AbortSignal.timeout(timeoutMs) });
    const jwks = z
      .object({ keys: z.array(z.object({ kid: z.string().optional() })) })
      .safeParse(keys.ok ? await keys.json() : undefined);
    if (!jwks.success || jwks.data.keys.length === 0) {
      return { ok: false, url, detail: `jwks_uri ${doc.data.jwks_uri} gave no usable key set` };
    }
    return { ok: true, url, detail: `${url} and ${jwks.data.keys.length} signing key(s) reachable` };
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : "";
    return { ok: false, url, detail: `${e instanceof Error ? e.message : String(e)}${cause}` };
  }
}

/** Resolves, loads and diagnoses. `restrictProject` (slash command) refuses claims of another project. */
export async function runDoctor(
  deps: DoctorDeps,
  input: DoctorInput,
  opts: DoctorOptions = {},
): Promise<DoctorRun> {
  const now = deps.now?.() ?? new Date();
  const project = await resolveProject(deps, input, opts.projectId);
  const environment = opts.environment ?? input.claims.environment;
  let fics: DoctorFic[] = [];
  let path = project?.path;
  if (project) {
    const loaded = await loadProjectFics(deps, project.id, now);
    fics = loaded.fics;
    path ??= loaded.path;
  }
  const issuerCheck =
    opts.checkIssuer && input.claims.iss
      ? await checkIssuerDiscovery(input.claims.iss, deps.fetch ?? fetch)
      : undefined;
  const diagnosis = diagnose({
    claims: input.claims,
    ...(input.aadsts ? { aadsts: input.aadsts } : {}),
    fics,
    policy: deps.policy,
    issuer: deps.issuer,
    now,
    ...(project ? { project: { id: project.id, ...(path ? { path } : {}) } } : {}),
    ...(environment ? { environment } : {}),
    ...(issuerCheck ? { issuerCheck } : {}),
  });
  return {
    diagnosis,
    ...(project
      ? { project: { id: project.id, ...(path ? { path } : {}) }, projectSource: project.source }
      : {}),
  };
}
