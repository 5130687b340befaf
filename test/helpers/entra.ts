import { createTokenCredential } from "../../src/entra/credential.ts";
import type { GraphApi } from "../../src/entra/graph.ts";
import { createGraphApi } from "../../src/entra/graph-client.ts";
import { BotServicePrincipal } from "../../src/entra/self.ts";
import type { EntraSimulator } from "../../src/sandbox/entra-sim.ts";

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
