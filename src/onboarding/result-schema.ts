import { z } from "zod";
import { SUB_CLAIM_HEADS, SUB_CLAIM_TAILS } from "../config/policy-schema.ts";
import { projectRefSchema } from "../gitlab/intents.ts";
import type { OnboardResult } from "./types.ts";

/** OnboardResult as it travels in report job data (Redis is a boundary: parsed again on the way out). */
const changeSchema = z.object({
  op: z.enum(["create", "update", "delete", "add", "remove"]),
  kind: z.enum([
    "application",
    "servicePrincipal",
    "federatedIdentityCredential",
    "groupMembership",
    "ciVariable",
    "issue",
    "note",
    "projectSetting",
  ]),
  target: z.string(),
  objectId: z.string().optional(),
  detail: z.string().optional(),
});

const identitySchema = z.object({
  environment: z.string(),
  appObjectId: z.string(),
  appId: z.string(),
  spObjectId: z.string(),
  displayName: z.string(),
});

const outcomeSchema = z.object({
  environment: z.string(),
  status: z.enum(["unchanged", "changed", "would-change", "refused", "failed", "removed"]),
  identity: identitySchema.optional(),
  refs: z.array(z.string()),
  subjects: z.array(z.string()),
  groups: z.array(z.string()),
  changes: z.array(changeSchema),
  message: z.string().optional(),
});

export const onboardResultSchema: z.ZodType<OnboardResult> = z.object({
  project: projectRefSchema,
  mode: z.enum(["apply", "plan"]),
  tenantId: z.string(),
  issuer: z.string(),
  audience: z.string(),
  subClaimComponents: z.array(z.enum([...SUB_CLAIM_HEADS, ...SUB_CLAIM_TAILS])),
  environments: z.array(outcomeSchema),
});
