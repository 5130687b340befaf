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

function groupNames(stack: SandboxStack, appId: string): string {
  const sp = [...stack.entra.state.servicePrincipals.values()].find((s) => s.appId === appId);
  const names = [...stack.entra.state.groups.values()]
    .filter((g) => sp && g.members.has(sp.id))
    .map((g) => g.displayName);
  return names.join(", ") || "(none)";
}

function describeApps(stack: SandboxStack, projectId: number): string[] {
  const list = apps(stack, projectId).map((a) => {
    const env = a.tags.find((t) => t.startsWith("gitlab-env:"))?.slice("gitlab-env:".length);
    const subjects = [...a.fics.values()].map((f) => f.subject).join(", ");
    return `    ${env}: app ${a.appId} in group ${groupNames(stack, a.appId)}; FIC subjects: ${subjects}`;
  });
  return list.length ? list : ["    (no identity)"];
}

async function login(
  stack: SandboxStack,
  projectId: number,
  env: string,
  ref: string,
  refProtected: boolean,
): Promise<string> {
  const app = apps(stack, projectId).find((a) => a.tags.includes(`gitlab-env:${env}`));
  if (!app) return "no identity";
  // A deploy job: it names its environment, so GitLab puts ref_protected in `sub` (18.7+).
  const assertion = await stack.gitlab.mintIdToken({
    projectId,
    ref,
    refType: "branch",
    audience: AUDIENCE,
    environment: { name: env },
    refProtected,
  });
  const res = await stack.entra.exchange({ clientId: app.appId, assertion });
  if (res.status === 200) return "200 OK, Entra issued an access token";
  const body = res.body as { error_codes?: number[]; error?: string };
  return `${res.status} ${body.error ?? ""} AADSTS${body.error_codes?.[0] ?? "?"}`;
}

/**
 * A scripted walk through the whole product, for a newcomer: two teams' projects get identities in their own
 * groups, nobody obtains production by creating a project, an approver grants it, only protected refs log in,
 * then rename and delete.
 */
export async function playTour(stack: SandboxStack, say: Say): Promise<void> {
  const settle = () => waitForIdle([stack.service.queues.events, stack.service.queues.reports], 60_000);
  const { alice, dave, erin } = SANDBOX.users;
  const started = Date.now();
  const projects: Record<string, number> = {};

  say(
    "\n1. Two teams create projects: payments/api and shop/web (project_create system hooks reach the bot).",
  );
  for (const path of ["payments/api", "shop/web"]) {
    const { project, delivery } = await stack.driver.createProject(path, {
      members: { [alice.id]: 40, [dave.id]: 30 },
    });
    projects[path] = project.id;
    say(`   ${path}: webhook answered ${delivery.status} ${JSON.stringify(delivery.body)}`);
  }
  await settle();
  say("   Each gets staging, in its own team's group (policy template sg-{top}-{environment}):");
  for (const path of ["payments/api", "shop/web"]) {
    say(`   ${path}`);
    for (const l of describeApps(stack, projects[path] as number)) say(l);
  }

  say("\n2. Dave (a Developer elsewhere) creates his own project dave/side-project, hoping for production.");
  const side = await stack.driver.createProject("dave/side-project", { members: { [dave.id]: 40 } });
  await settle();
  for (const l of describeApps(stack, side.project.id)) say(l);
  const sideIssue = stack.gitlab
    .project(side.project.id)
    ?.issues.find((i) => i.description.includes("gitlab-entra-bot:onboarding"));
  const note = /Not set up automatically:[^`|]*/.exec(sideIssue?.description ?? "")?.[0]?.trim();
  say(`   production: no identity. The onboarding issue says: "${note}"`);

  const payments = projects["payments/api"] as number;
  const issue = stack.gitlab
    .project(payments)
    ?.issues.find((i) => i.description.includes("gitlab-entra-bot:onboarding"));
  if (issue) {
    say("\n3. Alice (Maintainer) comments `/entra onboard production` in payments/api's onboarding issue.");
    await stack.driver.comment(payments, issue.iid, alice.id, "/entra onboard production");
    await settle();
    say(
      `   production: ${apps(stack, payments).some((a) => a.tags.includes("gitlab-env:production")) ? "created" : "waiting for an approver (payments/leads)"}`,
    );
    say("   Erin, a member of the GitLab group payments/leads, comments `/entra approve production`.");
    await stack.driver.comment(payments, issue.iid, erin.id, "/entra approve production");
    await settle();
    for (const l of describeApps(stack, payments)) say(l);
  }

  say("\n4. Pipelines log in (the ID token's sub now carries ref_protected):");
  say(`   protected main -> production: ${await login(stack, payments, "production", "main", true)}`);
  say(
    `   a fork's merge request named main (unprotected) -> production: ${await login(stack, payments, "production", "main", false)}`,
  );
  say(
    `   feature/login -> production: ${await login(stack, payments, "production", "feature/login", false)}`,
  );
  say(`   unprotected develop -> staging: ${await login(stack, payments, "staging", "develop", false)}`);

  say("\n5. The project is renamed to payments/api-v2 (project_rename): the credentials follow.");
  await stack.driver.renameProject(payments, "payments/api-v2");
  await settle();
  for (const l of describeApps(stack, payments)) say(l);
  say(
    `   protected main -> production with the new path: ${await login(stack, payments, "production", "main", true)}`,
  );

  say(
    "\n6. The project is deleted (project_destroy, confirmed by GitLab's 404): every identity is retired, so the path cannot be reused to log in.",
  );
  const fics = () => apps(stack, payments).reduce((n, a) => n + a.fics.length, 0);
  const enabled = () =>
    apps(stack, payments).filter((a) =>
      [...stack.entra.state.servicePrincipals.values()].some(
        (sp) => sp.appId === a.appId && sp.accountEnabled,
      ),
    ).length;
  const before = { fics: fics(), enabled: enabled() };
  const app = apps(stack, payments).find((a) => a.tags.includes("gitlab-env:production"));
  // A protected main's production token, minted before the deletion.
  const token = await stack.gitlab.mintIdToken({
    projectId: payments,
    ref: "main",
    refType: "branch",
    audience: AUDIENCE,
    environment: { name: "production" },
    refProtected: true,
  });
  await stack.driver.deleteProject(payments);
  await settle();
  say(`   federated credentials: ${before.fics} -> ${fics()}`);
  say(`   enabled service principals: ${before.enabled} -> ${enabled()}`);
  say(`   app registrations kept, disabled, for the audit trail: ${apps(stack, payments).length}`);
  const res = app ? await stack.entra.exchange({ clientId: app.appId, assertion: token }) : undefined;
  const body = res?.body as { error_codes?: number[]; error?: string } | undefined;
  say(
    `   a protected main's production token minted before the deletion: ${res?.status} ${body?.error ?? ""} AADSTS${body?.error_codes?.[0] ?? "?"}`,
  );
  say(`\nTour finished in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
}
