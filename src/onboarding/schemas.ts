import { z } from "zod";

/** One change (see Change in types.ts), as stored in the audit trail and in report job data. */
export const changeSchema = z.strictObject({
  /** "refuse": the bot declined to act (forged delivery, planted object, missing approval); "observe": noted, no write. */
  op: z.enum(["create", "update", "delete", "add", "remove", "refuse", "observe"]),
  kind: z.enum([
    "application",
    "servicePrincipal",
    "federatedIdentityCredential",
    "groupMembership",
    "ciVariable",
    "issue",
    "note",
    "projectSetting",
    "delivery",
    "approval",
  ]),
  target: z.string().min(1).max(1000),
  objectId: z.string().max(200).optional(),
  detail: z.string().max(4000).optional(),
});

/** IdentityRecord (types.ts), as stored in the registry and in report job data. */
export const identityRecordSchema = z.object({
  environment: z.string(),
  appObjectId: z.string(),
  appId: z.string(),
  spObjectId: z.string(),
  displayName: z.string(),
});
