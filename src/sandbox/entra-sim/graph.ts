import { z } from "zod";
import {
  BACKING_APPLICATION_NOT_LOCAL,
  GRAPH_JSON,
  GraphFailure,
  type GraphResponse,
  INSUFFICIENT_PRIVILEGES,
  INVALID_VALUE,
  NO_BACKING_APPLICATION,
  NOT_FOUND,
} from "./envelope.ts";
import type { SimFaults } from "./faults.ts";
import { parseFlexibleExpression } from "./flexible-expression.ts";
import { applyQuery, select } from "./odata.ts";
import {
  findAppByAppId,
  findAppByUniqueName,
  findSpByAppId,
  graphDateTime,
  newId,
  type SimApp,
  type SimFic,
  type SimGroup,
  type SimSp,
  type SimState,
} from "./state.ts";

/** Who is calling, from the verified access token. */
export interface Caller {
  appId: string;
  /** Object id of the caller's service principal (owner of the apps it creates). */
  spId: string;
  roles: readonly string[];
}

export interface GraphRequest {
  method: string;
  version: "v1.0" | "beta";
  /** Percent-decoded path after the version, starting with "/". */
  path: string;
  query: URLSearchParams;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: unknown;
  caller: Caller;
}

export interface GraphEnv {
  state: SimState;
  faults: SimFaults;
  tenantId: string;
  baseUrl: () => string;
  now: () => number;
}

export const MAX_FICS_PER_APP = 20;
const FIC_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/;

// App roles (application permissions) per operation, least privileged first (reference/entra.md §1, §4, §5).
const READ_APPS = [
  "Application.Read.All",
  "Application.ReadWrite.OwnedBy",
  "Application.ReadWrite.All",
  "Directory.Read.All",
  "Directory.ReadWrite.All",
];
const CREATE_APPS = ["AppRegistration.Create", "Application.ReadWrite.OwnedBy", "Application.ReadWrite.All"];
const READ_GROUPS = [
  "GroupMember.Read.All",
  "GroupMember.ReadWrite.All",
  "Group.Read.All",
  "Group.ReadWrite.All",
  "Directory.Read.All",
  "Directory.ReadWrite.All",
];
const WRITE_MEMBERS = ["GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"];

function requireAny(caller: Caller, roles: readonly string[]): void {
  if (!roles.some((r) => caller.roles.includes(r))) throw INSUFFICIENT_PRIVILEGES();
}

/** OwnedBy only reaches apps the caller owns; ReadWrite.All reaches every app. */
function requireAppWrite(caller: Caller, app: SimApp): void {
  if (caller.roles.includes("Application.ReadWrite.All")) return;
  if (caller.roles.includes("Application.ReadWrite.OwnedBy") && app.owners.includes(caller.spId)) return;
  throw INSUFFICIENT_PRIVILEGES();
}

// ---------------------------------------------------------------------------------------------------------
// Serialisation

/** Credentials are listed without their secret values, as Graph does; the simulator keeps only counts. */
function credentialsJson(count: number, kind: "password" | "key"): Array<Record<string, unknown>> {
  return Array.from({ length: count }, (_, i) => ({
    customKeyIdentifier: null,
    displayName: `${kind} ${i + 1}`,
    endDateTime: "2099-01-01T00:00:00Z",
    keyId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    startDateTime: "2024-01-01T00:00:00Z",
    ...(kind === "password" ? { hint: "abc", secretText: null } : { type: "AsymmetricX509Cert" }),
  }));
}

function appJson(_env: GraphEnv, app: SimApp): Record<string, unknown> {
  return {
    id: app.id,
    deletedDateTime: null,
    isFallbackPublicClient: null,
    appId: app.appId,
    uniqueName: app.uniqueName,
    applicationTemplateId: null,
    identifierUris: [],
    createdDateTime: app.createdDateTime,
    description: app.description,
    displayName: app.displayName,
    isDeviceOnlyAuthSupported: null,
    groupMembershipClaims: null,
    notes: app.notes,
    optionalClaims: null,
    addIns: [],
    publisherDomain: "sandbox.onmicrosoft.com",
    samlMetadataUrl: null,
    serviceManagementReference: null,
    signInAudience: app.signInAudience,
    tags: [...app.tags],
    tokenEncryptionKeyId: null,
    api: {
      requestedAccessTokenVersion: 2,
      acceptMappedClaims: null,
      knownClientApplications: [],
      oauth2PermissionScopes: [],
      preAuthorizedApplications: [],
    },
    appRoles: [],
    publicClient: { redirectUris: [] },
    info: {
      termsOfServiceUrl: null,
      supportUrl: null,
      privacyStatementUrl: null,
      marketingUrl: null,
      logoUrl: null,
    },
    keyCredentials: credentialsJson(app.keyCredentials, "key"),
    parentalControlSettings: { countriesBlockedForMinors: [], legalAgeGroupRule: "Allow" },
    passwordCredentials: credentialsJson(app.passwordCredentials, "password"),
    requiredResourceAccess: [],
    web: {
      redirectUris: [],
      homePageUrl: null,
      logoutUrl: null,
      implicitGrantSettings: { enableIdTokenIssuance: false, enableAccessTokenIssuance: false },
    },
    ...app.extra,
  };
}

function spJson(env: GraphEnv, sp: SimSp): Record<string, unknown> {
  return {
    id: sp.id,
    deletedDateTime: null,
    accountEnabled: sp.accountEnabled,
    appDisplayName: sp.appDisplayName,
    appId: sp.appId,
    appOwnerOrganizationId: env.tenantId,
    appRoleAssignmentRequired: false,
    displayName: sp.displayName,
    homepage: null,
    logoutUrl: null,
    publisherName: "Sandbox",
    replyUrls: [],
    servicePrincipalNames: [sp.appId],
    servicePrincipalType: "Application",
    tags: [...sp.tags],
    addIns: [],
    appRoles: [],
    info: {
      termsOfServiceUrl: null,
      supportUrl: null,
      privacyStatementUrl: null,
      marketingUrl: null,
      logoUrl: null,
    },
    keyCredentials: credentialsJson(sp.keyCredentials, "key"),
    oauth2PermissionScopes: [],
    passwordCredentials: credentialsJson(sp.passwordCredentials, "password"),
  };
}

function groupJson(group: SimGroup): Record<string, unknown> {
  return {
    id: group.id,
    deletedDateTime: null,
    description: group.description,
    displayName: group.displayName,
    groupTypes: [],
    mail: null,
    mailEnabled: false,
    mailNickname: group.displayName.replace(/[^A-Za-z0-9]/g, "").slice(0, 64) || "group",
    securityEnabled: true,
    isAssignableToRole: null,
    visibility: null,
  };
}

/** v1.0 has no claimsMatchingExpression at all; beta always shows it (null for exact-subject FICs). */
function ficJson(fic: SimFic, version: GraphRequest["version"]): Record<string, unknown> {
  return {
    id: fic.id,
    name: fic.name,
    issuer: fic.issuer,
    subject: fic.subject,
    description: fic.description,
    audiences: [...fic.audiences],
    ...(version === "beta" ? { claimsMatchingExpression: fic.claimsMatchingExpression } : {}),
  };
}

function context(env: GraphEnv, req: GraphRequest, fragment: string): string {
  return `${env.baseUrl()}/${req.version}/$metadata#${fragment}`;
}

function ok(status: number, body?: unknown, headers: Record<string, string> = {}): GraphResponse {
  if (body === undefined) return { status, headers };
  return { status, headers: { "Content-Type": GRAPH_JSON, ...headers }, body };
}

function collection(
  env: GraphEnv,
  req: GraphRequest,
  items: Array<Record<string, unknown>>,
  opts: {
    fragment: string;
    filterable: readonly string[];
    resource: string;
    typeName: string;
    /** Objects a list read may miss right after their creation (faults.replication.staleLists), by id. */
    fresh?: ReadonlyMap<string, { createdAtMs: number }>;

    caseless?: readonly string[];
  },
): GraphResponse {
  const { fresh, ...rest } = opts;
  const now = env.now();
  const { value, nextLink } = applyQuery(items, req.query, {
    ...rest,
    nextLinkBase: `${env.baseUrl()}/${req.version}${req.path}`,
    ...(fresh
      ? {
          stale: (e: Record<string, unknown>) => {
            const obj = fresh.get(String(e.id));
            return obj !== undefined && env.faults.lagging("staleLists", obj, now);
          },
        }
      : {}),
  });
  return ok(200, {
    "@odata.context": context(env, req, opts.fragment),
    ...(nextLink ? { "@odata.nextLink": nextLink } : {}),
    value,
  });
}

// ---------------------------------------------------------------------------------------------------------
// Request bodies

function bodyObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new GraphFailure(400, "BadRequest", "Empty Payload. JSON content expected.");
  }
  return body as Record<string, unknown>;
}

function rejectUnknown(body: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (key.startsWith("@odata.") || known.includes(key)) continue;
    throw new GraphFailure(
      400,
      "Request_BadRequest",
      `Property '${key}' does not exist as a declared property or extension property.`,
    );
  }
}

/** Parses with zod and reports the first bad property the way Graph does. */
function parseBody<T>(schema: z.ZodType<T>, body: Record<string, unknown>, resource: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const property = String(parsed.error.issues[0]?.path[0] ?? "body");
    throw INVALID_VALUE(property, resource);
  }
  return parsed.data;
}

const SIGN_IN_AUDIENCES = [
  "AzureADMyOrg",
  "AzureADMultipleOrgs",
  "AzureADandPersonalMicrosoftAccount",
  "PersonalMicrosoftAccount",
] as const;
const APP_FIELDS = {
  displayName: z.string().min(1).max(256),
  uniqueName: z.string().min(1).max(256).optional(),
  description: z.string().max(1024).nullable().optional(),
  tags: z.array(z.string().min(1).max(256)).optional(),
  signInAudience: z.enum(SIGN_IN_AUDIENCES).optional(),
  notes: z.string().max(1024).nullable().optional(),
};
const appCreateSchema = z.object(APP_FIELDS);
const appPatchSchema = z.object({ ...APP_FIELDS, displayName: APP_FIELDS.displayName.optional() });
/** Accepted and echoed back untouched: the simulator does not model them. */
const APP_PASSTHROUGH = [
  "identifierUris",
  "web",
  "spa",
  "publicClient",
  "api",
  "appRoles",
  "requiredResourceAccess",
  "info",
  "optionalClaims",
  "groupMembershipClaims",
  "isFallbackPublicClient",
  "serviceManagementReference",
  "parentalControlSettings",
  "tokenEncryptionKeyId",
  "isDeviceOnlyAuthSupported",
  "defaultRedirectUri",
];
const APP_KNOWN = [...Object.keys(APP_FIELDS), ...APP_PASSTHROUGH];

function passthrough(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).filter(([k]) => APP_PASSTHROUGH.includes(k)));
}

const ficSchema = z.object({
  name: z.string().optional(),
  issuer: z.string().optional(),
  subject: z.string().nullable().optional(),
  audiences: z.array(z.string()).optional(),
  description: z.string().nullable().optional(),
  claimsMatchingExpression: z
    .object({ value: z.string(), languageVersion: z.number() })
    .nullable()
    .optional(),
});
const FIC_KNOWN = ["id", "name", "issuer", "subject", "audiences", "description", "claimsMatchingExpression"];
const FIC = "FederatedIdentityCredential";

/** Validates a full FIC as Graph does on create / after applying a PATCH (reference/entra.md §1, §2). */
function validateFic(fic: Omit<SimFic, "id" | "createdAtMs">, version: GraphRequest["version"]): void {
  if (!FIC_NAME.test(fic.name)) throw INVALID_VALUE("name", FIC);
  if (fic.issuer.length === 0 || fic.issuer.length > 600) throw INVALID_VALUE("issuer", FIC);
  if (fic.audiences.length !== 1 || fic.audiences.some((a) => a.length === 0 || a.length > 600)) {
    throw INVALID_VALUE("audiences", FIC);
  }
  if (fic.description !== null && fic.description.length > 600) throw INVALID_VALUE("description", FIC);
  const expression = fic.claimsMatchingExpression;
  if (version === "beta" && expression) {
    if (fic.subject !== null) throw INVALID_VALUE("subject", FIC);
    if (expression.languageVersion !== 1 || !parseFlexibleExpression(expression.value)) {
      throw INVALID_VALUE("claimsMatchingExpression", FIC);
    }
    return;
  }
  if (fic.subject === null || fic.subject.length === 0 || fic.subject.length > 600) {
    throw INVALID_VALUE("subject", FIC);
  }
}

function readFicBody(req: GraphRequest): z.infer<typeof ficSchema> {
  const body = bodyObject(req.body);
  // claimsMatchingExpression is a beta-only property: v1.0 does not know it.
  rejectUnknown(
    body,
    req.version === "beta" ? FIC_KNOWN : FIC_KNOWN.filter((k) => k !== "claimsMatchingExpression"),
  );
  return parseBody(ficSchema, body, FIC);
}

function assertUniquePair(
  app: SimApp,
  candidate: { issuer: string; subject: string | null },
  exceptId?: string,
): void {
  if (candidate.subject === null) return;
  const clash = app.fics.find(
    (f) => f.id !== exceptId && f.issuer === candidate.issuer && f.subject === candidate.subject,
  );
  if (clash) {
    throw new GraphFailure(
      400,
      "InvalidFederatedIdentityCredentialValue",
      `The combination of issuer and subject must be unique for the application. Issuer ${candidate.issuer} and Subject: ${candidate.subject} already exist. paramName: FederatedIdentityCredential.Subject, paramValue: ${candidate.subject}, objectType: Microsoft.Online.DirectoryServices.Application`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Routing

interface Segment {
  name: string;
  key?: { prop: string; value: string };
}

function parseSegment(raw: string): Segment {
  const m = /^([A-Za-z$][\w$.]*)\((?:(\w+)=)?'((?:[^']|'')*)'\)$/.exec(raw);
  if (m)
    return { name: m[1] as string, key: { prop: m[2] ?? "id", value: (m[3] as string).replace(/''/g, "'") } };
  return { name: raw };
}

const METHOD_NOT_ALLOWED = (): GraphFailure =>
  new GraphFailure(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.");
const NO_ROUTE = (path: string): GraphFailure =>
  new GraphFailure(
    400,
    "BadRequest",
    `Resource not found for the segment '${path.split("/").filter(Boolean).pop() ?? ""}'.`,
  );

/** One Graph operation (also used for each $batch item). Throws GraphFailure for errors. */
export function handleGraph(env: GraphEnv, req: GraphRequest): GraphResponse {
  const segments = req.path.split("/").filter(Boolean).map(parseSegment);
  const [first, ...rest] = segments;
  if (!first) throw NO_ROUTE(req.path);
  switch (first.name) {
    case "applications":
      return applications(env, req, first, rest);
    case "servicePrincipals":
      return servicePrincipals(env, req, first, rest);
    case "groups":
      return groups(env, req, first, rest);
    case "directoryObjects":
      return directoryObjects(env, req, first, rest);
    default:
      throw NO_ROUTE(req.path);
  }
}

function visible(env: GraphEnv, obj: { createdAtMs: number }): boolean {
  return env.now() - obj.createdAtMs >= env.faults.replicationDelayMs;
}

// --- applications ------------------------------------------------------------------------------------------

function applications(env: GraphEnv, req: GraphRequest, first: Segment, rest: Segment[]): GraphResponse {
  const { state } = env;
  if (!first.key && rest.length === 0) {
    if (req.method === "GET") {
      requireAny(req.caller, READ_APPS);
      const items = [...state.applications.values()]
        .filter((a) => visible(env, a))
        .map((a) => appJson(env, a));
      return collection(env, req, items, {
        fragment: "applications",
        fresh: state.applications,
        filterable: [
          "id",
          "appId",
          "uniqueName",
          "displayName",
          "tags",
          "signInAudience",
          "identifierUris",
          "publisherDomain",
        ],
        resource: "application",
        typeName: "microsoft.graph.application",
      });
    }
    if (req.method === "POST") return createApplication(env, req);
    throw METHOD_NOT_ALLOWED();
  }
  let app: SimApp | undefined;
  let tail: Segment[];
  let key: string;
  if (first.key) {
    key = first.key.value;
    app =
      first.key.prop === "appId"
        ? findAppByAppId(state, key)
        : first.key.prop === "uniqueName"
          ? findAppByUniqueName(state, key)
          : first.key.prop === "id"
            ? state.applications.get(key)
            : undefined;
    tail = rest;
  } else {
    key = rest[0]?.name ?? "";
    app = state.applications.get(key);
    tail = rest.slice(1);
  }
  // Upsert (application-upsert): only through the uniqueName alternate key with `Prefer: create-if-missing`.
  if (
    !app &&
    first.key?.prop === "uniqueName" &&
    tail.length === 0 &&
    req.method === "PATCH" &&
    (req.headers.prefer ?? "").toLowerCase().includes("create-if-missing")
  ) {
    return createApplication(env, req, key);
  }
  if (!app || (req.method === "GET" && !visible(env, app))) throw NOT_FOUND(key);
  if (tail.length === 0) return applicationItem(env, req, app);
  if (tail[0]?.name === "federatedIdentityCredentials") return fics(env, req, app, tail[0], tail.slice(1));
  if (tail[0]?.name === "owners" && tail.length === 1 && req.method === "GET") {
    requireAny(req.caller, READ_APPS);
    return ownersCollection(env, req, app.owners);
  }
  throw NO_ROUTE(req.path);
}

/**
 * POST /applications, or the upsert's create. The calling service principal becomes the app's first owner
 * (Application.ReadWrite.OwnedBy "manage apps that this app creates or owns").
 */
function createApplication(env: GraphEnv, req: GraphRequest, uniqueName?: string): GraphResponse {
  requireAny(req.caller, CREATE_APPS);
  const body = bodyObject(req.body);
  rejectUnknown(body, APP_KNOWN);
  const input = parseBody(appCreateSchema, body, "Application");
  const unique = uniqueName ?? input.uniqueName ?? null;
  if (unique !== null && findAppByUniqueName(env.state, unique)) {
    throw new GraphFailure(
      409,
      "Request_MultipleObjectsWithSameKeyValue",
      "Another object with the same value for property uniqueName already exists.",
    );
  }
  const now = env.now();
  const app: SimApp = {
    id: newId(),
    appId: newId(),
    uniqueName: unique,
    displayName: input.displayName,
    description: input.description ?? null,
    tags: input.tags ?? [],
    // Graph's default for apps created through the API (fixtures/graph/application-create-response.json).
    signInAudience: input.signInAudience ?? "AzureADandPersonalMicrosoftAccount",
    notes: input.notes ?? null,
    createdDateTime: graphDateTime(now),
    extra: passthrough(body),
    owners: [req.caller.spId],
    passwordCredentials: 0,
    keyCredentials: 0,
    fics: [],
    createdAtMs: now,
  };
  env.state.applications.set(app.id, app);
  return ok(201, { "@odata.context": context(env, req, "applications/$entity"), ...appJson(env, app) });
}

function applicationItem(env: GraphEnv, req: GraphRequest, app: SimApp): GraphResponse {
  switch (req.method) {
    case "GET":
      requireAny(req.caller, READ_APPS);
      return ok(200, {
        "@odata.context": context(env, req, "applications/$entity"),
        ...select(appJson(env, app), req.query, "microsoft.graph.application"),
      });
    case "PATCH": {
      requireAppWrite(req.caller, app);
      const body = bodyObject(req.body);
      rejectUnknown(body, APP_KNOWN);
      const input = parseBody(appPatchSchema, body, "Application");
      if (input.uniqueName !== undefined && input.uniqueName !== app.uniqueName) {
        throw new GraphFailure(
          400,
          "Request_BadRequest",
          "Property 'uniqueName' is read-only and cannot be set.",
        );
      }
      if (input.displayName !== undefined) app.displayName = input.displayName;
      if (input.description !== undefined) app.description = input.description;
      if (input.tags !== undefined) app.tags = input.tags;
      if (input.signInAudience !== undefined) app.signInAudience = input.signInAudience;
      if (input.notes !== undefined) app.notes = input.notes;
      Object.assign(app.extra, passthrough(body));
      return ok(204);
    }
    case "DELETE": {
      requireAppWrite(req.caller, app);
      const { state } = env;
      state.applications.delete(app.id);
      // Deleting an app registration removes its service principal in the home tenant, and so its memberships.
      const sp = findSpByAppId(state, app.appId);
      if (sp) deleteSp(state, sp);
      return ok(204);
    }
    default:
      throw METHOD_NOT_ALLOWED();
  }
}

// --- federated identity credentials ------------------------------------------------------------------------

function fics(env: GraphEnv, req: GraphRequest, app: SimApp, seg: Segment, tail: Segment[]): GraphResponse {
  // `federatedIdentityCredentials(name='x')` (alternate key) or `federatedIdentityCredentials/{id-or-name}`.
  let key: string | undefined;
  let byAlternateKey = false;
  if (seg.key) {
    key = seg.key.value;
    byAlternateKey = seg.key.prop === "name";
    if (tail.length > 0) throw NO_ROUTE(req.path);
  } else if (tail.length === 1) {
    key = tail[0]?.name;
  } else if (tail.length > 1) {
    throw NO_ROUTE(req.path);
  }

  if (key === undefined) {
    if (req.method === "GET") {
      requireAny(req.caller, READ_APPS);
      return collection(
        env,
        req,
        app.fics.map((f) => ficJson(f, req.version)),
        {
          fragment: `applications('${app.id}')/federatedIdentityCredentials`,
          filterable: ["name", "subject"],
          resource: "federatedIdentityCredential",
          typeName: "microsoft.graph.federatedIdentityCredential",
        },
      );
    }
    if (req.method === "POST") {
      requireAppWrite(req.caller, app);
      const input = readFicBody(req);
      const fic = newFic(env, input, input.name ?? "");
      validateFic(fic, req.version);
      if (app.fics.some((f) => f.name === fic.name)) {
        throw new GraphFailure(
          409,
          "Request_MultipleObjectsWithSameKeyValue",
          `FederatedIdentityCredential with name ${fic.name} already exists.`,
        );
      }
      assertUniquePair(app, fic);
      assertRoom(app);
      app.fics.push(fic);
      return ok(201, ficEntity(env, req, app, fic));
    }
    throw METHOD_NOT_ALLOWED();
  }

  const fic = app.fics.find((f) => (byAlternateKey ? f.name === key : f.id === key || f.name === key));
  switch (req.method) {
    case "GET":
      requireAny(req.caller, READ_APPS);
      if (!fic) throw NOT_FOUND(key);
      return ok(200, {
        "@odata.context": context(env, req, `applications('${app.id}')/federatedIdentityCredentials/$entity`),
        ...select(ficJson(fic, req.version), req.query, "microsoft.graph.federatedIdentityCredential"),
      });
    case "PATCH": {
      requireAppWrite(req.caller, app);
      const input = readFicBody(req);
      if (!fic) {
        // Upsert only through the alternate-key form with `Prefer: create-if-missing` (federatedidentitycredential-upsert).
        const prefer = (req.headers.prefer ?? "").toLowerCase();
        if (!byAlternateKey || !prefer.includes("create-if-missing")) throw NOT_FOUND(key);
        if (input.name !== undefined && input.name !== key) throw INVALID_VALUE("name", FIC);
        const created = newFic(env, input, key);
        validateFic(created, req.version);
        assertUniquePair(app, created);
        assertRoom(app);
        app.fics.push(created);
        return ok(201, ficEntity(env, req, app, created));
      }
      if (input.name !== undefined && input.name !== fic.name) {
        throw new GraphFailure(400, "Request_BadRequest", "Property 'name' is read-only and cannot be set.");
      }
      const merged = {
        name: fic.name,
        issuer: input.issuer ?? fic.issuer,
        subject: input.subject !== undefined ? input.subject : fic.subject,
        audiences: input.audiences ?? fic.audiences,
        description: input.description !== undefined ? input.description : fic.description,
        claimsMatchingExpression:
          input.claimsMatchingExpression !== undefined
            ? input.claimsMatchingExpression
            : fic.claimsMatchingExpression,
      };
      validateFic(merged, req.version);
      assertUniquePair(app, merged, fic.id);
      Object.assign(fic, merged, { createdAtMs: env.now() });
      return ok(204);
    }
    case "DELETE":
      requireAppWrite(req.caller, app);
      if (!fic) throw NOT_FOUND(key);
      app.fics = app.fics.filter((f) => f !== fic);
      return ok(204);
    default:
      throw METHOD_NOT_ALLOWED();
  }
}

function newFic(env: GraphEnv, input: z.infer<typeof ficSchema>, name: string): SimFic {
  return {
    id: newId(),
    name,
    issuer: input.issuer ?? "",
    subject: input.subject ?? null,
    audiences: input.audiences ?? [],
    description: input.description ?? null,
    claimsMatchingExpression: input.claimsMatchingExpression ?? null,
    createdAtMs: env.now(),
  };
}

/**
 * The 21st FIC. No verbatim body is published (reference/entra.md "Open / unverified"); the one secondhand
 * report says 403 "Size of object exceeded limit", which is Graph's Directory_ResourceSizeExceeded, so we answer
 * that. Callers should count before creating rather than rely on this.
 */
function assertRoom(app: SimApp): void {
  if (app.fics.length >= MAX_FICS_PER_APP) {
    throw new GraphFailure(
      403,
      "Directory_ResourceSizeExceeded",
      "The size of the object has exceeded its limit. Please reduce the number of values and retry your request.",
    );
  }
}

function ficEntity(env: GraphEnv, req: GraphRequest, app: SimApp, fic: SimFic): Record<string, unknown> {
  return {
    "@odata.context": context(env, req, `applications('${app.id}')/federatedIdentityCredentials/$entity`),
    ...ficJson(fic, req.version),
  };
}

// --- service principals ------------------------------------------------------------------------------------

const spCreateSchema = z.object({
  appId: z.string().min(1),
  tags: z.array(z.string()).optional(),
  accountEnabled: z.boolean().optional(),
  displayName: z.string().optional(),
});
const SP_KNOWN = ["appId", "tags", "accountEnabled", "displayName", "appRoleAssignmentRequired", "notes"];

function servicePrincipals(env: GraphEnv, req: GraphRequest, first: Segment, rest: Segment[]): GraphResponse {
  const { state } = env;
  if (!first.key && rest.length === 0) {
    if (req.method === "GET") {
      requireAny(req.caller, READ_APPS);
      const items = [...state.servicePrincipals.values()]
        .filter((s) => visible(env, s))
        .map((s) => spJson(env, s));
      return collection(env, req, items, {
        fragment: "servicePrincipals",
        fresh: state.servicePrincipals,
        filterable: ["id", "appId", "displayName", "tags", "servicePrincipalNames"],
        resource: "servicePrincipal",
        typeName: "microsoft.graph.servicePrincipal",
      });
    }
    if (req.method === "POST") {
      const body = bodyObject(req.body);
      rejectUnknown(body, SP_KNOWN);
      const input = parseBody(spCreateSchema, body, "ServicePrincipal");
      refuseWhileAppReplicates(env, input.appId);
      const app = appForSp(env, req, input.appId);
      if (findSpByAppId(state, input.appId)) {
        throw new GraphFailure(
          409,
          "Request_MultipleObjectsWithSameKeyValue",
          "Another object with the same value for property servicePrincipalNames already exists.",
        );
      }
      const sp = createSp(env, app, input, req.caller);
      return ok(201, {
        "@odata.context": context(env, req, "servicePrincipals/$entity"),
        ...spJson(env, sp),
      });
    }
    throw METHOD_NOT_ALLOWED();
  }

  let sp: SimSp | undefined;
  let key: string;
  let tail: Segment[];
  let byAppId = false;
  if (first.key) {
    key = first.key.value;
    byAppId = first.key.prop === "appId";
    sp = byAppId ? findSpByAppId(state, key) : state.servicePrincipals.get(key);
    tail = rest;
  } else {
    key = rest[0]?.name ?? "";
    sp = state.servicePrincipals.get(key);
    tail = rest.slice(1);
  }

  if (tail.length === 1 && tail[0]?.name === "memberOf" && req.method === "GET") {
    requireAny(req.caller, READ_APPS);
    if (!sp || !visible(env, sp)) throw NOT_FOUND(key);
    const spId = sp.id;
    const items = [...state.groups.values()]
      .filter((g) => g.members.has(spId))
      .map((g) => ({ "@odata.type": "#microsoft.graph.group", ...groupJson(g) }));
    return collection(env, req, items, {
      fragment: "directoryObjects",
      filterable: ["id", "displayName"],
      resource: "directoryObject",
      typeName: "microsoft.graph.directoryObject",
    });
  }
  if (tail.length === 1 && tail[0]?.name === "owners" && req.method === "GET") {
    requireAny(req.caller, READ_APPS);
    if (!sp || !visible(env, sp)) throw NOT_FOUND(key);
    return ownersCollection(env, req, sp.owners);
  }
  if (tail.length === 1 && tail[0]?.name === "ownedObjects" && req.method === "GET") {
    requireAny(req.caller, READ_APPS);
    if (!sp || !visible(env, sp)) throw NOT_FOUND(key);
    return ownedObjects(env, req, sp.id);
  }
  if (tail.length > 0) throw NO_ROUTE(req.path);

  switch (req.method) {
    case "GET":
      requireAny(req.caller, READ_APPS);
      if (!sp || !visible(env, sp)) throw NOT_FOUND(key);
      return ok(200, {
        "@odata.context": context(env, req, "servicePrincipals/$entity"),
        ...select(spJson(env, sp), req.query, "microsoft.graph.servicePrincipal"),
      });
    case "PATCH": {
      const body = bodyObject(req.body);
      rejectUnknown(body, SP_KNOWN);
      const input = parseBody(spCreateSchema.partial(), body, "ServicePrincipal");
      if (!sp) {
        const prefer = (req.headers.prefer ?? "").toLowerCase();
        if (!byAppId || !prefer.includes("create-if-missing")) throw NOT_FOUND(key);
        refuseWhileAppReplicates(env, key);
        const app = appForSp(env, req, key);
        const created = createSp(env, app, { ...input, appId: key }, req.caller);
        return ok(201, {
          "@odata.context": context(env, req, "servicePrincipals/$entity"),
          ...spJson(env, created),
        });
      }
      requireSpWrite(env, req.caller, sp);
      if (input.tags !== undefined) sp.tags = input.tags;
      if (input.accountEnabled !== undefined) sp.accountEnabled = input.accountEnabled;
      if (input.displayName !== undefined) sp.displayName = input.displayName;
      return ok(204);
    }
    case "DELETE":
      if (!sp) throw NOT_FOUND(key);
      requireSpWrite(env, req.caller, sp);
      deleteSp(state, sp);
      return ok(204);
    default:
      throw METHOD_NOT_ALLOWED();
  }
}

function appForSp(env: GraphEnv, req: GraphRequest, appId: string): SimApp {
  const app = findAppByAppId(env.state, appId);
  if (!app) {
    // Permission first: a caller without rights learns nothing about which appIds exist.
    requireAny(req.caller, CREATE_APPS);
    throw new GraphFailure(
      400,
      "Request_BadRequest",
      `The appId '${appId}' of the service principal does not reference a valid application object.`,
    );
  }
  requireAppWrite(req.caller, app);
  return app;
}

function requireSpWrite(env: GraphEnv, caller: Caller, sp: SimSp): void {
  const app = findAppByAppId(env.state, sp.appId);
  if (app) requireAppWrite(caller, app);
  else if (!caller.roles.includes("Application.ReadWrite.All")) throw INSUFFICIENT_PRIVILEGES();
}

/** faults.replication.spCreate: the replica that takes the create does not know the app yet. */
function refuseWhileAppReplicates(env: GraphEnv, appId: string): void {
  const rule = env.faults.replication.spCreate;
  const app = findAppByAppId(env.state, appId);
  if (!rule || !app || !env.faults.lagging("spCreate", app, env.now())) return;
  throw rule.answer === "not-local-tenant" ? BACKING_APPLICATION_NOT_LOCAL() : NO_BACKING_APPLICATION(appId);
}

function createSp(
  env: GraphEnv,
  app: SimApp,
  input: { appId: string; tags?: string[] | undefined; accountEnabled?: boolean | undefined },
  caller: Caller,
): SimSp {
  const sp: SimSp = {
    id: newId(),
    appId: app.appId,
    displayName: app.displayName,
    appDisplayName: app.displayName,
    tags: input.tags ?? [],
    accountEnabled: input.accountEnabled ?? true,
    // Like an app, a service principal created by an app-only caller is owned by that caller.
    owners: [caller.spId],
    passwordCredentials: 0,
    keyCredentials: 0,
    createdAtMs: env.now(),
  };
  env.state.servicePrincipals.set(sp.id, sp);
  return sp;
}

function deleteSp(state: SimState, sp: SimSp): void {
  state.servicePrincipals.delete(sp.id);
  for (const g of state.groups.values()) g.members.delete(sp.id);
}

// --- groups ------------------------------------------------------------------------------------------------

function groups(env: GraphEnv, req: GraphRequest, first: Segment, rest: Segment[]): GraphResponse {
  const { state } = env;
  if (!first.key && rest.length === 0) {
    if (req.method !== "GET") throw METHOD_NOT_ALLOWED();
    requireAny(req.caller, READ_GROUPS);
    // GET /groups?$filter=displayName eq '...'&$select=id,displayName (Learn: group-list, "Get groups
    // filtered by display name"); the comparison ignores case.
    return collection(env, req, [...state.groups.values()].map(groupJson), {
      fragment: "groups",
      filterable: ["id", "displayName"],
      resource: "group",
      typeName: "microsoft.graph.group",
      caseless: ["displayName"],
    });
  }
  const groupId = first.key ? first.key.value : (rest[0]?.name ?? "");
  const tail = first.key ? rest : rest.slice(1);
  const group = state.groups.get(groupId);

  if (tail.length === 0) {
    if (req.method !== "GET") throw METHOD_NOT_ALLOWED();
    requireAny(req.caller, READ_GROUPS);
    if (!group) throw NOT_FOUND(groupId);
    return ok(200, {
      "@odata.context": context(env, req, "groups/$entity"),
      ...select(groupJson(group), req.query, "microsoft.graph.group"),
    });
  }
  if (tail[0]?.name !== "members") throw NO_ROUTE(req.path);

  // GET /groups/{id}/members: v1.0 has a documented known issue and omits service principals (beta lists them).
  if (tail.length === 1 && req.method === "GET") {
    requireAny(req.caller, READ_GROUPS);
    if (!group) throw NOT_FOUND(groupId);
    const members =
      req.version === "beta"
        ? [...group.members]
            .map((id) => state.servicePrincipals.get(id))
            .filter((sp) => sp !== undefined)
            .map((sp) => ({ "@odata.type": "#microsoft.graph.servicePrincipal", ...spJson(env, sp) }))
        : [];
    return collection(env, req, members, {
      fragment: "directoryObjects",
      filterable: ["id", "displayName"],
      resource: "directoryObject",
      typeName: "microsoft.graph.directoryObject",
    });
  }

  // POST /groups/{id}/members/$ref
  if (tail.length === 2 && tail[1]?.name === "$ref" && req.method === "POST") {
    requireMemberWrite(req.caller);
    const body = bodyObject(req.body);
    const ref = body["@odata.id"];
    if (typeof ref !== "string" || ref.length === 0) {
      throw new GraphFailure(400, "Request_BadRequest", "Invalid request body: '@odata.id' is required.");
    }
    const memberId = ref.replace(/\/+$/, "").split("/").pop() ?? "";
    if (!group) throw NOT_FOUND(groupId);
    const sp = state.servicePrincipals.get(memberId);
    if (!sp || !visible(env, sp)) throw NOT_FOUND(memberId);
    // faults.replication.memberAdd: the group's replica does not know the new principal yet.
    if (env.faults.lagging("memberAdd", sp, env.now())) throw NOT_FOUND(memberId);
    if (group.members.has(memberId)) {
      throw new GraphFailure(
        400,
        "Request_BadRequest",
        "One or more added object references already exist for the following modified properties: 'members'.",
      );
    }
    group.members.add(memberId);
    return ok(204);
  }

  // DELETE /groups/{id}/members/{memberId}/$ref
  if (tail.length === 3 && tail[2]?.name === "$ref" && req.method === "DELETE") {
    requireAny(req.caller, WRITE_MEMBERS);
    const memberId = tail[1]?.name ?? "";
    if (!group) throw NOT_FOUND(groupId);
    if (!group.members.has(memberId)) throw NOT_FOUND(memberId);
    group.members.delete(memberId);
    return ok(204);
  }
  throw NO_ROUTE(req.path);
}

/**
 * Adding a service principal to a group needs GroupMember.ReadWrite.All AND Application.ReadWrite.All per the
 * current Learn permissions table (reference/entra.md §4).
 */
function requireMemberWrite(caller: Caller): void {
  requireAny(caller, WRITE_MEMBERS);
  requireAny(caller, ["Application.ReadWrite.All", "Directory.ReadWrite.All"]);
}

// --- owners and owned objects --------------------------------------------------------------------------

/** `owners` of an app or a service principal: principals as themselves, any other id as a directory user. */
function ownersCollection(env: GraphEnv, req: GraphRequest, owners: readonly string[]): GraphResponse {
  const items = owners.map((id) => {
    const sp = env.state.servicePrincipals.get(id);
    return sp
      ? { "@odata.type": "#microsoft.graph.servicePrincipal", ...spJson(env, sp) }
      : { "@odata.type": "#microsoft.graph.user", id, displayName: null, userPrincipalName: null };
  });
  return collection(env, req, items, {
    fragment: "directoryObjects",
    filterable: ["id"],
    resource: "directoryObject",
    typeName: "microsoft.graph.directoryObject",
  });
}

/** GET /servicePrincipals/{id}/ownedObjects: the apps and service principals it owns (serviceprincipal-list-ownedobjects). */
function ownedObjects(env: GraphEnv, req: GraphRequest, ownerId: string): GraphResponse {
  const { state } = env;
  const fresh = new Map<string, { createdAtMs: number }>();
  const items: Array<Record<string, unknown>> = [];
  for (const app of state.applications.values()) {
    if (!app.owners.includes(ownerId) || !visible(env, app)) continue;
    fresh.set(app.id, app);
    items.push({ "@odata.type": "#microsoft.graph.application", ...appJson(env, app) });
  }
  for (const sp of state.servicePrincipals.values()) {
    if (!sp.owners.includes(ownerId) || !visible(env, sp)) continue;
    fresh.set(sp.id, sp);
    items.push({ "@odata.type": "#microsoft.graph.servicePrincipal", ...spJson(env, sp) });
  }
  return collection(env, req, items, {
    fragment: "directoryObjects",
    fresh,
    filterable: ["id"],
    resource: "directoryObject",
    typeName: "microsoft.graph.directoryObject",
  });
}

// --- directoryObjects --------------------------------------------------------------------------------------

function directoryObjects(env: GraphEnv, req: GraphRequest, first: Segment, rest: Segment[]): GraphResponse {
  const id = first.key ? first.key.value : (rest[0]?.name ?? "");
  if ((first.key ? rest.length : rest.length - 1) !== 0 || !id) throw NO_ROUTE(req.path);
  if (req.method !== "GET") throw METHOD_NOT_ALLOWED();
  requireAny(req.caller, READ_APPS);
  const { state } = env;
  const sp = state.servicePrincipals.get(id);
  if (sp && visible(env, sp)) {
    return ok(200, { "@odata.type": "#microsoft.graph.servicePrincipal", ...spJson(env, sp) });
  }
  const app = state.applications.get(id);
  if (app && visible(env, app))
    return ok(200, { "@odata.type": "#microsoft.graph.application", ...appJson(env, app) });
  const group = state.groups.get(id);
  if (group) return ok(200, { "@odata.type": "#microsoft.graph.group", ...groupJson(group) });
  throw NOT_FOUND(id);
}
