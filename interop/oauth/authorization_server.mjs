// An OAuth 2.1 authorization server for the tests: oidc-provider, configured as the tests need it.
//
//   node interop/oauth/authorization_server.mjs --jwks KEYS.json
//
// It issues JWT access tokens by the client_credentials grant (client "agent", secret "agent-secret")
// for whatever resource (RFC 8707) the token request names, with the scopes asked for among
// "retab:read retab:write", each valid for ten minutes. It prints "issuer <url>" once it listens.
// POST /_test/clock?offset_s=N moves its clock by N seconds, so that a test can have a token that is
// already expired when it is issued without waiting for one to expire.
import http from "node:http";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import Provider from "oidc-provider";

const { values } = parseArgs({ options: { jwks: { type: "string" } } });
const jwks = JSON.parse(readFileSync(values.jwks, "utf8"));
const realNow = Date.now;
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    jwks,
    clients: [
      {
        client_id: "agent",
        client_secret: "agent-secret",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
      },
    ],
    scopes: ["retab:read", "retab:write"],
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          scope: "retab:read retab:write",
          audience: resource,
          accessTokenFormat: "jwt",
          accessTokenTTL: 600,
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
  });
  const callback = provider.callback();
  server.on("request", (req, res) => {
    if (req.method === "POST" && req.url.startsWith("/_test/clock")) {
      offsetMs = Number(new URL(req.url, issuer).searchParams.get("offset_s")) * 1000;
      return res.writeHead(204).end();
    }
    return callback(req, res);
  });
  console.log(`issuer ${issuer}`);
});
