import { z } from "zod";
import { nonEmpty, type RequestShape } from "./shape.ts";

/**
 * GitLab REST API v4 requests as GitLab documents them (gitlabhq doc/api/<page>.md; reference/gitlab.md §8).
 * Paths are after /api/v4. Bodies are what gitbeaker 43.8.0 sends: JSON with snake_case keys.
 */
const DOC = (page: string) => `gitlabhq doc/api/${page}.md`;
const page = { per_page: /^(?:[1-9]\d?|100)$/, page: /^[1-9]\d*$/ } as const;
const bool = z.boolean();
const variableKey = z.string().regex(/^[A-Za-z0-9_]{1,255}$/);
const environmentScope = z.string().min(1);
const SUB_CLAIM_COMPONENTS = [
  "project_path",
  "project_id",
  "ref_type",
  "ref",
  "ref_protected",
  "environment_protected",
  "deployment_tier",
] as const;

export const GITLAB_REQUESTS: RequestShape[] = [
  { id: "current user", method: "GET", path: "/user", source: DOC("users") },
  {
    id: "current personal access token",
    method: "GET",
    path: "/personal_access_tokens/self",
    source: DOC("personal_access_tokens"),
  },

  // ---- projects
  {
    // {id} is the numeric id or the URL-encoded path ("group%2Fproject"), as the API documents.
    id: "get project",
    method: "GET",
    path: "/projects/{id}",
    query: { statistics: "optional", license: "optional", with_custom_attributes: "optional" },
    source: DOC("projects"),
  },
  {
    id: "set ci_id_token_sub_claim_components",
    method: "PUT",
    path: "/projects/{id}",
    body: z.strictObject({
      ci_id_token_sub_claim_components: z
        .array(z.enum(SUB_CLAIM_COMPONENTS))
        .min(1)
        .refine(
          (c) => c[0] === "project_path" || c[0] === "project_id",
          "project_path or project_id comes first",
        ),
    }),
    source: `${DOC("projects")} (ci_id_token_sub_claim_components, 17.10+); reference/gitlab.md §6`,
  },
  {
    id: "effective member (inherited and invited)",
    method: "GET",
    path: "/projects/{id}/members/all/{user_id}",
    source: DOC("members"),
  },

  {
    id: "effective group member (inherited and invited)",
    method: "GET",
    path: "/groups/{id}/members/all/{user_id}",
    source: DOC("members"),
  },
  { id: "get user", method: "GET", path: "/users/{id}", source: DOC("users") },

  // ---- issues
  {
    id: "list project issues",
    method: "GET",
    path: "/projects/{id}/issues",
    query: {
      ...page,
      search: "optional",
      in: /^(title|description)(,(title|description))?$/,
      labels: "optional",
      author_id: /^\d+$/,
      state: /^(opened|closed|all)$/,
      order_by: "optional",
      sort: /^(asc|desc)$/,
    },
    source: DOC("issues"),
  },
  { id: "get issue", method: "GET", path: "/projects/{id}/issues/{issue_iid}", source: DOC("issues") },
  {
    id: "create issue",
    method: "POST",
    path: "/projects/{id}/issues",
    body: z.strictObject({
      title: nonEmpty,
      description: z.string().max(1_048_576).optional(),
      labels: z.string().optional(),
      confidential: bool.optional(),
      assignee_ids: z.array(z.number().int()).optional(),
    }),
    source: DOC("issues"),
  },
  {
    id: "edit issue",
    method: "PUT",
    path: "/projects/{id}/issues/{issue_iid}",
    body: z
      .strictObject({
        title: nonEmpty.optional(),
        description: z.string().max(1_048_576).optional(),
        labels: z.string().optional(),
        state_event: z.enum(["close", "reopen"]).optional(),
        confidential: bool.optional(),
      })
      .refine((b) => Object.keys(b).length > 0, "an edit names at least one attribute"),
    source: DOC("issues"),
  },

  // ---- notes and emoji reactions
  {
    id: "list issue notes",
    method: "GET",
    path: "/projects/{id}/issues/{issue_iid}/notes",
    query: { ...page, sort: /^(asc|desc)$/, order_by: /^(created_at|updated_at)$/ },
    source: DOC("notes"),
  },
  {
    id: "get issue note",
    method: "GET",
    path: "/projects/{id}/issues/{issue_iid}/notes/{note_id}",
    source: DOC("notes"),
  },
  {
    id: "create issue note",
    method: "POST",
    path: "/projects/{id}/issues/{issue_iid}/notes",
    body: z.strictObject({
      body: z.string().min(1).max(1_000_000),
      internal: bool.optional(),
      created_at: z.string().optional(),
    }),
    source: DOC("notes"),
  },
  {
    id: "edit issue note",
    method: "PUT",
    path: "/projects/{id}/issues/{issue_iid}/notes/{note_id}",
    body: z.strictObject({ body: z.string().min(1).max(1_000_000) }),
    source: DOC("notes"),
  },
  {
    id: "award emoji on an issue note",
    method: "POST",
    path: "/projects/{id}/issues/{issue_iid}/notes/{note_id}/award_emoji",
    body: z.strictObject({ name: z.string().regex(/^[a-z0-9_+-]+$/) }),
    source: `${DOC("emoji_reactions")} (award_emoji on notes)`,
  },

  {
    id: "list merge request notes",
    method: "GET",
    path: "/projects/{id}/merge_requests/{merge_request_iid}/notes",
    query: { ...page, sort: /^(asc|desc)$/, order_by: /^(created_at|updated_at)$/ },
    source: DOC("notes"),
  },
  {
    id: "create merge request note",
    method: "POST",
    path: "/projects/{id}/merge_requests/{merge_request_iid}/notes",
    body: z.strictObject({
      body: z.string().min(1).max(1_000_000),
      internal: bool.optional(),
      created_at: z.string().optional(),
    }),
    source: DOC("notes"),
  },
  {
    id: "edit merge request note",
    method: "PUT",
    path: "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}",
    body: z.strictObject({ body: z.string().min(1).max(1_000_000) }),
    source: DOC("notes"),
  },

  // ---- CI/CD variables
  {
    id: "list project variables",
    method: "GET",
    path: "/projects/{id}/variables",
    query: page,
    source: DOC("project_level_variables"),
  },
  {
    id: "get project variable",
    method: "GET",
    path: "/projects/{id}/variables/{key}",
    query: { "filter[environment_scope]": "optional" },
    source: DOC("project_level_variables"),
  },
  {
    id: "create project variable",
    method: "POST",
    path: "/projects/{id}/variables",
    body: z.strictObject({
      key: variableKey,
      value: z.string(),
      environment_scope: environmentScope.optional(),
      masked: bool.optional(),
      masked_and_hidden: bool.optional(),
      protected: bool.optional(),
      raw: bool.optional(),
      variable_type: z.enum(["env_var", "file"]).optional(),
      description: z.string().optional(),
    }),
    source: DOC("project_level_variables"),
  },
  {
    id: "update project variable",
    method: "PUT",
    path: "/projects/{id}/variables/{key}",
    query: { "filter[environment_scope]": "optional" },
    body: z.strictObject({
      value: z.string(),
      environment_scope: environmentScope.optional(),
      masked: bool.optional(),
      protected: bool.optional(),
      raw: bool.optional(),
      variable_type: z.enum(["env_var", "file"]).optional(),
      description: z.string().optional(),
      // gitbeaker sends the filter in the JSON body; Grape reads it as filter[environment_scope].
      filter: z.strictObject({ environment_scope: environmentScope }).optional(),
    }),
    source: `${DOC("project_level_variables")}; reference/gitlab.md §8 (filter)`,
  },
  {
    id: "delete project variable",
    method: "DELETE",
    path: "/projects/{id}/variables/{key}",
    query: { "filter[environment_scope]": "optional" },
    source: DOC("project_level_variables"),
  },

  // ---- projects listing (drift's bulk sweep)
  {
    id: "list the bot's projects by id",
    method: "GET",
    path: "/projects",
    query: {
      ...page,
      membership: /^true$/,
      order_by: /^id$/,
      sort: /^asc$/,
      id_after: /^\d+$/,
    },
    source: DOC("projects"),
  },

  // ---- environments
  {
    id: "list environments",
    method: "GET",
    path: "/projects/{id}/environments",
    query: { ...page, name: "optional", search: "optional", states: /^(available|stopping|stopped)$/ },
    source: DOC("environments"),
  },
];
