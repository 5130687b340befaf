import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { Redis } from "ioredis";
import type { Logger } from "../logging.ts";
import { healthRoutes } from "./health.ts";
import { type WebhookDeps, webhookRoutes } from "./webhook.ts";

export interface AppDeps extends WebhookDeps {
  redis: Redis;
  logger: Logger;
  /** Extra route groups (admin, metrics) mounted at the root. */
  extra?: Hono[];
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.use(requestId({ headerName: "X-Request-Id" }));
  app.route("/", healthRoutes(deps.redis));
  app.route("/", webhookRoutes(deps));
  for (const routes of deps.extra ?? []) app.route("/", routes);
  app.notFound((c) => c.json({ error: "not_found" }, 404));
  app.onError((err, c) => {
    deps.logger.error({ err: err.message, path: c.req.path }, "unhandled error");
    return c.json({ error: "internal_error", reason: "unexpected error; see the service log" }, 500);
  });
  return app;
}
