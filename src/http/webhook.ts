import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import { Hono } from "hono";
import type { Config } from "../config/env.ts";
import type { Policy } from "../config/policy.ts";
import type { Actor, Intent, ProjectRef, Trigger } from "../gitlab/intents.ts";
import { isUnderNamespace } from "../gitlab/namespace.ts";
import { normalise } from "../gitlab/normalise.ts";
import type { Logger } from "../logging.ts";
import { enqueueIntent } from "../queue/enqueue.ts";
import {
  type Authentication,
  authenticateSigned,
  authenticateToken,
  buildKeyring,
  sourceKey,
  type WebhookSource,
  wantsSignature,
} from "./delivery-auth.ts";
import { instanceNames, namesAnotherInstance } from "./gitlab-instance.ts";
import { readLimitedBody } from "./read-body.ts";
import type { RecordRefusal, RefusalReason } from "./refusals.ts";

export interface WebhookDeps {
  config: Pick<Config, "bodyLimitBytes" | "gitlab">;
  policy: Policy;
  queue: Queue;
  logger: Logger;
  /** Called once per delivery with its outcome, for metrics. */
  observe?: (event: string, outcome: string, seconds: number) => void;
  /** Counts, logs and audits deliveries refused although a valid secret vouched for them. */
  recordRefusal?: RecordRefusal;
}

type Vars = { Variables: { requestId: string } };

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function projectOf(intent: Intent): ProjectRef | undefined {
  return "project" in intent ? intent.project : undefined;
}

/** The project a payload names, read leniently, for the record of a refusal that happens before parsing. */
function claimedProject(json: unknown): ProjectRef | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const b = json as Record<string, unknown>;
  const p = (typeof b.project === "object" && b.project !== null ? b.project : {}) as Record<string, unknown>;
  const id = p.id ?? b.project_id;
  const path = p.path_with_namespace ?? b.path_with_namespace;
  return typeof id === "number" && Number.isInteger(id) && id > 0 && typeof path === "string" && path !== ""
    ? { id, path }
    : undefined;
}

/** "System Hook/project_create" style, as the trigger names events; the header alone for the others. */
function eventLabel(event: string, json: unknown): string {
  const name =
    typeof json === "object" && json !== null ? (json as { event_name?: unknown }).event_name : undefined;
  return (event === "System Hook" || event === "Project Hook") && typeof name === "string"
    ? `${event}/${name.slice(0, 64)}`
    : event;
}

function parseJson(bytes: Uint8Array): { ok: true; json: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, json: JSON.parse(UTF8.decode(bytes)) };
  } catch (err) {
    return {
      ok: false,
      reason: err instanceof TypeError ? "body is not valid UTF-8" : "body is not valid JSON",
    };
  }
}

/**
 * POST /webhooks/gitlab: authenticate (which source vouches), bound the source, normalise, enqueue. Never
 * does the work inline. Answers 4xx only for a failed authentication (401), a source speaking out of bounds
 * (403), a body that is not JSON (400) or too large (413): everything else GitLab may send is 2xx, accepted
 * or ignored with a reason, because GitLab disables a hook after a few 4xx.
 */
export function webhookRoutes(deps: WebhookDeps): Hono<Vars> {
  const app = new Hono<Vars>();
  const { config, policy, queue } = deps;
  const keyring = buildKeyring(config.gitlab);
  const ourInstance = instanceNames(config.gitlab);
  if (config.gitlab.instances.length > 0) {
    deps.logger.warn(
      "GITLAB_INSTANCES is deprecated: X-Gitlab-Instance is not authenticated and no longer refuses anything; the bot serves GITLAB_URL only (remove the variable, or keep it only to list other names of that instance)",
    );
  }

  app.post("/webhooks/gitlab", async (c) => {
    const started = performance.now();
    const event = c.req.header("x-gitlab-event") ?? "";
    const token = c.req.header("x-gitlab-token");
    const signature = c.req.header("webhook-signature");
    const webhookId = c.req.header("webhook-id");
    const unsignedId = c.req.header("idempotency-key") ?? c.req.header("x-gitlab-event-uuid");
    const requestId = c.get("requestId");
    const log = deps.logger.child({
      reqId: requestId,
      gitlabEvent: event,
      gitlabEventId: unsignedId ?? webhookId,
    });
    const done = (outcome: string) =>
      deps.observe?.(event || "(none)", outcome, (performance.now() - started) / 1000);

    const refuse = async (
      reason: RefusalReason,
      status: 401 | 403,
      message: string,
      source: WebhookSource,
      json: unknown,
      project?: ProjectRef,
      actor?: Actor,
    ) => {
      await deps.recordRefusal?.({
        reason,
        status,
        message,
        source,
        event: eventLabel(event, json),
        eventId: webhookId ?? unsignedId ?? "(none)",
        ...(project ? { project } : {}),
        ...(actor ? { actor } : {}),
        ...(requestId ? { requestId } : {}),
      });
      if (!deps.recordRefusal) log.warn({ reason, source: sourceKey(source) }, "delivery refused");
      done(status === 401 ? "unauthorized" : "forbidden");
      return c.json({ error: status === 401 ? "unauthorized" : "forbidden", reason: message }, status);
    };
    const unauthorized = (reason: string) => {
      log.warn({ reason }, "webhook rejected");
      done("unauthorized");
      return c.json({ error: "unauthorized", reason }, 401);
    };

    const signed = wantsSignature(keyring, signature);
    let auth: Authentication | undefined;
    if (!signed) {
      // Checked before the body is read: a stranger's large body is never buffered.
      auth = authenticateToken(keyring, token);
      if (!auth.ok && !auth.source) return unauthorized(auth.reason);
    }

    const body = await readLimitedBody(c.req.raw, config.bodyLimitBytes);
    if (!body.ok) {
      log.warn({ limit: config.bodyLimitBytes }, "webhook body too large");
      done("too_large");
      return c.json(
        { error: "payload_too_large", reason: `body exceeds ${config.bodyLimitBytes} bytes` },
        413,
      );
    }

    if (signed) {
      auth = authenticateSigned(
        keyring,
        { id: webhookId, timestamp: c.req.header("webhook-timestamp"), signature },
        body.bytes,
        token,
      );
    }
    if (!auth?.ok) {
      if (!auth?.source || !auth.refusal) return unauthorized(auth?.reason ?? "not authenticated");
      const parsed = parseJson(body.bytes);
      const json = parsed.ok ? parsed.json : undefined;
      return refuse(auth.refusal, 401, auth.reason, auth.source, json, claimedProject(json));
    }
    const { source } = auth;

    if (source.kind === "namespace" && event === "System Hook") {
      const parsed = parseJson(body.bytes);
      const json = parsed.ok ? parsed.json : undefined;
      return refuse(
        "system_hook",
        403,
        `a group hook secret (namespace ${source.namespace}) cannot send System Hook deliveries`,
        source,
        json,
        claimedProject(json),
      );
    }

    const parsed = parseJson(body.bytes);
    if (!parsed.ok) {
      done("invalid");
      return c.json({ error: "bad_request", reason: parsed.reason }, 400);
    }

    const result = normalise(event, parsed.json, policy);
    if (result.kind === "ignored") {
      if (result.incomplete)
        log.warn({ reason: result.reason }, "webhook ignored: a relevant event lacked data");
      else log.info({ reason: result.reason }, "webhook ignored");
      done("ignored");
      return c.json({ ignored: true, reason: result.reason }, 200);
    }

    // A group hook speaks only for projects under its namespace. This is the cheap first line, on the path the
    // payload states; the worker checks the path GitLab's API reports before any Entra write.
    if (source.kind === "namespace") {
      const project = projectOf(result.intent);
      if (!project || !isUnderNamespace(project.path, source.namespace)) {
        return refuse(
          "outside_namespace",
          403,
          project
            ? `project ${project.path} is outside namespace ${source.namespace}, the only one this secret may speak for`
            : `a group hook secret (namespace ${source.namespace}) cannot send ${result.intent.type} events`,
          source,
          parsed.json,
          project,
          result.actor,
        );
      }
    }

    const instance = c.req.header("x-gitlab-instance");
    if (namesAnotherInstance(instance, ourInstance)) {
      const reason = `X-Gitlab-Instance names another GitLab instance; this bot serves ${config.gitlab.url ?? "GITLAB_URL"} only`;
      log.warn({ instance }, "webhook ignored: another GitLab instance");
      done("ignored");
      return c.json({ ignored: true, reason }, 200);
    }

    // A signed delivery is deduplicated on its signed webhook-id, not on a header an attacker could vary while
    // replaying it within the signature's 5 minutes; keys are per source, so one source cannot pre-empt another's.
    const deliveryId = auth.signed ? webhookId : unsignedId;
    const trigger: Trigger = {
      event: eventLabel(event, parsed.json),
      eventId: deliveryId ?? `generated-${randomUUID()}`,
      receivedAt: new Date().toISOString(),
      source,
      signed: auth.signed,
      ...(result.actor ? { actor: result.actor } : {}),
    };
    try {
      const dedupeKey = deliveryId
        ? `${sourceKey(source)}|${auth.signed ? "signed" : "key"}|${deliveryId}`
        : undefined;
      const { jobId, duplicate } = await enqueueIntent(queue, result.intent, trigger, dedupeKey);
      if (duplicate) {
        log.info({ jobId }, "duplicate delivery");
        done("duplicate");
        return c.json({ duplicate: true, jobId }, 200);
      }
      log.info({ jobId, intent: result.intent.type, source: sourceKey(source) }, "webhook accepted");
      done("accepted");
      return c.json({ jobId }, 202);
    } catch (err) {
      // Not 2xx: GitLab must record the delivery as failed so that it can be resent once Redis is back.
      log.error({ err: (err as Error).message }, "could not enqueue webhook");
      done("unavailable");
      return c.json({ error: "unavailable", reason: "queue (Redis) unavailable, retry later" }, 503);
    }
  });

  return app;
}
