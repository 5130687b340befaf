import type { Redis } from "ioredis";

/**
 * How many refusal records one source may add to the audit trail per window, per kind of refusal. The trail
 * is never trimmed, and what a refused delivery names (project id, path, event name, note id) is the sender's
 * to vary: a holder of a group hook secret could otherwise grow it, and Redis (noeviction) with it, as fast as
 * the intake answers (thousands of records a second). Refusals beyond the budget are still counted
 * (geb_deliveries_refused_total) and logged; the trail says once per window that it stopped recording them
 * one by one. 50 a minute keeps every refusal of a misregistered hook (a few per event GitLab sends) and caps
 * a flood at 72,000 records a day per source and kind.
 */
export const REFUSAL_AUDIT_BUDGET = 50;
export const REFUSAL_AUDIT_WINDOW_MS = 60_000;

export type BudgetVerdict =
  /** Record it. */
  | "record"
  /** The first one over the budget: record that further ones in this window are not recorded. */
  | "exhausted"
  /** Do not record it. */
  | "over";

/** Takes one unit of the (prefix, key) budget of the current window. */
export async function takeAuditBudget(
  redis: Redis,
  keyPrefix: string,
  key: string,
  opts: { budget?: number; windowMs?: number; now?: number } = {},
): Promise<BudgetVerdict> {
  const budget = opts.budget ?? REFUSAL_AUDIT_BUDGET;
  const windowMs = opts.windowMs ?? REFUSAL_AUDIT_WINDOW_MS;
  const window = Math.floor((opts.now ?? Date.now()) / windowMs);
  const counter = `${keyPrefix}:audit-budget:${key}:${window}`;
  const [[, used]] = ((await redis
    .multi()
    .incr(counter)
    .pexpire(counter, windowMs * 2)
    .exec()) ?? [[null, 0]]) as [[unknown, number]];
  if (used <= budget) return "record";
  return used === budget + 1 ? "exhausted" : "over";
}
