import { randomUUID } from "node:crypto";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from "jose";
import { sandboxServerTls } from "../../src/sandbox/tls.ts";

/**
 * A Kubernetes service account token issuer, as Entra sees one: the API server's OIDC discovery document and
 * JWKS over HTTPS, and projected tokens shaped like the kubelet's (sub system:serviceaccount:<ns>:<name>, the
 * requested audience, a kubernetes.io claim). For tests of the bot's own workload identity.
 */
export interface ServiceAccountIssuer {
  url: string;
  mint(opts: {
    namespace: string;
    serviceAccount: string;
    audience: string;
    expiresInSeconds?: number;
  }): Promise<string>;
  close(): Promise<void>;
}

export async function startServiceAccountIssuer(): Promise<ServiceAccountIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  let url = "";
  const server = createServer(sandboxServerTls(), (req, res) => {
    const send = (body: unknown) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.url === "/.well-known/openid-configuration") {
      return send({
        issuer: url,
        jwks_uri: `${url}/openid/v1/jwks`,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
    }
    if (req.url === "/openid/v1/jwks") return send({ keys: [{ ...jwk, kid, use: "sig", alg: "RS256" }] });
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://localhost:${(server.address() as AddressInfo).port}`;
  return {
    url,
    mint: ({ namespace, serviceAccount, audience, expiresInSeconds = 3600 }) =>
      new SignJWT({
        "kubernetes.io": {
          namespace,
          serviceaccount: { name: serviceAccount, uid: randomUUID() },
          pod: { name: `${serviceAccount}-worker-0`, uid: randomUUID() },
        },
      })
        .setProtectedHeader({ alg: "RS256", kid })
        .setIssuer(url)
        .setSubject(`system:serviceaccount:${namespace}:${serviceAccount}`)
        .setAudience([audience])
        .setIssuedAt()
        .setNotBefore("0s")
        .setExpirationTime(`${expiresInSeconds}s`)
        .sign(privateKey),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
