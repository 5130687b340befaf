import { z } from "zod";
import { SUB_CLAIM_HEADS, SUB_CLAIM_TAILS } from "../config/policy-schema.ts";
import { projectRefSchema } from "../gitlab/intents.ts";
import { changeSchema, identityRecordSchema } from "./schemas.ts";
import type { OnboardResult } from "./types.ts";

/** OnboardResult as it travels in report job data (Redis is a boundary: parsed again on the way out). */
const outcomeSchema = z.object({
  environment: z.string(),
  status: z.enum(["unchanged", "changed", "would-change", "refused", "failed", "removed"]),
  identity: identityRecordSchema.optional(),
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
  notices: z.array(z.string().max(4000)).max(10).optional(),
});
