import { setTimeout as delay } from "node:timers/promises";
import { EntraError } from "../entra/errors.ts";

/**
 * Waiting for Entra's replication after the bot created an object (reference/entra.md §9). Graph is not
 * read-your-writes across its replicas: for a while after a create, other calls answer as if the object did not
 * exist. That is only believable for objects the bot itself created recently, so every wait names the object
 * and the time the bot created it (kept in the registry pin, so a later job attempt knows it too).
 *
 * One retry layer, as the project's conventions ask: short pauses inside the step (so a fresh identity does not
 * cost a whole job retry), then a retryable ENTRA_REPLICATING error that BullMQ retries with its backoff; the
 * next attempt classifies the same answers the same way, from the pin, until `windowMs` after the create.
 * After that the answer is no longer replication, and the error says what it really is.
 */
export interface ReplicationWait {
  /** First pause inside a step; doubles up to maxDelayMs. */
  baseMs: number;
  maxDelayMs: number;
  /** How long one step keeps waiting before handing over to the job's retry. */
  stepBudgetMs: number;
  /** How long after its creation an object's absence is still believed to be replication. */
  windowMs: number;
  /** Injectable so tests never wait for real time. */
  sleep: (ms: number) => Promise<void>;
  now: () => number;
}

export const DEFAULT_REPLICATION_WAIT: ReplicationWait = {
  baseMs: 1_000,
  maxDelayMs: 15_000,
  stepBudgetMs: 45_000,
  windowMs: 5 * 60_000,
  sleep: (ms) => delay(ms),
  now: () => Date.now(),
};

export function replicationWait(overrides: Partial<ReplicationWait> = {}): ReplicationWait {
  return { ...DEFAULT_REPLICATION_WAIT, ...overrides };
}

export interface Replicating {
  /** The object Entra has not replicated, for the job log: "service principal X of app Y". */
  what: string;
  /** When the bot created it (ms since epoch); undefined when the bot did not create it, as far as it knows. */
  createdAt: number | undefined;
  /** Whether `err` is the answer a replica gives while it does not know the object yet. */
  isLag: (err: EntraError) => boolean;
  /**
   * The real cause, when the answer cannot be replication: the bot did not create the object recently
   * (`ageMs` undefined: not created by the bot at all). Default: a permanent error saying Entra still does not
   * know the object.
   */
  otherwise?: (err: EntraError, ageMs: number | undefined) => EntraError | undefined;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function graphSaid(err: EntraError): string {
  return `${err.status ?? "?"} ${err.graphCode ?? err.code}${err.graphMessage ? `: ${err.graphMessage}` : ""}`;
}

/** The default when the window has passed: still not replicated, and that is no longer normal. */
function stillMissing(
  r: Replicating,
  err: EntraError,
  ageMs: number | undefined,
  windowMs: number,
): EntraError {
  const since =
    ageMs === undefined
      ? "and the bot did not create it recently"
      : `${seconds(ageMs)} after the bot created it, longer than Entra's replication normally takes (the bot waits up to ${seconds(windowMs)})`;
  return new EntraError({
    code: "GRAPH_NOT_REPLICATED",
    permanent: true,
    ...(err.status !== undefined ? { status: err.status } : {}),
    ...(err.graphCode !== undefined ? { graphCode: err.graphCode } : {}),
    ...(err.graphMessage !== undefined ? { graphMessage: err.graphMessage } : {}),
    ...(err.requestId !== undefined ? { requestId: err.requestId } : {}),
    message: `Entra still answers as if ${r.what} did not exist (Graph: ${graphSaid(err)}) ${since}. This is not a permission or policy problem: check Microsoft Entra service health, then retry the job`,
  });
}

/**
 * Runs `fn`, pausing and retrying while it fails with the replication answer for `r` and `r` is young enough.
 * Logs one line per pause, naming what it waits for.
 */
export async function untilReplicated<T>(
  wait: ReplicationWait,
  r: Replicating,
  log: ((line: string) => void) | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const started = wait.now();
  let pause = wait.baseMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof EntraError) || !r.isLag(err)) throw err;
      const now = wait.now();
      const age = r.createdAt === undefined ? undefined : now - r.createdAt;
      if (age === undefined || age >= wait.windowMs) {
        throw r.otherwise?.(err, age) ?? stillMissing(r, err, age, wait.windowMs);
      }
      if (now - started + pause > wait.stepBudgetMs) {
        throw new EntraError({
          code: "ENTRA_REPLICATING",
          retryAfterMs: pause,
          ...(err.requestId !== undefined ? { requestId: err.requestId } : {}),
          message: `waiting for Entra to replicate ${r.what} (created ${seconds(age)} ago; Graph: ${graphSaid(err)}); the job retries and keeps waiting for up to ${seconds(wait.windowMs)} after the create`,
        });
      }
      log?.(
        `waiting for Entra to replicate ${r.what}, attempt ${attempt} (created ${seconds(age)} ago; Graph: ${graphSaid(err)}); next try in ${pause} ms`,
      );
      await wait.sleep(pause);
      pause = Math.min(pause * 2, wait.maxDelayMs);
    }
  }
}

/** Parses an ISO time from a registry pin; undefined when absent or unreadable. */
export function pinTime(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}
