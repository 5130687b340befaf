import { randomUUID } from "node:crypto";
import { createTokenCredential } from "../../src/entra/credential.ts";
import type { GraphApi } from "../../src/entra/graph.ts";
import { createGraphApi } from "../../src/entra/graph-client.ts";
import { BotServicePrincipal } from "../../src/entra/self.ts";
import type { EntraSimulator, SimApp, SimSp } from "../../src/sandbox/entra-sim.ts";

/** The bot's real Graph client (MSAL client-secret login + graph-client) pointed at an Entra simulator. */
export function simGraph(sim: EntraSimulator, bot: { clientId: string; clientSecret: string }): GraphApi {
  return createGraphApi({
    graphBaseUrl: sim.url,
    credential: createTokenCredential({
      credential: {
        kind: "secret",
        tenantId: sim.tenantId,
        clientId: bot.clientId,
        clientSecret: bot.clientSecret,
      },
      authorityHost: sim.url,
      graphBaseUrl: sim.url,
    }),
  });
}

/** The bot's own service principal, resolved through the simulator like the worker does it. */
export function simBotSp(graph: GraphApi, bot: { clientId: string }): BotServicePrincipal {
  return new BotServicePrincipal(graph, bot.clientId);
}

export interface PlantedApp {
  app: SimApp;
  sp: SimSp | undefined;
  /** Everything about the app and its principal a write by the bot would change. */
  snapshot(): string;
  /** Groups its service principal is in (must stay empty: the bot never puts a planted app in a group). */
  groups(): string[];
}

/**
 * An app registration made by someone else, as any tenant user can: tags copied from the bot's identity for
 * (project, environment), its own owners, optionally its own service principal, a secret and a federated
 * credential of its own. Made an hour ago, so no simulated replication lag applies to it.
 */
export function plantApp(
  sim: EntraSimulator,
  o: {
    projectId: number;
    environment: string;
    path?: string;
    owners: string[];
    servicePrincipal?: boolean;
    secrets?: number;
    ownFic?: boolean;
  },
): PlantedApp {
  const made = Date.now() - 3_600_000;
  const app: SimApp = {
    id: randomUUID(),
    appId: randomUUID(),
    uniqueName: null,
    displayName: `gitlab-${o.path ?? `planted/${o.projectId}`}-${o.environment}`,
    description: null,
    tags: [
      "gitlab-entra-bot",
      `gitlab-project:${o.projectId}`,
      `gitlab-env:${o.environment}`,
      ...(o.path ? [`gitlab-path:${o.path}`] : []),
    ],
    signInAudience: "AzureADMyOrg",
    notes: null,
    createdDateTime: new Date(made).toISOString(),
    extra: {},
    owners: [...o.owners],
    passwordCredentials: o.secrets ?? 1,
    keyCredentials: 0,
    fics: o.ownFic
      ? [
          {
            id: randomUUID(),
            name: "attacker-main",
            issuer: "https://gitlab.attacker.example",
            subject: "project_path:mallory/tools:ref_type:branch:ref:main",
            audiences: ["api://AzureADTokenExchange"],
            description: null,
            claimsMatchingExpression: null,
            createdAtMs: made,
          },
        ]
      : [],
    createdAtMs: made,
  };
  sim.state.applications.set(app.id, app);
  let sp: SimSp | undefined;
  if (o.servicePrincipal ?? true) {
    sp = {
      id: randomUUID(),
      appId: app.appId,
      displayName: app.displayName,
      appDisplayName: app.displayName,
      tags: [],
      accountEnabled: true,
      owners: [...o.owners],
      passwordCredentials: 0,
      keyCredentials: 0,
      createdAtMs: made,
    };
    sim.state.servicePrincipals.set(sp.id, sp);
  }
  const groups = () =>
    sp ? [...sim.state.groups.values()].filter((g) => g.members.has((sp as SimSp).id)).map((g) => g.id) : [];
  return {
    app,
    sp,
    groups,
    snapshot: () =>
      JSON.stringify({
        app: sim.state.applications.get(app.id),
        sp: sp ? sim.state.servicePrincipals.get(sp.id) : null,
        groups: groups(),
      }),
  };
}

/** The apps the bot's own service principal alone owns, tagged for (project, environment). */
export function botApps(sim: EntraSimulator, projectId: number, environment?: string): SimApp[] {
  return [...sim.state.applications.values()].filter(
    (a) =>
      a.owners.length === 1 &&
      a.owners[0] === sim.botServicePrincipalId &&
      a.tags.includes(`gitlab-project:${projectId}`) &&
      (environment === undefined || a.tags.includes(`gitlab-env:${environment}`)),
  );
}
