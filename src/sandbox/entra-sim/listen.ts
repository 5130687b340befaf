import https from "node:https";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { sandboxServerTls } from "../tls.ts";

export interface HttpsListener {
  /** `https://localhost:PORT`: the sandbox certificate is issued for localhost, not for 127.0.0.1's name. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves a Hono app over HTTPS on 127.0.0.1 only: simulators expose unauthenticated control endpoints, so they
 * must never listen on a public interface.
 */
export function listenHttps(app: Hono, port = 0): Promise<HttpsListener> {
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch: app.fetch,
        port,
        hostname: "127.0.0.1",
        createServer: https.createServer,
        serverOptions: sandboxServerTls(),
      },
      (info: AddressInfo) => {
        resolve({
          url: `https://localhost:${info.port}`,
          port: info.port,
          close: () =>
            new Promise<void>((done) => {
              // Keep-alive sockets from undici/MSAL would otherwise hold close() open indefinitely.
              if (server instanceof https.Server) server.closeAllConnections();
              server.close(() => done());
            }),
        });
      },
    );
    server.once("error", reject);
  });
}
