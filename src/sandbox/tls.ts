import { readFileSync } from "node:fs";
import tls from "node:tls";

const dir = new URL("./certs/", import.meta.url);

/** Key and certificate for simulators listening on localhost over HTTPS. */
export function sandboxServerTls(): { key: string; cert: string } {
  return {
    key: readFileSync(new URL("localhost.key", dir), "utf8"),
    cert: readFileSync(new URL("localhost.pem", dir), "utf8"),
  };
}

export function sandboxCaPem(): string {
  return readFileSync(new URL("ca.pem", dir), "utf8");
}

let trusted = false;
/**
 * Adds the sandbox test CA to this process's default trust store, so that fetch (undici), node:https and
 * MSAL accept the simulators' certificates. Only for the sandbox and tests: production never calls it.
 */
export function trustSandboxCa(): void {
  if (trusted) return;
  tls.setDefaultCACertificates([...tls.getCACertificates("default"), sandboxCaPem()]);
  trusted = true;
}
