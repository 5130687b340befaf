import type { SandboxStack } from "./stack.ts";
import { SANDBOX } from "./stack.ts";
import { waitForIdle } from "./wait.ts";

type Say = (line: string) => void;

const AUDIENCE = "api://AzureADTokenExchange";

function apps(stack: SandboxStack, projectId: number) {
  return [...stack.entra.state.applications.values()].filter((a) =>
    a.tags.includes(`gitlab-project:${projectId}`),
  );
}

function describeApps(stack: SandboxStack, projectId: number): string[] {
  return apps(stack, projectId).map((a) => {
    const env = a.tags.find((t) => t.startsWith("gitlab-env:"))?.slice("gitlab-env:".length);
    const subjects = [...a.fics.values()].map((f) => f.subject).join(", ");
    return `    ${env}: app ${a.appId}, FIC subjects: ${subjects}`;
  });
}

async function login(stack: SandboxStack, projectId: number, env: string, ref: string): Promise<string> {
  const app = apps(stack, projectId).find((a) => a.tags.includes(`gitlab-env:${env}`));
  if (!app) return "no identity";
  const assertion = await stack.gitlab.mintIdToken({ projectId, ref, refType: "branch", audience: AUDIENCE });
  const res = await stack.entra.exchange({ clientId: app.appId, assertion });
  if (res.status === 200) return "200 OK, Entra issued an access token";
  const body = res.body as { error_codes?: number[]; error?: string };
  return `${res.status} ${body.error ?? ""} AADSTS${body.error_codes?.[0] ?? "?"}`;
}

/** A scripted walk through the whole product, for a newcomer: create, comment, log in, rename, delete. */
export async function playTour(stack: SandboxStack, say: Say): Promise<void> {
  const settle = () => waitForIdle([stack.service.queues.events, stack.service.queues.reports], 60_000);
  const { alice, dave } = SANDBOX.users;
  const started = Date.now();

  say("\n1. Alice creates the project demo/webapp in GitLab (a project_create system hook reaches the bot).");
  const { project, delivery } = await stack.driver.createProject("demo/webapp", {
    members: { [alice.id]: 40, [dave.id]: 30 },
  });
  say(`   webhook answered ${delivery.status} ${JSON.stringify(delivery.body)}`);
  await settle();
  say("   Entra now holds one app registration per environment:");
  for (const l of describeApps(stack, project.id)) say(l);
  const issue = stack.gitlab
    .project(project.id)
    ?.issues.find((i) => i.description.includes("gitlab-entra-bot:onboarding"));
  say(
    `   GitLab: onboarding issue #${issue?.iid} "${issue?.title}" with the CI snippet (${issue?.description.length} chars)`,
  );
  say(
    `   CI variables: ${(stack.gitlab.project(project.id)?.variables ?? []).map((v) => `${v.key}[${v.environmentScope}]`).join(", ")}`,
  );

  say("\n2. A pipeline on main deploys to production; one on feature/login tries too.");
  say(`   main -> production: ${await login(stack, project.id, "production", "main")}`);
  say(`   feature/login -> production: ${await login(stack, project.id, "production", "feature/login")}`);

  if (issue) {
    say(
      "\n3. Dave (developer) comments `/entra onboard staging` in the issue, then `/entra onboard production`.",
    );
    await stack.driver.comment(project.id, issue.iid, dave.id, "/entra onboard staging");
    await settle();
    await stack.driver.comment(project.id, issue.iid, dave.id, "/entra onboard production");
    await settle();
    const notes = stack.gitlab.project(project.id)?.issues.find((i) => i.iid === issue.iid)?.notes ?? [];
    const reply = notes.filter((n) => n.authorId === SANDBOX.users.bot.id).at(-1);
    say(
      `   the bot keeps one status note, edited in place; it now says: "${reply?.body
        .split("\n")
        .find((l) => l.trim() && !l.startsWith("<!--"))
        ?.slice(0, 160)}"`,
    );
  }

  say("\n4. The project is renamed to demo/webapp-v2 (project_rename): the credentials follow.");
  await stack.driver.renameProject(project.id, "demo/webapp-v2");
  await settle();
  for (const l of describeApps(stack, project.id)) say(l);
  say(`   main -> production with the new path: ${await login(stack, project.id, "production", "main")}`);

  say(
    "\n5. The project is deleted (project_destroy, confirmed by GitLab's 404): every identity is retired, so the path cannot be reused to log in.",
  );
  const fics = () => apps(stack, project.id).reduce((n, a) => n + a.fics.length, 0);
  const enabled = () =>
    apps(stack, project.id).filter((a) =>
      [...stack.entra.state.servicePrincipals.values()].some(
        (sp) => sp.appId === a.appId && sp.accountEnabled,
      ),
    ).length;
  const before = { fics: fics(), enabled: enabled() };
  const app = apps(stack, project.id).find((a) => a.tags.includes("gitlab-env:production"));
  const token = await stack.gitlab.mintIdToken({
    projectId: project.id,
    ref: "main",
    refType: "branch",
    audience: AUDIENCE,
  });
  await stack.driver.deleteProject(project.id);
  await settle();
  say(`   federated credentials: ${before.fics} -> ${fics()}`);
  say(`   enabled service principals: ${before.enabled} -> ${enabled()}`);
  say(`   app registrations kept, disabled, for the audit trail: ${apps(stack, project.id).length}`);
  const res = app ? await stack.entra.exchange({ clientId: app.appId, assertion: token }) : undefined;
  const body = res?.body as { error_codes?: number[]; error?: string } | undefined;
  say(
    `   a main pipeline token minted before the deletion: ${res?.status} ${body?.error ?? ""} AADSTS${body?.error_codes?.[0] ?? "?"}`,
  );
  say(`\nTour finished in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
}
