import type { TokenCredential } from "@azure/identity";
import {
  AuthenticationHandler,
  type AuthenticationProvider,
  Client,
  HTTPMessageHandler,
  ResponseType,
} from "@microsoft/microsoft-graph-client";
import { TokenCredentialAuthenticationProvider } from "@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js";
import { z } from "zod";
import type { Config } from "../config/env.ts";
import { createTokenCredential, graphScope } from "./credential.ts";
import { EntraError, errorFromGraph, type GraphOperation } from "./errors.ts";
import type {
  BulkAnswers,
  BulkRead,
  DirectoryObjectRef,
  FicSpec,
  GraphApi,
  GraphApplication,
  GraphFic,
  GraphGroup,
  GraphServicePrincipal,
  NewApplication,
} from "./graph.ts";
import type { GraphPacer } from "./pacer.ts";

export interface GraphClientOptions {
  /** GRAPH_BASE_URL, e.g. https://graph.microsoft.com (national clouds and the simulator differ). */
  graphBaseUrl: string;
  credential: TokenCredential;
  /** Called once per HTTP request, for request counting in tests and metrics. */
  onRequest?: (method: string, path: string, status: number) => void;
  /** Awaited before every write (POST/PATCH/DELETE), e.g. the shared Redis token bucket (pacer.ts). */
  pacer?: GraphPacer;
}

const applicationSchema = z.object({
  id: z.string(),
  appId: z.string(),
  displayName: z.string().nullable().default(""),
  tags: z.array(z.string()).nullable().default([]),
});
const servicePrincipalSchema = z.object({
  id: z.string(),
  appId: z.string(),
  accountEnabled: z.boolean().nullish(),
});
const SP_BY_APP_SELECT = "$select=id,appId,accountEnabled";
const ficSchema = z.object({
  id: z.string(),
  name: z.string(),
  issuer: z.string(),
  subject: z.string().nullable().default(null),
  audiences: z.array(z.string()),
  description: z.string().nullish(),
});
const groupSchema = z.object({ id: z.string(), displayName: z.string().nullable().default("") });
const directoryObjectSchema = z.object({ id: z.string(), "@odata.type": z.string().optional() });
const page = <T extends z.ZodType>(item: T) =>
  z.object({ value: z.array(item), "@odata.nextLink": z.string().optional() });
const graphErrorSchema = z.object({
  error: z.object({
    code: z.string().optional(),
    message: z.string().optional(),
    // e.g. [{code: "NoBackingApplicationObject", target: "appId"}] on a service principal create.
    details: z
      .array(z.object({ code: z.string().optional() }).passthrough())
      .optional()
      .catch(undefined),
    innerError: z.object({ "request-id": z.string().optional() }).passthrough().optional(),
  }),
});
/** An owner or owned object; only the id and its type matter to the bot. */
const directoryRefSchema = z.object({ id: z.string(), "@odata.type": z.string().optional() }).passthrough();
const credentialList = z.array(z.unknown()).nullish();
const countCredentials = (o: {
  passwordCredentials?: unknown[] | null | undefined;
  keyCredentials?: unknown[] | null | undefined;
}) => (o.passwordCredentials?.length ?? 0) + (o.keyCredentials?.length ?? 0);
const applicationWithCredentialsSchema = applicationSchema.extend({
  passwordCredentials: credentialList,
  keyCredentials: credentialList,
});
const servicePrincipalWithCredentialsSchema = servicePrincipalSchema.extend({
  passwordCredentials: credentialList,
  keyCredentials: credentialList,
});
const APP_SELECT = "id,appId,displayName,tags,passwordCredentials,keyCredentials";
/** JSON batching: at most 20 requests per $batch (reference/entra.md section 6). */
const MAX_BATCH = 20;
/** What one list page costs in Graph's throttling table (GET /applications: 2 resource units). */
const LIST_PAGE_READS = 2;
/** A throttled batch item waits at most this long before its one retry; past it, it is read alone later. */
const MAX_ITEM_RETRY_WAIT_MS = 30_000;
const batchResponseSchema = z.object({
  responses: z.array(
    z
      .object({
        id: z.string(),
        status: z.number(),
        headers: z.record(z.string(), z.unknown()).nullish(),
        body: z.unknown().optional(),
      })
      .passthrough(),
  ),
});
const headerValue = (
  headers: Record<string, unknown> | null | undefined,
  name: string,
): string | undefined => {
  for (const [k, v] of Object.entries(headers ?? {})) if (k.toLowerCase() === name) return String(v);
  return undefined;
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const SP_SELECT = "id,appId,accountEnabled,passwordCredentials,keyCredentials";

const P = {
  appRead: "Application.Read.All (or Application.ReadWrite.OwnedBy)",
  appWrite: "Application.ReadWrite.OwnedBy",
  groupWrite: "GroupMember.ReadWrite.All (adding a service principal also needs Application.ReadWrite.All)",
  groupRemove: "GroupMember.ReadWrite.All",
  groupRead: "GroupMember.Read.All (or Group.Read.All; GroupMember.ReadWrite.All includes it)",
} as const;

type Method = "GET" | "POST" | "PATCH" | "DELETE";

interface RawResult {
  status: number;
  body: unknown;
  requestId: string | undefined;
}

/** Builds the GraphApi over @microsoft/microsoft-graph-client from config (the worker's entry point). */
export function createGraphApiFromConfig(config: Config): GraphApi {
  return createGraphApi({
    graphBaseUrl: config.azure.graphBaseUrl,
    credential: createTokenCredential(config.azure),
  });
}

export function createGraphApi(opts: GraphClientOptions): GraphApi {
  const root = new URL(opts.graphBaseUrl);
  const origin = `${root.origin}${root.pathname.replace(/\/+$/, "")}`;
  const authProvider: AuthenticationProvider = new TokenCredentialAuthenticationProvider(opts.credential, {
    scopes: [graphScope(opts.graphBaseUrl)],
  });
  // A custom chain without RetryHandler/RedirectHandler: BullMQ is the only retry layer, so a 429 surfaces
  // at once as a typed error carrying Retry-After instead of sleeping inside a worker slot.
  const client = Client.initWithMiddleware({
    baseUrl: `${origin}/`,
    defaultVersion: "v1.0",
    middleware: [new AuthenticationHandler(authProvider), new HTTPMessageHandler()],
    // The auth handler only attaches the token for Graph hosts; national clouds and the simulator are "custom".
    customHosts: new Set([root.hostname]),
  });
  const directoryObjectUrl = (id: string) => `${origin}/v1.0/directoryObjects/${id}`;

  async function send(
    op: GraphOperation,
    method: Method,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    // A $batch of reads is a POST that writes nothing: its caller paces it (bulkRead's `pace`).
    paced = method !== "GET",
  ): Promise<RawResult> {
    // Explicit Accept-Language: undici sends "*", which /applications rejects ("Invalid language specified").
    let req = client.api(path).responseType(ResponseType.RAW).header("Accept-Language", "en-US");
    for (const [k, v] of Object.entries(headers)) req = req.header(k, v);
    // Pace writes before Graph has to say 429; reads are not paced.
    if (paced) await opts.pacer?.acquire();
    let res: Response;
    try {
      const sent: unknown =
        method === "GET"
          ? await req.get()
          : method === "POST"
            ? await req.post(body)
            : method === "PATCH"
              ? await req.patch(body)
              : await req.delete();
      if (!(sent instanceof Response)) throw new Error("Graph client returned no HTTP response");
      res = sent;
    } catch (err) {
      throw transportError(op, err);
    }
    const requestId = res.headers.get("request-id") ?? res.headers.get("client-request-id") ?? undefined;
    const text = res.status === 204 ? "" : await res.text();
    let json: unknown;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }
    opts.onRequest?.(method, path, res.status);
    if (res.ok) return { status: res.status, body: json, requestId };
    const parsed = graphErrorSchema.safeParse(json);
    const e = parsed.success ? parsed.data.error : undefined;
    throw errorFromGraph(op, {
      status: res.status,
      graphCode: e?.code,
      graphMessage: e?.message,
      graphDetails: e?.details?.map((d) => d.code).filter((c): c is string => typeof c === "string"),
      requestId: requestId ?? e?.innerError?.["request-id"],
      retryAfter: res.headers.get("retry-after"),
    });
  }

  function parse<T extends z.ZodType>(op: GraphOperation, schema: T, r: RawResult): z.infer<T> {
    const result = schema.safeParse(r.body);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new EntraError({
        code: "GRAPH_BAD_RESPONSE",
        status: r.status,
        requestId: r.requestId,
        message: `Graph answered an unexpected shape while trying to ${op.action} (${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"})`,
      });
    }
    return result.data;
  }

  async function listAll<T extends z.ZodType>(
    op: GraphOperation,
    schema: T,
    firstPath: string,
  ): Promise<z.infer<T>[]> {
    const items: z.infer<T>[] = [];
    let path: string | undefined = firstPath;
    while (path) {
      const r = await send(op, "GET", path);
      const pg = parse(op, page(schema), r);
      items.push(...(pg.value as z.infer<T>[]));
      path = pg["@odata.nextLink"];
    }
    return items;
  }

  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  const tagFilter = (tag: string) => encodeURIComponent(`tags/any(t:t eq ${quote(tag)})`);

  /**
   * A tag listing for drift's sweep: pages paced by the caller (each page counts LIST_PAGE_READS), and only
   * what `keep` accepts held, as each page arrives (anyone can tag objects like the bot's, as many as they like).
   */
  async function listTagged<S extends z.ZodType, T>(
    op: GraphOperation,
    firstPath: string,
    schema: S,
    map: (raw: z.infer<S>) => T,
    o: { pace?: (reads: number) => Promise<void>; keep?: (item: T) => boolean } | undefined,
  ): Promise<T[]> {
    const out: T[] = [];
    let path: string | undefined = firstPath;
    while (path) {
      await o?.pace?.(LIST_PAGE_READS);
      const r: RawResult = await send(op, "GET", path, undefined, {}, false);
      const pg = parse(op, page(schema), r);
      for (const raw of pg.value as z.infer<S>[]) {
        const item = map(raw);
        if (!o?.keep || o.keep(item)) out.push(item);
      }
      path = pg["@odata.nextLink"];
    }
    return out;
  }
  const absent = async (op: GraphOperation, method: Method, path: string): Promise<"deleted" | "absent"> => {
    try {
      await send(op, method, path);
      return "deleted";
    } catch (err) {
      if (err instanceof EntraError && err.code === "GRAPH_NOT_FOUND") return "absent";
      throw err;
    }
  };
  const toSp = (s: z.infer<typeof servicePrincipalSchema>): GraphServicePrincipal => ({
    id: s.id,
    appId: s.appId,
    ...(typeof s.accountEnabled === "boolean" ? { accountEnabled: s.accountEnabled } : {}),
  });
  const toApp = (a: z.infer<typeof applicationSchema>): GraphApplication => ({
    id: a.id,
    appId: a.appId,
    displayName: a.displayName ?? "",
    tags: a.tags ?? [],
  });
  const toAppWithCredentials = (a: z.infer<typeof applicationWithCredentialsSchema>): GraphApplication => ({
    ...toApp(a),
    credentialCount: countCredentials(a),
  });
  const toRefs = (objs: z.infer<typeof directoryRefSchema>[]): DirectoryObjectRef[] =>
    objs.map((o) => ({ id: o.id, type: o["@odata.type"] ?? "#microsoft.graph.directoryObject" }));
  const toFic = (f: z.infer<typeof ficSchema>): GraphFic => ({
    id: f.id,
    name: f.name,
    issuer: f.issuer,
    subject: f.subject ?? null,
    audiences: f.audiences,
    description: f.description,
  });
  // memberOf also lists directory roles and administrative units; only groups are the bot's business.
  const groupIds = (objs: z.infer<typeof directoryObjectSchema>[]) =>
    objs
      .filter((o) => (o["@odata.type"] ?? "#microsoft.graph.group") === "#microsoft.graph.group")
      .map((o) => o.id);
  const toSpWithCredentials = (
    sp: z.infer<typeof servicePrincipalWithCredentialsSchema>,
  ): GraphServicePrincipal => ({ ...toSp(sp), credentialCount: countCredentials(sp) });
  /** The one-by-one read's URL for each bulk read (relative to the version, as $batch wants it). */
  const bulkUrl = (r: BulkRead): string => {
    switch (r.kind) {
      case "owners":
        return `/applications/${r.appObjectId}/owners?$select=id`;
      case "servicePrincipal":
        return `/servicePrincipals/${r.id}?$select=${SP_SELECT}`;
      case "fics":
        return `/applications/${r.appObjectId}/federatedIdentityCredentials`;
      case "memberOf":
        return `/servicePrincipals/${r.principalObjectId}/memberOf?$select=id`;
    }
  };
  const bulkKey = (r: BulkRead): string =>
    `${r.kind}:${r.kind === "servicePrincipal" ? r.id : r.kind === "memberOf" ? r.principalObjectId : r.appObjectId}`;
  const orNull = async <T>(fn: () => Promise<T>): Promise<T | null> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof EntraError && err.code === "GRAPH_NOT_FOUND") return null;
      throw err;
    }
  };

  return {
    async listApplicationsByTag(tag) {
      const op = { action: `list app registrations tagged ${tag}`, permission: P.appRead };
      const filter = encodeURIComponent(`tags/any(t:t eq ${quote(tag)})`);
      const apps = await listAll(
        op,
        applicationSchema,
        `/applications?$filter=${filter}&$select=id,appId,displayName,tags`,
      );
      return apps.map(toApp);
    },

    listApplicationsWithTag(tag, o) {
      return listTagged(
        { action: `list app registrations tagged ${tag}`, permission: P.appRead },
        `/applications?$filter=${tagFilter(tag)}&$select=${APP_SELECT}&$top=999`,
        applicationWithCredentialsSchema,
        toAppWithCredentials,
        o,
      );
    },

    listServicePrincipalsWithTag(tag, o) {
      return listTagged(
        { action: `list service principals tagged ${tag}`, permission: P.appRead },
        `/servicePrincipals?$filter=${tagFilter(tag)}&$select=${SP_SELECT}&$top=999`,
        servicePrincipalWithCredentialsSchema,
        toSpWithCredentials,
        o,
      );
    },

    async bulkRead(reads, o) {
      const op = {
        action: "read app registrations and service principals in bulk ($batch)",
        permission: P.appRead,
      };
      const answers = new Map<string, unknown>();
      let requests = 0;
      const unique = [...new Map(reads.map((r) => [bulkKey(r), r])).values()];
      const chunks: BulkRead[][] = [];
      for (let i = 0; i < unique.length; i += MAX_BATCH) chunks.push(unique.slice(i, i + MAX_BATCH));

      /** One item's complete answer, or undefined (not 200, more pages, an unexpected shape). */
      const answer = (r: BulkRead, body: unknown): unknown => {
        if (r.kind === "servicePrincipal") {
          const sp = servicePrincipalWithCredentialsSchema.safeParse(body);
          return sp.success ? toSpWithCredentials(sp.data) : undefined;
        }
        const schema =
          r.kind === "fics" ? ficSchema : r.kind === "owners" ? directoryRefSchema : directoryObjectSchema;
        const pg = page(schema).safeParse(body);
        if (!pg.success || pg.data["@odata.nextLink"]) return undefined;
        if (r.kind === "fics") return (pg.data.value as z.infer<typeof ficSchema>[]).map(toFic);
        if (r.kind === "owners") return toRefs(pg.data.value as z.infer<typeof directoryRefSchema>[]);
        return groupIds(pg.data.value as z.infer<typeof directoryObjectSchema>[]);
      };

      const runBatch = async (
        items: BulkRead[],
      ): Promise<{ throttled: BulkRead[]; retryAfterMs: number }> => {
        await o?.pace?.(items.length);
        requests += 1;
        const byId = new Map(items.map((r, i) => [String(i + 1), r]));
        const res = await send(
          op,
          "POST",
          "/$batch",
          { requests: items.map((r, i) => ({ id: String(i + 1), method: "GET", url: bulkUrl(r) })) },
          { "Content-Type": "application/json" },
          false,
        );
        const parsed = batchResponseSchema.parse(res.body);
        const throttled: BulkRead[] = [];
        let retryAfterMs = 0;
        // Responses come in any order: matched by id.
        for (const item of parsed.responses) {
          const r = byId.get(item.id);
          if (!r) continue;
          if (item.status === 429) {
            throttled.push(r);
            const after = Number(headerValue(item.headers, "retry-after"));
            retryAfterMs = Math.max(retryAfterMs, Number.isFinite(after) ? Math.ceil(after * 1000) : 1000);
            continue;
          }
          if (item.status !== 200) continue;
          const value = answer(r, item.body);
          if (value !== undefined) answers.set(bulkKey(r), value);
        }
        return { throttled, retryAfterMs };
      };

      const concurrency = Math.max(1, o?.concurrency ?? 4);
      let next = 0;
      const lane = async () => {
        while (next < chunks.length) {
          const items = chunks[next++] as BulkRead[];
          const first = await runBatch(items);
          // Each item is throttled on its own; SDKs do not retry them: once, after the longest Retry-After.
          if (first.throttled.length > 0) {
            await sleep(Math.min(first.retryAfterMs, MAX_ITEM_RETRY_WAIT_MS));
            await runBatch(first.throttled);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, chunks.length) }, lane));
      const get = <T>(key: string) => answers.get(key) as T | undefined;
      return {
        owners: (id) => get<DirectoryObjectRef[]>(`owners:${id}`),
        servicePrincipal: (id) => get<GraphServicePrincipal>(`servicePrincipal:${id}`),
        fics: (id) => get<GraphFic[]>(`fics:${id}`),
        memberOf: (id) => get<string[]>(`memberOf:${id}`),
        requests,
        answered: answers.size,
      } satisfies BulkAnswers;
    },

    async createApplication(app: NewApplication) {
      const op = { action: `create the app registration "${app.displayName}"`, permission: P.appWrite };
      // AzureADMyOrg: personal-account apps get a 60 writes/min throttle and are never what CI needs.
      const r = await send(op, "POST", "/applications", {
        displayName: app.displayName,
        tags: app.tags,
        signInAudience: "AzureADMyOrg",
        ...(app.description ? { description: app.description } : {}),
      });
      return toApp(parse(op, applicationSchema, r));
    },

    async updateApplication(id, patch) {
      const op = { action: `update the app registration ${id}`, permission: P.appWrite };
      await send(op, "PATCH", `/applications/${id}`, patch);
    },

    deleteApplication(id) {
      return absent(
        { action: `delete the app registration ${id}`, permission: P.appWrite },
        "DELETE",
        `/applications/${id}`,
      );
    },

    async getServicePrincipalByAppId(appId) {
      const op = { action: `read the service principal of app ${appId}`, permission: P.appRead };
      try {
        const r = await send(op, "GET", `/servicePrincipals(appId=${quote(appId)})?${SP_BY_APP_SELECT}`);
        return toSp(parse(op, servicePrincipalSchema, r));
      } catch (err) {
        if (err instanceof EntraError && err.code === "GRAPH_NOT_FOUND") return null;
        throw err;
      }
    },

    async upsertServicePrincipal(appId, tags) {
      const op = { action: `create the service principal of app ${appId}`, permission: P.appWrite };
      const path = `/servicePrincipals(appId=${quote(appId)})`;
      const r = await send(op, "PATCH", path, { tags }, { Prefer: "create-if-missing" });
      if (r.status === 201) return { sp: toSp(parse(op, servicePrincipalSchema, r)), created: true };
      // 204: it already existed and Graph sends no body, so read its object id.
      const got = await send(op, "GET", `${path}?${SP_BY_APP_SELECT}`);
      return { sp: toSp(parse(op, servicePrincipalSchema, got)), created: false };
    },

    deleteServicePrincipal(id) {
      return absent(
        { action: `delete the service principal ${id}`, permission: P.appWrite },
        "DELETE",
        `/servicePrincipals/${id}`,
      );
    },

    async listFederatedCredentials(appObjectId) {
      const op = {
        action: `list federated credentials of app registration ${appObjectId}`,
        permission: P.appRead,
      };
      const fics = await listAll(op, ficSchema, `/applications/${appObjectId}/federatedIdentityCredentials`);
      return fics.map(toFic);
    },

    async upsertFederatedCredential(appObjectId, name, spec: FicSpec) {
      const op = {
        action: `write federated credential "${name}" (subject "${spec.subject}") on app registration ${appObjectId}`,
        permission: P.appWrite,
      };
      const r = await send(
        op,
        "PATCH",
        `/applications/${appObjectId}/federatedIdentityCredentials(name=${quote(name)})`,
        {
          issuer: spec.issuer,
          subject: spec.subject,
          audiences: spec.audiences,
          description: spec.description,
        },
        { Prefer: "create-if-missing" },
      );
      return r.status === 201 ? "created" : "updated";
    },

    deleteFederatedCredential(appObjectId, idOrName) {
      return absent(
        {
          action: `delete federated credential ${idOrName} of app registration ${appObjectId}`,
          permission: P.appWrite,
        },
        "DELETE",
        `/applications/${appObjectId}/federatedIdentityCredentials/${encodeURIComponent(idOrName)}`,
      );
    },

    async listGroupMemberships(principalObjectId) {
      const op = {
        action: `list group memberships of service principal ${principalObjectId}`,
        permission: P.appRead,
      };
      const objs = await listAll(
        op,
        directoryObjectSchema,
        `/servicePrincipals/${principalObjectId}/memberOf?$select=id`,
      );
      return groupIds(objs);
    },

    async addGroupMember(groupId, principalObjectId) {
      const op = {
        action: `add service principal ${principalObjectId} to group ${groupId}`,
        permission: P.groupWrite,
      };
      try {
        await send(op, "POST", `/groups/${groupId}/members/$ref`, {
          "@odata.id": directoryObjectUrl(principalObjectId),
        });
        return "added";
      } catch (err) {
        // Graph's add is not idempotent: "One or more added object references already exist ..." is success.
        if (err instanceof EntraError && err.status === 400 && /already exist/i.test(err.message)) {
          return "already-member";
        }
        throw err;
      }
    },

    async removeGroupMember(groupId, principalObjectId) {
      const op = {
        action: `remove service principal ${principalObjectId} from group ${groupId}`,
        permission: P.groupRemove,
      };
      // Always via /$ref: without it Graph deletes the member object itself.
      const r = await absent(op, "DELETE", `/groups/${groupId}/members/${principalObjectId}/$ref`);
      return r === "deleted" ? "removed" : "absent";
    },

    getApplication(id) {
      const op = { action: `read the app registration ${id}`, permission: P.appRead };
      return orNull(async () =>
        toAppWithCredentials(
          parse(
            op,
            applicationWithCredentialsSchema,
            await send(op, "GET", `/applications/${id}?$select=${APP_SELECT}`),
          ),
        ),
      );
    },

    async upsertApplication(uniqueName, app) {
      const op = {
        action: `create the app registration "${app.displayName}" (uniqueName ${uniqueName})`,
        permission: P.appWrite,
      };
      const path = `/applications(uniqueName=${quote(uniqueName)})`;
      const r = await send(
        op,
        "PATCH",
        path,
        {
          displayName: app.displayName,
          tags: app.tags,
          signInAudience: "AzureADMyOrg",
          ...(app.description ? { description: app.description } : {}),
        },
        { Prefer: "create-if-missing" },
      );
      if (r.status === 201)
        return { app: toAppWithCredentials(parse(op, applicationWithCredentialsSchema, r)), created: true };
      // 204: an earlier attempt created it; Graph sends no body, so read it back by the same key.
      const got = await send(op, "GET", `${path}?$select=${APP_SELECT}`);
      return { app: toAppWithCredentials(parse(op, applicationWithCredentialsSchema, got)), created: false };
    },

    getApplicationByUniqueName(uniqueName) {
      const op = { action: `read the app registration with uniqueName ${uniqueName}`, permission: P.appRead };
      return orNull(async () =>
        toAppWithCredentials(
          parse(
            op,
            applicationWithCredentialsSchema,
            await send(op, "GET", `/applications(uniqueName=${quote(uniqueName)})?$select=${APP_SELECT}`),
          ),
        ),
      );
    },

    async listApplicationOwners(appObjectId) {
      const op = { action: `list the owners of app registration ${appObjectId}`, permission: P.appRead };
      return toRefs(await listAll(op, directoryRefSchema, `/applications/${appObjectId}/owners?$select=id`));
    },

    getServicePrincipal(id) {
      const op = { action: `read the service principal ${id}`, permission: P.appRead };
      return orNull(async (): Promise<GraphServicePrincipal> => {
        const sp = parse(
          op,
          servicePrincipalWithCredentialsSchema,
          await send(op, "GET", `/servicePrincipals/${id}?$select=${SP_SELECT}`),
        );
        return toSpWithCredentials(sp);
      });
    },

    async listServicePrincipalOwners(id) {
      const op = { action: `list the owners of service principal ${id}`, permission: P.appRead };
      return toRefs(await listAll(op, directoryRefSchema, `/servicePrincipals/${id}/owners?$select=id`));
    },

    async listOwnedObjects(servicePrincipalId) {
      const op = {
        action: `list the objects service principal ${servicePrincipalId} owns`,
        permission: P.appRead,
      };
      return toRefs(
        await listAll(
          op,
          directoryRefSchema,
          `/servicePrincipals/${servicePrincipalId}/ownedObjects?$select=id`,
        ),
      );
    },

    async listGroupsByDisplayName(displayName) {
      const op = { action: `find the group named "${displayName}"`, permission: P.groupRead };
      // The value comes from project paths and environment names: quote() doubles single quotes (OData
      // string literal) and the whole clause is percent-encoded, so no character can end the literal.
      const filter = encodeURIComponent(`displayName eq ${quote(displayName)}`);
      const groups = await listAll(op, groupSchema, `/groups?$filter=${filter}&$select=id,displayName`);
      return groups.map((g): GraphGroup => ({ id: g.id, displayName: g.displayName ?? "" }));
    },

    async setServicePrincipalEnabled(principalObjectId, enabled) {
      const op = {
        action: `${enabled ? "enable" : "disable"} service principal ${principalObjectId}`,
        permission: P.appWrite,
      };
      // Graph's "Update servicePrincipal" (PATCH, 204 No Content); accountEnabled is a documented writable
      // property ("If set to false, then no users are able to sign in to this app").
      await send(op, "PATCH", `/servicePrincipals/${principalObjectId}`, { accountEnabled: enabled });
    },
  };
}

function transportError(op: GraphOperation, err: unknown): EntraError {
  if (err instanceof EntraError) return err;
  const e = err as { name?: string; message?: string; statusCode?: number; code?: string | null };
  const name = e.code ?? e.name ?? "Error";
  // @azure/identity failures (bad secret, unknown tenant, missing certificate) are configuration problems.
  if (/Credential|Authentication|AggregateAuthentication/i.test(name)) {
    const transient = /timeout|ECONN|ENOTFOUND|EAI_AGAIN|network/i.test(e.message ?? "");
    return new EntraError({
      code: transient ? "GRAPH_UNAVAILABLE" : "AUTH_FAILED",
      message: `The bot could not get a Graph token to ${op.action}: ${firstLine(e.message)}. Check AZURE_TENANT_ID, AZURE_CLIENT_ID, the credential and AZURE_AUTHORITY_HOST`,
      cause: err,
    });
  }
  return new EntraError({
    code: "GRAPH_UNAVAILABLE",
    message: `Graph could not be reached to ${op.action}: ${firstLine(e.message)} (transient: retried with backoff; if attempts ran out, retry the job once Graph is healthy)`,
    cause: err,
  });
}

function firstLine(s: string | undefined): string {
  return (s ?? "unknown error").split("\n")[0]?.slice(0, 300) ?? "unknown error";
}
