import type { SubClaimComponent } from "../config/policy-schema.ts";
import type { ProjectRef } from "../gitlab/intents.ts";

/** The Entra objects that make up one (project, environment) identity. */
export interface IdentityRecord {
  environment: string;
  /** Object id of the app registration. */
  appObjectId: string;
  /** Application (client) id: what pipelines put in AZURE_CLIENT_ID. */
  appId: string;
  spObjectId: string;
  displayName: string;
}

export type ChangeKind =
  | "application"
  | "servicePrincipal"
  | "federatedIdentityCredential"
  | "groupMembership"
  | "ciVariable"
  | "issue"
  | "note"
  | "projectSetting"
  /** A webhook delivery or command the bot refused or found contradicted by GitLab's API. */
  | "delivery"
  | "approval";

/** One write made (or, in plan mode, that would be made). Audit records and comments are built from these. */
export interface Change {
  op: "create" | "update" | "delete" | "add" | "remove" | "refuse" | "observe";
  kind: ChangeKind;
  /** Human-readable target, e.g. FIC name or group id. */
  target: string;
  objectId?: string;
  detail?: string;
}

export type EnvironmentStatus = "unchanged" | "changed" | "would-change" | "refused" | "failed" | "removed";

export interface EnvironmentOutcome {
  environment: string;
  status: EnvironmentStatus;
  identity?: IdentityRecord;
  /** Ref rules allowed to log in, e.g. ["branch:main"]. */
  refs: string[];
  subjects: string[];
  groups: string[];
  changes: Change[];
  /** Operator-facing explanation when refused or failed. */
  message?: string;
}

export interface OnboardResult {
  project: ProjectRef;
  mode: "apply" | "plan";
  tenantId: string;
  issuer: string;
  audience: string;
  subClaimComponents: SubClaimComponent[];
  environments: EnvironmentOutcome[];
  /** Bot-written markdown shown above the report (e.g. why the subjects differ from the policy's). */
  notices?: string[];
}
