"""OAuth 2.1 resource server, as the MCP authorization spec has it: JWT access tokens from the
operator's authorization server, checked here before any call.

The SDK does the protocol (`AuthSettings`, a `TokenVerifier`): Protected Resource Metadata at
/.well-known/oauth-protected-resource/<path>, a 401 whose WWW-Authenticate names it, a 403 for a token
without the read scope. This module verifies the token itself, with joserfc: the signature against the
authorization server's JWKS (found through its metadata, kept for JWKS_TTL_S and fetched again for a key
id it has not seen), then the issuer, the audience (this server's canonical URL), the expiry and, for the
tools that change something (start, cancel), the write scope, which `WriteScopeGate` asks for with a 403
before the SDK sees the call.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import anyio
import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl

from .answers import send_json

logger = logging.getLogger(__name__)

JWKS_TTL_S = 600.0
REFETCH_AT_MOST_EVERY_S = 30.0  # an unknown key id fetches the JWKS again, at most this often
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
BODY_MAX = 1_000_000  # a tools/call post is read whole to see which tool it calls


@dataclass(frozen=True)
class OAuthSettings:
    issuer: str  # the authorization server, exactly as it writes `iss`
    resource: str  # this server's canonical URL (the MCP endpoint), the audience tokens must carry
    read_scope: str = "retab:read"
    write_scope: str = "retab:write"

    def auth_settings(self) -> AuthSettings:
        return AuthSettings(
            issuer_url=AnyHttpUrl(self.issuer),
            resource_server_url=AnyHttpUrl(self.resource),
            required_scopes=[self.read_scope],
            validate_token_resource=False,  # the verifier checks the audience itself
        )

    @property
    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))


class JwtVerifier:
    """The SDK's `TokenVerifier`: a JWT access token is valid, or the answer is None (the SDK's 401)."""

    def __init__(self, settings: OAuthSettings, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = anyio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            decoded = jwt.decode(token, await self._key_set(token), algorithms=ALGORITHMS)
            claims = decoded.claims
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.resource},
                exp={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, KeyError) as error:
            logger.info("refused an access token: %s", type(error).__name__)  # never the token
            return None
        scopes = str(claims.get("scope", "")).split()
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("sub") or ""),
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=self.settings.resource,
            subject=str(claims["sub"]) if "sub" in claims else None,
            claims={"iss": claims.get("iss")},
        )

    async def _key_set(self, token: str) -> KeySet:
        kid = _header(token).get("kid")
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > JWKS_TTL_S
            unknown = self._keys is not None and kid is not None and not _has_kid(self._keys, kid)
            may_refetch = time.monotonic() - self._fetched_at > REFETCH_AT_MOST_EVERY_S
            if self._keys is None or stale or (unknown and may_refetch):
                self._keys = await self._fetch_keys()
                self._fetched_at = time.monotonic()
        assert self._keys is not None
        return self._keys

    async def _fetch_keys(self) -> KeySet:
        issuer = self.settings.issuer.rstrip("/")
        async with httpx2.AsyncClient(transport=self._transport, timeout=10, follow_redirects=False) as http:
            jwks_uri = None
            for well_known in ("oauth-authorization-server", "openid-configuration"):
                answer = await http.get(f"{issuer}/.well-known/{well_known}")
                if answer.status_code == 200:
                    jwks_uri = answer.json().get("jwks_uri")
                    break
            if not jwks_uri:
                raise ValueError(f"{issuer} publishes no authorization server metadata with a jwks_uri")
            return KeySet.import_key_set((await http.get(jwks_uri)).raise_for_status().json())


def _header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    try:
        parsed = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:  # not a JWT: no kid, and decoding refuses it
        return {}
    return cast(dict[str, Any], parsed) if isinstance(parsed, dict) else {}


def _has_kid(keys: KeySet, kid: str) -> bool:
    try:
        keys.get_by_kid(kid)
    except (ValueError, KeyError):
        return False
    return True


class WriteScopeGate:
    """ASGI middleware: a tools/call of a write tool (start, cancel) by a token without the write scope
    gets 403 and `WWW-Authenticate: Bearer error="insufficient_scope"`, naming the scope to ask for."""

    def __init__(self, app: Any, verifier: JwtVerifier, write_tools: frozenset[str]) -> None:
        self._app = app
        self._verifier = verifier
        self._write_tools = write_tools

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._write_tools:
            await self._app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= BODY_MAX:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if len(body) > BODY_MAX:
            await send_json(send, 413, {"error": "request_too_large", "error_description": "At most 1 MB a request."})
            return
        if self._calls_a_write_tool(body) and not await self._may_write(scope):
            await self._refuse(send)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    def _calls_a_write_tool(self, body: bytes) -> bool:
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            return False  # not JSON: the SDK answers it
        messages = cast(list[Any], parsed) if isinstance(parsed, list) else [parsed]
        return any(self._tool_called(message) in self._write_tools for message in messages)

    @staticmethod
    def _tool_called(message: Any) -> str | None:
        if not isinstance(message, dict) or cast(dict[str, Any], message).get("method") != "tools/call":
            return None
        params: Any = cast(dict[str, Any], message).get("params")
        name: Any = cast(dict[str, Any], params).get("name") if isinstance(params, dict) else None
        return name if isinstance(name, str) else None

    async def _may_write(self, scope: dict[str, Any]) -> bool:
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token:
            return True  # no token at all: the SDK's 401 says what to do
        access = await self._verifier.verify_token(token.strip())
        return access is None or self._verifier.settings.write_scope in access.scopes  # invalid: the SDK's 401

    async def _refuse(self, send: Any) -> None:
        write = self._verifier.settings.write_scope
        said = f"Starting or cancelling a run needs the {write} scope."
        challenge = (
            f'Bearer error="insufficient_scope", scope="{write}", '
            f'resource_metadata="{self._verifier.settings.metadata_url}"'
        )
        payload = {"error": "insufficient_scope", "error_description": said}
        await send_json(send, 403, payload, [(b"www-authenticate", challenge.encode())])
