"""Serving over streamable HTTP or SSE: who may bind where, who may call, and how long connections live.

The rules, in the order a request meets them:
- Binding: loopback by default. A non-loopback address is refused at start unless a token is set
  (RETAB_MCP_AUTH_TOKEN) or the operator says authentication is done in front (--auth-handled-by-proxy).
- DNS-rebinding protection, always on (origins.py): the Host header must be a loopback name or one
  listed in RETAB_MCP_ALLOWED_HOSTS (for a deployment behind a proxy or on a real hostname), and a
  browser's Origin must be loopback or listed in RETAB_MCP_ALLOWED_ORIGINS, host and port compared exactly.
- Authentication: with a token, every request needs `Authorization: Bearer <token>` (the scheme in any
  case), the token compared in constant time; anything else gets 401 before the MCP app sees it.
- Per-user keys (RETAB_MCP_PER_USER_KEYS): every request must carry its caller's Retab key in
  X-Retab-Api-Key, or it gets 401 (caller_keys.py); the tools then act with that key alone.
- Timeouts: an idle keep-alive connection outlives the longest wait, and shutdown gives in-flight
  calls a short grace before cancelling them.
- Bounds: a request must be read whole within a time bound and connections stay below the file limit
  (connections.py); sessions and SSE streams are bounded per client and in total (sessions.py).
- Failures nothing else handled: a JSON 500 and one rate-limited log line (failures.py).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..base import telemetry
from ..base.config import Settings
from .answers import send_json
from .caller_keys import CallerKeyGate
from .connections import default_max_connections, guarded_protocol
from .failures import FailuresInOneLine
from .oauth import JwtVerifier, WriteScopeGate
from .operations import OperationsRoutes, ReadyCheck, metrics_endpoint
from .origins import HostAndOriginGate
from .sessions import SessionLimits, SessionTable, SseSessions, StreamableHttpSessions
from .sockets import listening_socket
from .streams import OpenStreams

if TYPE_CHECKING:
    from ..tools.server import RetabServer

logger = logging.getLogger(__name__)

HttpTransport = Literal["http", "sse"]
SHUTDOWN_GRACE_S = 2
KEEP_ALIVE_MARGIN_S = 15
SDK_BACKSTOP_MARGIN_S = 60
SDK_BACKSTOP_MARGIN_SESSIONS = 50


class ServingError(Exception):
    """The server cannot be served as asked; the message says what to change."""


@dataclass(frozen=True)
class HttpOptions:
    transport: HttpTransport = "http"
    host: str = "127.0.0.1"
    port: int = 8000
    stateless: bool = False
    auth_handled_by_proxy: bool = False

    @property
    def path(self) -> str:
        return "/mcp" if self.transport == "http" else "/sse"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(options: HttpOptions, settings: Settings) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    if is_loopback(options.host) or settings.auth_token or settings.oauth_issuer or options.auth_handled_by_proxy:
        return
    raise ServingError(
        f"refusing to serve on {options.host} without authentication: anyone who can reach that address "
        "could call the tools with your Retab key. Set RETAB_MCP_AUTH_TOKEN to a long random secret "
        '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`) and send it as '
        "`Authorization: Bearer <token>`, or pass --auth-handled-by-proxy if a proxy in front authenticates."
    )


def allowed_hosts(options: HttpOptions, settings: Settings) -> list[str]:
    """Host values accepted besides loopback ones: the operator's, and the address bound if it is a name."""
    hosts = list(settings.allowed_hosts)
    if not is_loopback(options.host) and options.host not in ("0.0.0.0", "::"):
        hosts.append(f"[{options.host}]" if ":" in options.host else options.host)
    return hosts


class BearerTokenGate:
    """ASGI middleware: HTTP requests without the right bearer token get 401; lifespan passes through."""

    def __init__(self, app: Any, token: str) -> None:
        self._app = app
        self._expected = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            payload = {"error": "unauthorized", "message": "Send Authorization: Bearer <RETAB_MCP_AUTH_TOKEN>."}
            await send_json(send, 401, payload, [(b"www-authenticate", b'Bearer realm="retab-mcp"')])
            return
        await self._app(scope, receive, send)

    def _authorized(self, scope: dict[str, Any]) -> bool:
        provided = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                provided = value
                break
        # The scheme is case-insensitive (RFC 9110, 11.1); the token is compared in constant time.
        scheme, _, token = provided.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._expected)


class ClosedSessionGuard:
    """ASGI middleware for SSE: a post to a session that closed while it was handled.

    The SDK answers a post that is not JSON-RPC with 400 and then hands the error to the session, which
    ends it; a post that races that end finds the session's stream closed, and the SDK's handler raises
    ClosedResourceError, which uvicorn logs as a crash with a traceback. The peer's mistake is not a
    crash: the answer already sent stands, or the post gets the 404 of a session that does not exist.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, tracking_send)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            if scope["type"] != "http":
                raise
            if not started:
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"Could not find session"})


@dataclass
class HttpApp:
    """The ASGI app to serve, with the parts of it that shutdown and the session reaper act on."""

    app: Any
    streams: OpenStreams
    sessions: SessionTable | None  # None when stateless: there are no sessions


def build_app(server: RetabServer, options: HttpOptions, settings: Settings) -> HttpApp:
    # Host and Origin are checked by HostAndOriginGate, exactly; the SDK's own check matches prefixes
    # (`127.0.0.1:*` let `127.0.0.1:8771.evil.com` in) and logs each refusal in full, so it is off.
    # The SDK still checks the Content-Type of posts.
    sdk_checks = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    table = None if options.stateless else SessionTable(SessionLimits.from_settings(settings))
    if options.transport == "http":
        sdk_app = server.streamable_http_app(
            stateless_http=options.stateless,
            host=options.host,
            transport_security=sdk_checks,
            # The SDK's own bounds stay as a backstop behind ours (sessions.py), which close sessions first.
            session_idle_timeout=settings.session_idle_s + SDK_BACKSTOP_MARGIN_S,
            max_sessions=settings.max_sessions + SDK_BACKSTOP_MARGIN_SESSIONS,
        )
        streams = OpenStreams(_with_write_scope(sdk_app, server, settings))
        app: Any = streams if table is None else StreamableHttpSessions(streams, table)
    else:
        sdk_sse = server.sse_app(host=options.host, transport_security=sdk_checks)
        sse_app = ClosedSessionGuard(_with_write_scope(sdk_sse, server, settings))
        streams = OpenStreams(sse_app)
        assert table is not None
        app = SseSessions(sse_app, table, streams)
    if settings.per_user_keys:
        app = CallerKeyGate(app)
    if settings.auth_token:
        app = BearerTokenGate(app, settings.auth_token)
    gate = HostAndOriginGate(
        app, allowed_hosts=allowed_hosts(options, settings), allowed_origins=settings.allowed_origins
    )
    metrics = BearerTokenGate(metrics_endpoint, settings.auth_token) if settings.auth_token else None
    checks = [("retab_api", _api_reachable(server))]
    if settings.redis_url:
        checks.append(("redis", _redis_reachable(server)))
    telemetry.enable()  # this server has a /metrics to show: count from here on
    operations = OperationsRoutes(gate, checks, metrics_app=metrics)
    return HttpApp(FailuresInOneLine(operations), streams, table)


def _api_reachable(server: MCPServer[Any]) -> ReadyCheck:
    async def check() -> str | None:
        state = getattr(server, "state", None)
        if state is None:
            return "not started"
        await state.ready()  # open already, over HTTP
        return await state.client.unreachable()

    return check


def _redis_reachable(server: MCPServer[Any]) -> ReadyCheck:
    async def check() -> str | None:
        state = getattr(server, "state", None)
        if state is None or state.hub is None:
            return "not started"
        return await state.hub.ping()

    return check


def _with_write_scope(app: Any, server: RetabServer, settings: Settings) -> Any:
    """With OAuth and the write tools on, their calls need the write scope too (oauth.py). Every transport's
    app goes through here: test_oauth.py holds each of them to it."""
    verifier = getattr(server, "token_verifier", None)
    if not isinstance(verifier, JwtVerifier) or not settings.allow_writes:
        return app
    return WriteScopeGate(app, verifier, server.write_tools)  # build_server's: no default that lets writes through


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def uvicorn_config(app: Any, options: HttpOptions, settings: Settings) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_config=None,  # uvicorn's records go through our handler, and so through its secret redaction
        access_log=False,
        # A client may hold a connection idle between waits; it must not be cut while a wait could run.
        timeout_keep_alive=int(settings.max_wait_s) + KEEP_ALIVE_MARGIN_S,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        http=guarded_protocol(settings.request_read_timeout_s, connection_cap(settings)),
    )


def connection_cap(settings: Settings) -> int:
    """The operator's cap, never above what the file limit leaves room for."""
    room = default_max_connections()
    if settings.max_connections is None:
        return room
    if settings.max_connections > room:
        logger.warning(
            "RETAB_MCP_MAX_CONNECTIONS=%d is above what the file limit leaves room for; using %d "
            "(raise the limit with `ulimit -n` to allow more)",
            settings.max_connections,
            room,
        )
    return min(settings.max_connections, room)


def server_without_signal_handlers(config: Any) -> Any:
    """A uvicorn server that leaves signals to its caller: uvicorn's own handlers would re-raise the signal
    at exit (status 143 for SIGTERM) and could not end the waits in progress first."""
    import uvicorn

    class OwnSignals(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None]:
            yield

    return OwnSignals(config)


async def serve_http(server: RetabServer, options: HttpOptions, settings: Settings, stop: anyio.Event) -> None:
    """Serve until `stop` is set; uvicorn says on stderr when it is listening. Call `check_binding` first.

    The caller owns signals: it sets `stop`, which first ends every wait in progress, so that their
    answers go out; then the open streams end cleanly (an SSE stream carries the answers of its session,
    so it waits for those); then uvicorn finishes. Shutdown neither sits out a 50 s wait nor cuts a stream.
    """
    served = build_app(server, options, settings)
    config = uvicorn_config(served.app, options, settings)
    # Bound and listening here, so that the line below names the real port (with --port 0, one the system
    # chose: nothing can take it between choosing and binding) and means "ready": connections queue from
    # now on, and uvicorn accepts them once started.
    sock = listening_socket(options.host, options.port, config.backlog)
    port = sock.getsockname()[1]
    auth = "bearer token required" if settings.auth_token else "no authentication"
    logger.warning(
        "retab-mcp %s: serving on http://%s:%d%s (%s)", __version__, _url_host(options.host), port, options.path, auth
    )
    http = server_without_signal_handlers(config)

    async def exit_on_stop() -> None:
        await stop.wait()
        with anyio.move_on_after(SHUTDOWN_GRACE_S):
            await server.calls_done()
        await served.streams.close_all(within_s=SHUTDOWN_GRACE_S)
        http.should_exit = True

    async def close_idle_sessions(sessions: SessionTable) -> None:
        every_s = min(sessions.limits.unused_idle_s, sessions.limits.idle_s) / 4
        while True:
            await anyio.sleep(every_s)
            await sessions.close_expired()

    async with anyio.create_task_group() as group:
        group.start_soon(exit_on_stop)
        if served.sessions is not None:
            group.start_soon(close_idle_sessions, served.sessions)
        await http.serve(sockets=[sock])
        group.cancel_scope.cancel()
