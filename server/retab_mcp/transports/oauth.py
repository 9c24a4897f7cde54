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
from collections.abc import Callable
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
    """The SDK's `TokenVerifier`: a JWT access token is valid, or the answer is None (the SDK's 401).

    Keys: the authorization server's JWKS, kept for JWKS_TTL_S. A token signed with a key id not in it (the
    server rotated its keys) fetches the JWKS again, at most once every REFETCH_AT_MOST_EVERY_S for all
    tokens together, so a flood of made-up key ids costs the authorization server one request per period.
    A fetch that fails keeps the keys held serving, stale or not, and is tried again no sooner than that
    period: what they cannot verify is refused (401), never a 500.
    """

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._monotonic = monotonic
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")  # when the keys held were fetched
        self._refetched_for_kid_at = float("-inf")  # when a key id not held last made it fetch them again
        self._failed_at = float("-inf")  # when a fetch last failed
        self._lock = anyio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            keys = await self._key_set(token)
            if keys is None:
                return None
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            claims = decoded.claims
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.resource},
                exp={"essential": True},
            ).validate(claims)
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
        except (JoseError, ValueError, KeyError, TypeError, RecursionError) as error:
            logger.info("refused an access token: %s", type(error).__name__)  # never the token
            return None

    async def _key_set(self, token: str) -> KeySet | None:
        """The keys to verify `token` with: those held, fetched again when stale or when they lack the
        token's key id (rate-limited); None when there are none to use."""
        kid = _header(token).get("kid")
        async with self._lock:
            now = self._monotonic()
            stale = self._keys is None or now - self._fetched_at > JWKS_TTL_S
            unknown = self._keys is not None and isinstance(kid, str) and not _has_kid(self._keys, kid)
            refetch = unknown and now - self._refetched_for_kid_at > REFETCH_AT_MOST_EVERY_S
            if (stale or refetch) and now - self._failed_at > REFETCH_AT_MOST_EVERY_S:
                if refetch and not stale:
                    self._refetched_for_kid_at = now
                try:
                    self._keys = await self._fetch_keys()
                    self._fetched_at = now
                except Exception as error:  # the authorization server is down or answers nonsense
                    self._failed_at = now
                    held = "the keys held go on serving" if self._keys is not None else "tokens are refused"
                    logger.warning(
                        "Could not fetch the signing keys of %s (%s); %s until it answers (tried again in %d s)",
                        self.settings.issuer,
                        type(error).__name__,
                        held,
                        REFETCH_AT_MOST_EVERY_S,
                    )
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
    except (JoseError, ValueError, KeyError):
        return False
    return True


class WriteScopeGate:
    """ASGI middleware, in front of every transport: a tools/call of a write tool (start, cancel) by a token
    without the write scope gets 403 and `WWW-Authenticate: Bearer error="insufficient_scope"`, naming the
    scope to ask for.

    The token is checked before the body is read: a request without a valid one goes on to the SDK's 401
    unread, so what an unauthenticated peer posts is never parsed here. (The tools check the scope again,
    tools/server.py, for any path that does not come through this gate.)"""

    def __init__(self, app: Any, verifier: JwtVerifier, write_tools: frozenset[str]) -> None:
        self._app = app
        self._verifier = verifier
        self._write_tools = write_tools

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._write_tools:
            await self._app(scope, receive, send)
            return
        access = await self._access(scope)
        if access is None or self._verifier.settings.write_scope in access.scopes:
            await self._app(scope, receive, send)  # no valid token: the SDK's 401; the write scope: anything goes
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
        if calls_a_tool_of(body, self._write_tools):
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

    async def _access(self, scope: dict[str, Any]) -> AccessToken | None:
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None
        return await self._verifier.verify_token(token.strip())

    async def _refuse(self, send: Any) -> None:
        write = self._verifier.settings.write_scope
        said = f"Starting or cancelling a run needs the {write} scope."
        challenge = (
            f'Bearer error="insufficient_scope", scope="{write}", '
            f'resource_metadata="{self._verifier.settings.metadata_url}"'
        )
        payload = {"error": "insufficient_scope", "error_description": said}
        await send_json(send, 403, payload, [(b"www-authenticate", challenge.encode())])


def calls_a_tool_of(body: bytes, tools: frozenset[str]) -> bool:
    """Whether a posted JSON-RPC message (or batch) calls one of `tools`. What cannot be read calls none: the
    SDK answers it. JSON nested too deep to parse is not read either."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        return False
    messages = cast(list[Any], parsed) if isinstance(parsed, list) else [parsed]
    return any(_tool_called(message) in tools for message in messages)


def _tool_called(message: Any) -> str | None:
    if not isinstance(message, dict) or cast(dict[str, Any], message).get("method") != "tools/call":
        return None
    params: Any = cast(dict[str, Any], message).get("params")
    name: Any = cast(dict[str, Any], params).get("name") if isinstance(params, dict) else None
    return name if isinstance(name, str) else None


def has_scope(user: object, scope: str) -> bool:
    """Whether an authenticated request's user (the SDK's `AuthenticatedUser`, in scope["user"]) holds `scope`."""
    scopes = getattr(user, "scopes", None)
    return isinstance(scopes, list) and scope in scopes
