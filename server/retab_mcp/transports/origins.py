"""DNS-rebinding protection: the Host of every HTTP request and the Origin a browser sends, compared exactly.

A name is parsed into host and port and both are compared, never a prefix: `127.0.0.1:8771.evil.com`,
`localhost:8771@evil.com` and `127.0.0.1:evil` are not loopback. Loopback names (127.0.0.0/8, ::1,
localhost) are accepted on any port; a name an operator lists (RETAB_MCP_ALLOWED_HOSTS, _ORIGINS) is
accepted as written: a Host on any port if it names none, on that port only if it does; an Origin with
its scheme and port (its scheme's default if it names none). Hostnames compare without regard to case.

A rejection is answered (421 for a Host, 403 for an Origin) and logged as one short WARNING line, with
the value the client sent cut and escaped, and at most one line per `LOG_EVERY_S` for each kind: the
values are an attacker's, and so is the rate.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost"})
LOG_EVERY_S = 10.0
SHOWN_MAX = 60  # characters of a rejected value shown in the log


@dataclass(frozen=True)
class Authority:
    host: str  # lower case, IPv6 without brackets
    port: int | None


def parse_authority(value: str) -> Authority | None:
    """`host`, `host:port`, `[v6]` or `[v6]:port`, strictly; None for anything else."""
    if not value or any(c in value for c in "@/?#\\ \t") or len(value) > 300:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port_text = value.partition(":")
        rest = f":{port_text}" if sep else ""
        if ":" in port_text or not host:
            return None
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and rest[1:].isascii()):
        return None
    port = int(rest[1:]) if rest else None
    if port is not None and not 0 < port < 65536:
        return None
    return Authority(host.lower(), port)


def is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Origin:
    scheme: str
    authority: Authority


def parse_origin(value: str) -> Origin | None:
    """`scheme://authority` and nothing more (no path, query, user), or None."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return None
    authority = parse_authority(parts.netloc)
    return Origin(parts.scheme, authority) if authority else None


def _allows(allowed: Authority, seen: Authority) -> bool:
    """A listed Host without a port allows that host on any port; with one, on that port only."""
    return allowed.host == seen.host and (allowed.port is None or allowed.port == seen.port)


def _port_of(origin: Origin) -> int:
    return origin.authority.port or (443 if origin.scheme == "https" else 80)


class HostAndOriginGate:
    """ASGI middleware: requests whose Host or Origin is not allowed are answered before the app sees them."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> None:
        self._app = app
        self._hosts = [a for a in map(parse_authority, allowed_hosts) if a is not None]
        self._origins = [o for o in map(parse_origin, allowed_origins) if o is not None]
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def host_allowed(self, value: str) -> bool:
        seen = parse_authority(value)
        if seen is None:
            return False
        return is_loopback_host(seen.host) or any(_allows(a, seen) for a in self._hosts)

    def origin_allowed(self, value: str) -> bool:
        seen = parse_origin(value)
        if seen is None:
            return False
        if is_loopback_host(seen.authority.host):
            return True
        # An origin is a scheme, a host and a port; one written without a port means its scheme's default.
        return any(
            o.scheme == seen.scheme and o.authority.host == seen.authority.host and _port_of(o) == _port_of(seen)
            for o in self._origins
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers: dict[bytes, bytes] = dict(scope.get("headers", []))
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin")
            if not self.host_allowed(host):
                await self._refuse(send, 421, "Host", host)
                return
            if origin is not None and not self.origin_allowed(origin.decode("latin-1")):
                await self._refuse(send, 403, "Origin", origin.decode("latin-1"))
                return
        await self._app(scope, receive, send)

    async def _refuse(self, send: Send, status: int, header: str, value: str) -> None:
        self._log(header, value)
        body = f"{header} not allowed: see RETAB_MCP_ALLOWED_{header.upper()}S.".encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _log(self, header: str, value: str) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(header, -LOG_EVERY_S) < LOG_EVERY_S:
            self._suppressed[header] = self._suppressed.get(header, 0) + 1
            return
        suppressed = self._suppressed.pop(header, 0)
        shown = value if len(value) <= SHOWN_MAX else value[:SHOWN_MAX] + "…"
        more = f" ({suppressed} more since the last such line)" if suppressed else ""
        logger.warning("refused a request with %s %s%s", header, ascii(shown), more)
        self._last_logged[header] = now
