/**
 * npm run sandbox: the whole bot against built-in GitLab and Entra simulators, no account needed.
 *   npm run sandbox                 # start, print URLs and a curl to try
 *   npm run sandbox -- --tour       # also play a scripted tour (create, comment, log in, rename, delete)
 *   npm run sandbox -- --tour --exit  # play the tour and stop (what CI's smoke test runs)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import pino from "pino";
import { createLogger } from "../logging.ts";
import { clearPrefix, sandboxRedis } from "./redis.ts";
import { SANDBOX, startSandboxStack } from "./stack.ts";
import { playTour } from "./tour.ts";

const args = new Set(process.argv.slice(2));
const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const dir = resolve(".sandbox");
  mkdirSync(dir, { recursive: true });
  const redis = await sandboxRedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const logFile = resolve(dir, "bot.log");
  // The simulators start empty every time, so the bot's state in Redis must too.
  const prefix = process.env.QUEUE_PREFIX ?? "sandbox";
  await clearPrefix(redis.url, prefix);
  const logger = createLogger(
    process.env.LOG_LEVEL ?? "info",
    pino.destination({ dest: logFile, sync: false, mkdir: true }),
  );
  const stack = await startSandboxStack({
    redisUrl: redis.url,
    queuePrefix: prefix,
    logger,
    port: Number(process.env.PORT ?? 3000),
  });
  const api = stack.service.url as string;

  // A project that exists in the GitLab simulator, and the exact system hook GitLab would send for it.
  const project = stack.gitlab.addProject({
    path: "sandbox/try-me",
    members: { [SANDBOX.users.alice.id]: 40 },
  });
  const payloadFile = resolve(dir, "project_create.json");
  writeFileSync(
    payloadFile,
    `${JSON.stringify(
      {
        event_name: "project_create",
        created_at: project.createdAt,
        updated_at: project.createdAt,
        name: "try-me",
        path: "try-me",
        path_with_namespace: project.path,
        project_id: project.id,
        project_namespace_id: project.namespaceId,
        owner_name: "Alice",
        owner_email: "alice@example.com",
        owners: [{ name: "Alice", email: "alice@example.com" }],
        project_visibility: "private",
      },
      null,
      2,
    )}\n`,
  );

  say("gitlab-entra-bot sandbox is running");
  say(`  bot api          ${api}   (healthz, readyz, metrics, POST /webhooks/gitlab)`);
  say(`  queue UI         ${api}/admin/queues   user: any, password: ${stack.secrets.adminToken}`);
  say(`  read-only UI     password: ${stack.secrets.viewerToken}`);
  say(`  audit trail      curl -s -H 'Authorization: Bearer ${stack.secrets.adminToken}' ${api}/admin/audit`);
  say(`  GitLab simulator ${stack.gitlab.url}   (state: ${stack.gitlab.url}/_sim/state)`);
  say(`  Entra simulator  ${stack.entra.url}   (state: ${stack.entra.url}/_sim/state)`);
  say(
    `  Redis            ${redis.url}${redis.owned ? " (started by the sandbox, data in a temp folder)" : ""}`,
  );
  say(`  bot log          ${logFile}`);
  say("");
  say("Send the project creation GitLab would send:");
  say(
    `  curl -s ${api}/webhooks/gitlab -H 'X-Gitlab-Event: System Hook' -H 'X-Gitlab-Token: ${stack.secrets.webhook}' -H 'Idempotency-Key: try-1' -H 'Content-Type: application/json' --data @${payloadFile}`,
  );
  say(`then look at the onboarding issue: curl -sk ${stack.gitlab.url}/_sim/state | less`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await stack.close();
    await redis.stop();
    logger.flush();
  };
  process.on("SIGINT", () => void stop().then(() => process.exit(0)));
  process.on("SIGTERM", () => void stop().then(() => process.exit(0)));

  if (args.has("--tour")) {
    say("\nPlaying the tour (--tour):");
    await playTour(stack, say);
  }
  if (args.has("--exit")) {
    await stop();
    process.exit(0);
  }
  say("\nCtrl-C stops everything.");
}

main().catch((err: unknown) => {
  process.stderr.write(`sandbox failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
