import { EntraError } from "./errors.ts";
import type { GraphApi } from "./graph.ts";

/**
 * The bot's own service principal: the owner of every app and principal it creates, so the object id that
 * ownership checks compare against. Resolved once per process from AZURE_CLIENT_ID with
 * `GET /servicePrincipals(appId='{client id}')` (a read by alternate key, least privilege Application.Read.All,
 * which Application.ReadWrite.OwnedBy includes) and cached: the id of a service principal never changes. A
 * failed lookup is not cached, so a Graph outage at start does not stick.
 *
 * Why not the `oid` claim of the bot's access token: it is the same id, but reading it means decoding tokens
 * the Graph client keeps to itself; one read per process is cheaper than coupling to the credential.
 */
export class BotServicePrincipal {
  readonly #graph: GraphApi;
  readonly #clientId: string;
  #id: Promise<string> | undefined;

  constructor(graph: GraphApi, clientId: string) {
    this.#graph = graph;
    this.#clientId = clientId;
  }

  get clientId(): string {
    return this.#clientId;
  }

  objectId(): Promise<string> {
    this.#id ??= this.#resolve().catch((err: unknown) => {
      this.#id = undefined;
      throw err;
    });
    return this.#id;
  }

  async #resolve(): Promise<string> {
    const sp = await this.#graph.getServicePrincipalByAppId(this.#clientId);
    if (!sp) {
      throw new EntraError({
        code: "BOT_IDENTITY_UNKNOWN",
        message: `the bot's own service principal was not found: no service principal has appId ${this.#clientId} in this tenant. AZURE_CLIENT_ID must be the application (client) id of the bot's app registration in AZURE_TENANT_ID, and that app needs its service principal (Enterprise application)`,
      });
    }
    return sp.id;
  }
}
