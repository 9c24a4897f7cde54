// An OAuth 2.1 authorization server for the tests: oidc-provider, configured as the tests need it.
//
//   node interop/oauth/authorization_server.mjs --jwks KEYS.json [--next-jwks LATER.json ...]
//
// It issues JWT access tokens by the client_credentials grant (client "agent", secret "agent-secret")
// for whatever resource (RFC 8707) the token request names, with the scopes asked for among
// "retab:read retab:write", each valid for ten minutes. It prints "issuer <url>" once it listens.
// Test controls, outside OAuth:
// - POST /_test/clock?offset_s=N moves its clock by N seconds, so that a test can have a token that is
//   already expired when it is issued without waiting for one to expire;
// - POST /_test/rotate rotates its signing keys: the next --next-jwks file (given in order) becomes the
//   key set, new tokens are signed with its first key, and its JWKS lists that file's keys;
// - POST /_test/outage?on=1 (or on=0) makes its metadata and JWKS answer 503, as an outage would;
// - GET /_test/stats says how many times its JWKS was asked for.
import http from "node:http";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import Provider from "oidc-provider";

const { values } = parseArgs({
  options: { jwks: { type: "string" }, "next-jwks": { type: "string", multiple: true, default: [] } },
});
const keySets = [values.jwks, ...values["next-jwks"]].map((file) => JSON.parse(readFileSync(file, "utf8")));
const realNow = Date.now;
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;

function provider(issuer, jwks) {
  return new Provider(issuer, {
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
}

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const callbacks = keySets.map((jwks) => provider(issuer, jwks).callback());
  let current = 0;
  let outage = false;
  let jwksServed = 0;
  server.on("request", (req, res) => {
    const url = new URL(req.url, issuer);
    if (req.method === "POST" && url.pathname === "/_test/clock") {
      offsetMs = Number(url.searchParams.get("offset_s")) * 1000;
      return res.writeHead(204).end();
    }
    if (req.method === "POST" && url.pathname === "/_test/rotate") {
      if (current + 1 >= callbacks.length) return res.writeHead(409).end("no more key sets");
      current += 1;
      return res.writeHead(204).end();
    }
    if (req.method === "POST" && url.pathname === "/_test/outage") {
      outage = url.searchParams.get("on") === "1";
      return res.writeHead(204).end();
    }
    if (req.method === "GET" && url.pathname === "/_test/stats") {
      return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jwks: jwksServed }));
    }
    const published = url.pathname === "/jwks" || url.pathname.startsWith("/.well-known/");
    if (published && outage) return res.writeHead(503).end("unavailable");
    if (url.pathname === "/jwks") jwksServed += 1;
    return callbacks[current](req, res);
  });
  console.log(`issuer ${issuer}`);
});
