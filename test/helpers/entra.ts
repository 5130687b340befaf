import { createTokenCredential } from "../../src/entra/credential.ts";
import type { GraphApi } from "../../src/entra/graph.ts";
import { createGraphApi } from "../../src/entra/graph-client.ts";
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
