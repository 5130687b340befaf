import { z } from "zod";
import { guid, nonEmpty, type RequestShape } from "./shape.ts";

/**
 * Microsoft Graph requests as Microsoft documents them (GD = microsoftgraph/microsoft-graph-docs-contrib,
 * api-reference/<version>/api/<page>.md; reference/entra.md). Paths include the version segment.
 */
const GD = (page: string, version = "v1.0") =>
  `microsoft-graph-docs-contrib api-reference/${version}/api/${page}.md`;
const FIC_NAME = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/);
const oneAudience = z.array(z.string().min(1).max(600)).length(1);
const ficValue = z.string().min(1).max(600);
const tags = z.array(z.string().min(1).max(256));
const directoryObjectUrl = z.string().regex(/^https:\/\/[^/]+\/v1\.0\/directoryObjects\/[^/]+$/);
const odata = { $select: "optional", $filter: "optional", $top: "optional", $skiptoken: "optional" } as const;
const expression = z.strictObject({ value: nonEmpty, languageVersion: z.literal(1) });

const fic = {
  create: z.strictObject({
    name: FIC_NAME,
    issuer: ficValue,
    subject: ficValue,
    audiences: oneAudience,
    description: z.string().max(600).nullish(),
  }),
  createBeta: z.union([
    z.strictObject({
      name: FIC_NAME,
      issuer: ficValue,
      subject: ficValue,
      audiences: oneAudience,
      description: z.string().max(600).nullish(),
    }),
    z.strictObject({
      name: FIC_NAME,
      issuer: ficValue,
      subject: z.null().optional(),
      claimsMatchingExpression: expression,
      audiences: oneAudience,
      description: z.string().max(600).nullish(),
    }),
  ]),
  // Upsert: the name is in the URL; the body holds the rest (federatedidentitycredential-upsert.md).
  upsert: z.strictObject({
    issuer: ficValue,
    subject: ficValue,
    audiences: oneAudience,
    description: z.string().max(600).nullish(),
  }),
  update: z.strictObject({
    name: FIC_NAME.optional(),
    issuer: ficValue.optional(),
    subject: ficValue.optional(),
    audiences: oneAudience.optional(),
    description: z.string().max(600).nullish(),
  }),
};

export const GRAPH_REQUESTS: RequestShape[] = [
  // ---- applications
  {
    id: "list applications (by tag)",
    method: "GET",
    path: "/v1.0/applications",
    query: { ...odata, $filter: /^tags\/any\(t:t eq '(?:[^']|'')*'\)$/ },
    source: GD("application-list"),
  },
  {
    id: "get application",
    method: "GET",
    path: "/v1.0/applications/{id}",
    query: { $select: "optional" },
    source: GD("application-get"),
  },
  {
    id: "create application",
    method: "POST",
    path: "/v1.0/applications",
    body: z.strictObject({
      displayName: nonEmpty,
      tags: tags.optional(),
      signInAudience: z
        .enum([
          "AzureADMyOrg",
          "AzureADMultipleOrgs",
          "AzureADandPersonalMicrosoftAccount",
          "PersonalMicrosoftAccount",
        ])
        .optional(),
      description: z.string().max(1024).optional(),
      notes: z.string().optional(),
    }),
    source: GD("application-post-applications"),
    fixtures: ["graph/application-create-request.json"],
  },
  {
    id: "upsert application by uniqueName",
    method: "PATCH",
    path: "/v1.0/applications(uniqueName='{uniqueName}')",
    headers: { prefer: "create-if-missing" },
    body: z.strictObject({
      displayName: nonEmpty,
      tags: tags.optional(),
      signInAudience: z
        .enum([
          "AzureADMyOrg",
          "AzureADMultipleOrgs",
          "AzureADandPersonalMicrosoftAccount",
          "PersonalMicrosoftAccount",
        ])
        .optional(),
      description: z.string().max(1024).optional(),
      notes: z.string().optional(),
    }),
    source: GD("application-upsert"),
  },
  {
    id: "get application by uniqueName",
    method: "GET",
    path: "/v1.0/applications(uniqueName='{uniqueName}')",
    query: { $select: "optional" },
    source: GD("application-get"),
  },
  {
    id: "update application",
    method: "PATCH",
    path: "/v1.0/applications/{id}",
    body: z
      .strictObject({
        displayName: nonEmpty.optional(),
        tags: tags.optional(),
        description: z.string().max(1024).optional(),
        notes: z.string().optional(),
      })
      .refine((b) => Object.keys(b).length > 0, "an update names at least one property"),
    source: GD("application-update"),
  },
  {
    id: "delete application",
    method: "DELETE",
    path: "/v1.0/applications/{id}",
    source: GD("application-delete"),
  },

  // ---- service principals
  {
    id: "get service principal by appId",
    method: "GET",
    path: "/v1.0/servicePrincipals(appId='{appId}')",
    query: { $select: "optional" },
    source: GD("serviceprincipal-get"),
  },
  {
    id: "upsert service principal by appId",
    method: "PATCH",
    path: "/v1.0/servicePrincipals(appId='{appId}')",
    headers: { prefer: "create-if-missing" },
    body: z.strictObject({
      tags: tags.optional(),
      accountEnabled: z.boolean().optional(),
      displayName: z.string().optional(),
    }),
    source: GD("serviceprincipal-upsert"),
  },
  {
    id: "list service principals by tag",
    method: "GET",
    path: "/v1.0/servicePrincipals",
    query: odata,
    source: GD("serviceprincipal-list"),
  },
  {
    id: "create service principal",
    method: "POST",
    path: "/v1.0/servicePrincipals",
    body: z.strictObject({ appId: guid, tags: tags.optional(), accountEnabled: z.boolean().optional() }),
    source: GD("serviceprincipal-post-serviceprincipals"),
    fixtures: ["graph/serviceprincipal-create-request.json"],
  },
  {
    id: "delete service principal",
    method: "DELETE",
    path: "/v1.0/servicePrincipals/{id}",
    source: GD("serviceprincipal-delete"),
  },
  {
    id: "list service principal memberOf",
    method: "GET",
    path: "/v1.0/servicePrincipals/{id}/memberOf",
    query: odata,
    source: GD("serviceprincipal-list-memberof"),
  },

  {
    id: "get service principal",
    method: "GET",
    path: "/v1.0/servicePrincipals/{id}",
    query: { $select: "optional" },
    source: GD("serviceprincipal-get"),
  },
  {
    id: "list service principal owners",
    method: "GET",
    path: "/v1.0/servicePrincipals/{id}/owners",
    query: odata,
    source: GD("serviceprincipal-list-owners"),
  },
  {
    id: "update service principal",
    method: "PATCH",
    path: "/v1.0/servicePrincipals/{id}",
    body: z
      .strictObject({ accountEnabled: z.boolean().optional(), tags: tags.optional() })
      .refine((b) => Object.keys(b).length > 0, "an update names at least one property"),
    source: GD("serviceprincipal-update"),
  },
  {
    id: "list service principal ownedObjects",
    method: "GET",
    path: "/v1.0/servicePrincipals/{id}/ownedObjects",
    query: odata,
    source: `${GD("serviceprincipal-list-ownedobjects")}; reference/entra.md §9`,
  },
  {
    id: "list application owners",
    method: "GET",
    path: "/v1.0/applications/{id}/owners",
    query: odata,
    source: GD("application-list-owners"),
  },
  {
    id: "add application owner",
    method: "POST",
    path: "/v1.0/applications/{id}/owners/$ref",
    body: z.strictObject({ "@odata.id": directoryObjectUrl }),
    source: GD("application-post-owners"),
  },

  // ---- federated identity credentials
  {
    id: "list FICs",
    method: "GET",
    path: "/v1.0/applications/{id}/federatedIdentityCredentials",
    query: { $filter: "optional", $select: "optional" },
    source: GD("application-list-federatedidentitycredentials"),
  },
  {
    id: "create FIC",
    method: "POST",
    path: "/v1.0/applications/{id}/federatedIdentityCredentials",
    body: fic.create,
    source: GD("application-post-federatedidentitycredentials"),
    fixtures: ["graph/fic-create-request.json"],
  },
  {
    id: "create FIC (beta, flexible)",
    method: "POST",
    path: "/beta/applications/{id}/federatedIdentityCredentials",
    body: fic.createBeta,
    source: `${GD("application-post-federatedidentitycredentials", "beta")}; GitLab doc/ci/cloud_services/azure/_index.md`,
    fixtures: [
      "graph/fic-create-request-flexible-gitlab.json",
      "graph/fic-create-request-gitlab-docs.json",
      "gitlab/azure-fic-body-branch.json",
      "gitlab/azure-fic-body-flexible-all-branches.json",
      "gitlab/entra-fic-flexible-gitlab-immutable.json",
    ],
  },
  {
    id: "upsert FIC by name",
    method: "PATCH",
    path: "/v1.0/applications/{id}/federatedIdentityCredentials(name='{name}')",
    headers: { prefer: "create-if-missing" },
    body: fic.upsert,
    source: GD("federatedidentitycredential-upsert"),
    fixtures: ["graph/fic-upsert-request.json"],
  },
  {
    id: "update FIC",
    method: "PATCH",
    path: "/v1.0/applications/{id}/federatedIdentityCredentials/{idOrName}",
    body: fic.update,
    source: GD("federatedidentitycredential-update"),
    fixtures: ["graph/fic-update-request.json"],
  },
  {
    id: "delete FIC",
    method: "DELETE",
    path: "/v1.0/applications/{id}/federatedIdentityCredentials/{idOrName}",
    source: GD("federatedidentitycredential-delete"),
  },

  // ---- groups
  {
    id: "add group member",
    method: "POST",
    path: "/v1.0/groups/{id}/members/$ref",
    body: z.strictObject({
      "@odata.id": z.union([
        directoryObjectUrl,
        z.literal("https://graph.microsoft.com/v1.0/directoryObjects/{id}"),
      ]),
    }),
    source: GD("group-post-members"),
    fixtures: ["graph/group-add-member-request.json"],
  },
  {
    id: "add group members (bind, at most 20)",
    method: "PATCH",
    path: "/v1.0/groups/{id}",
    body: z.strictObject({ "members@odata.bind": z.array(z.string()).min(1).max(20) }),
    source: `${GD("group-post-members")} (Example 2)`,
    fixtures: ["graph/group-add-members-bind-request.json"],
  },
  {
    id: "list groups (by displayName)",
    method: "GET",
    path: "/v1.0/groups",
    query: { ...odata, $filter: /^displayName eq '(?:[^']|'')*'$/ },
    source: GD("group-list"),
  },
  {
    id: "get group",
    method: "GET",
    path: "/v1.0/groups/{id}",
    query: { $select: "optional" },
    source: GD("group-get"),
  },
  {
    id: "remove group member",
    method: "DELETE",
    path: "/v1.0/groups/{id}/members/{memberId}/$ref",
    source: GD("group-delete-members"),
  },

  // ---- JSON batching
  {
    id: "$batch",
    method: "POST",
    path: "/v1.0/$batch",
    body: z.strictObject({
      requests: z
        .array(
          z.strictObject({
            id: nonEmpty,
            method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE"]),
            url: nonEmpty.refine((u) => !/^https?:/i.test(u), "batch urls are relative"),
            body: z.unknown().optional(),
            headers: z.record(z.string(), z.string()).optional(),
            dependsOn: z.array(nonEmpty).optional(),
          }),
        )
        .min(1)
        .max(20),
    }),
    source: "microsoft-graph-docs-contrib concepts/json-batching.md",
    fixtures: ["graph/batch-request.json", "graph/batch-request-dependson.json"],
  },
];
