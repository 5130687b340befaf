import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import { Hono } from "hono";
import type { Config } from "../config/env.ts";
import type { Policy } from "../config/policy.ts";
import type { Trigger } from "../gitlab/intents.ts";
import { normalise } from "../gitlab/normalise.ts";
import type { Logger } from "../logging.ts";
import { enqueueIntent } from "../queue/enqueue.ts";
import { readLimitedBody } from "./read-body.ts";
import { verifySignature, verifyToken } from "./verify.ts";

export interface WebhookDeps {
  config: Pick<Config, "bodyLimitBytes" | "gitlab">;
  policy: Policy;
  queue: Queue;
  logger: Logger;
  /** Called once per delivery with its outcome, for metrics. */
  observe?: (event: string, outcome: string, seconds: number) => void;
}

type Vars = { Variables: { requestId: string } };

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** POST /webhooks/gitlab: verify, validate, normalise, enqueue. Never does the work inline. */
export function webhookRoutes(deps: WebhookDeps): Hono<Vars> {
  const app = new Hono<Vars>();
  const { config, policy, queue } = deps;

  app.post("/webhooks/gitlab", async (c) => {
    const started = performance.now();
    const event = c.req.header("x-gitlab-event") ?? "";
    const eventId =
      c.req.header("idempotency-key") ?? c.req.header("x-gitlab-event-uuid") ?? c.req.header("webhook-id");
    const log = deps.logger.child({ reqId: c.get("requestId"), gitlabEvent: event, gitlabEventId: eventId });
    const done = (outcome: string) =>
      deps.observe?.(event || "(none)", outcome, (performance.now() - started) / 1000);

    const signature = c.req.header("webhook-signature");
    const useSignature = signature !== undefined && config.gitlab.signingTokens.length > 0;
    if (!useSignature && !verifyToken(c.req.header("x-gitlab-token"), config.gitlab.webhookSecrets)) {
      const reason =
        c.req.header("x-gitlab-token") === undefined ? "missing X-Gitlab-Token" : "wrong X-Gitlab-Token";
      log.warn({ reason }, "webhook rejected");
      done("unauthorized");
      return c.json({ error: "unauthorized", reason }, 401);
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

    if (useSignature) {
      const verdict = verifySignature(
        { id: c.req.header("webhook-id"), timestamp: c.req.header("webhook-timestamp"), signature },
        body.bytes,
        config.gitlab.signingTokens,
      );
      if (!verdict.ok) {
        log.warn({ reason: verdict.reason }, "webhook rejected");
        done("unauthorized");
        return c.json({ error: "unauthorized", reason: verdict.reason }, 401);
      }
    }

    const instance = c.req.header("x-gitlab-instance");
    if (config.gitlab.instances.length > 0 && (!instance || !config.gitlab.instances.includes(instance))) {
      log.warn({ instance }, "webhook from an unexpected GitLab instance");
      done("unauthorized");
      return c.json({ error: "unauthorized", reason: "X-Gitlab-Instance is not an accepted instance" }, 401);
    }

    if (!event) {
      done("invalid");
      return c.json({ error: "bad_request", reason: "X-Gitlab-Event header is required" }, 400);
    }

    let json: unknown;
    try {
      json = JSON.parse(UTF8.decode(body.bytes));
    } catch (err) {
      done("invalid");
      const reason = err instanceof TypeError ? "body is not valid UTF-8" : "body is not valid JSON";
      return c.json({ error: "bad_request", reason }, 400);
    }

    const result = normalise(event, json, policy);
    if (result.kind === "invalid") {
      log.warn({ reason: result.reason, issues: result.issues }, "webhook body invalid");
      done("invalid");
      return c.json({ error: "bad_request", reason: result.reason, issues: result.issues }, 400);
    }
    if (result.kind === "ignored") {
      log.info({ reason: result.reason }, "webhook ignored");
      done("ignored");
      return c.json({ ignored: true, reason: result.reason }, 200);
    }

    const trigger: Trigger = {
      event:
        event === "System Hook" || event === "Project Hook"
          ? `${event}/${String((json as { event_name?: unknown }).event_name)}`
          : event,
      eventId: eventId ?? `generated-${randomUUID()}`,
      receivedAt: new Date().toISOString(),
      source: { kind: "instance" },
      signed: useSignature,
      ...(instance ? { instance } : {}),
      ...(result.actor ? { actor: result.actor } : {}),
    };
    try {
      const { jobId, duplicate } = await enqueueIntent(queue, result.intent, trigger, eventId);
      if (duplicate) {
        log.info({ jobId }, "duplicate delivery");
        done("duplicate");
        return c.json({ duplicate: true, jobId }, 200);
      }
      log.info({ jobId, intent: result.intent.type }, "webhook accepted");
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
