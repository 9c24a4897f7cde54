"""Bounds on HTTP sessions and SSE streams, so that no client can crowd the others out.

A session holds about 36 KB (an SSE stream about 67 KB) until its client ends it or it goes idle. With no
bound of our own, one client that opens sessions and never closes them fills memory, then meets the SDK's
limit, where every newcomer gets 503 until the SDK's idle reaper runs 30 minutes later. The policy here
keeps serving newcomers instead:
- a session that never carried a call (only the handshake) is closed after `unused_idle_s` without a
  request; one that did, after `idle_s`;
- when a client (a peer address) holds `per_client` sessions, or all together hold `total`, the next one
  opening closes the longest-idle session to make room: one that never carried a call if there is one,
  of that client when it is the client's bound that is reached. A session with a request in flight is
  never closed for room; when every session is busy, the SDK's own limit answers 503.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..base.config import Settings
from .streams import OpenStream, OpenStreams

logger = logging.getLogger(__name__)

# The handshake's requests after the one that opens a session: `notifications/initialized`.
HANDSHAKE_POSTS = 1
SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"


@dataclass(frozen=True)
class SessionLimits:
    total: int
    per_client: int
    unused_idle_s: float
    idle_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLimits:
        return cls(
            total=settings.max_sessions,
            per_client=min(settings.max_sessions_per_client, settings.max_sessions),
            unused_idle_s=settings.unused_session_idle_s,
            idle_s=settings.session_idle_s,
        )


@dataclass(eq=False)
class Session:
    key: str
    client: str
    close: Callable[[], Awaitable[None]]
    last_active: float
    posts: int = 0  # requests after the one that opened it
    in_flight: int = 0

    @property
    def used(self) -> bool:
        return self.posts > HANDSHAKE_POSTS

    def idle_for(self, now: float) -> float:
        return 0.0 if self.in_flight else now - self.last_active


@dataclass
class SessionTable:
    """The open sessions of one transport and the policy above; the transports' middlewares feed it."""

    limits: SessionLimits
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict[str, Session])
    _opening: dict[str, int] = field(default_factory=dict[str, int])  # opening requests in flight, by client

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def add(self, key: str, client: str, close: Callable[[], Awaitable[None]]) -> Session:
        session = Session(key, client, close, last_active=self.clock())
        self._sessions[key] = session
        return session

    def forget(self, key: str) -> None:
        self._sessions.pop(key, None)

    def begin(self, session: Session, *, counts: bool) -> None:
        session.in_flight += 1
        session.posts += counts

    def end(self, session: Session) -> None:
        session.in_flight -= 1
        session.last_active = self.clock()

    def opening(self, client: str, delta: int) -> None:
        self._opening[client] = self._opening.get(client, 0) + delta
        if not self._opening[client]:
            del self._opening[client]

    def to_close_for(self, client: str) -> list[Session]:
        """The sessions to close so that one more for `client` stays within both bounds."""
        chosen: list[Session] = []
        mine = sum(s.client == client for s in self._sessions.values()) + self._opening.get(client, 0)
        everyone = len(self._sessions) + sum(self._opening.values())
        while mine >= self.limits.per_client or everyone >= self.limits.total:
            own_bound = mine >= self.limits.per_client
            victim = self._longest_idle(client if own_bound else None, exclude=chosen)
            if victim is None:
                break
            chosen.append(victim)
            everyone -= 1
            mine -= victim.client == client
        for victim in chosen:
            self.forget(victim.key)
        return chosen

    def _longest_idle(self, client: str | None, exclude: list[Session]) -> Session | None:
        now = self.clock()
        idle = [
            s
            for s in self._sessions.values()
            if not s.in_flight and s not in exclude and (client is None or s.client == client)
        ]
        return min(idle, key=lambda s: (s.used, -s.idle_for(now)), default=None)

    def expired(self) -> list[Session]:
        """Sessions idle past their time, forgotten here; the caller closes them."""
        now = self.clock()
        gone = [
            s
            for s in self._sessions.values()
            if s.idle_for(now) >= (self.limits.idle_s if s.used else self.limits.unused_idle_s)
        ]
        for session in gone:
            self.forget(session.key)
        return gone

    async def make_room(self, client: str) -> None:
        victims = self.to_close_for(client)
        for victim in victims:
            await victim.close()
        if victims:
            logger.info("Closed %d idle session(s) to make room for a new one", len(victims))

    async def close_expired(self) -> int:
        gone = self.expired()
        for session in gone:
            await session.close()
        if gone:
            unused = sum(not s.used for s in gone)
            logger.info("Closed %d idle session(s), %d of them never used", len(gone), unused)
        return len(gone)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class StreamableHttpSessions:
    """ASGI middleware in front of the SDK's streamable HTTP app: registers each session it opens, counts
    its requests, makes room before one opens, and closes a session as its client would (a DELETE)."""

    def __init__(self, app: ASGIApp, table: SessionTable) -> None:
        self._app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        key = _header(scope, SESSION_HEADER)
        if key is None:
            if scope["method"] == "POST" and _header(scope, VERSION_HEADER) in (None, *HANDSHAKE_PROTOCOL_VERSIONS):
                await self._open(scope, receive, send)
            else:
                await self._app(scope, receive, send)  # a request of the 2026 era: it has no session
            return
        session = self.table.get(key)
        if session is None:
            await self._app(scope, receive, send)  # the SDK answers 404
            return
        self.table.begin(session, counts=scope["method"] == "POST")
        statuses: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, watch)
        finally:
            self.table.end(session)
        if scope["method"] == "DELETE" or 404 in statuses:
            self.table.forget(key)

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = peer(scope)
        await self.table.make_room(client)
        opened: str | None = None

        async def capture(message: Message) -> None:
            nonlocal opened
            if message["type"] == "http.response.start" and message["status"] < 400:
                opened = next((v.decode("latin-1") for k, v in message["headers"] if k == SESSION_HEADER), None)
            await send(message)

        self.table.opening(client, +1)
        try:
            await self._app(scope, receive, capture)
        finally:
            self.table.opening(client, -1)
        if opened is not None:
            self.table.add(opened, client, self._closer(opened, scope))

    def _closer(self, key: str, opening: Scope) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            scope: Scope = {
                **{k: v for k, v in opening.items() if k != "headers"},
                "method": "DELETE",
                "headers": [(SESSION_HEADER, key.encode("latin-1"))],
                "query_string": b"",
            }

            async def receive() -> Message:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def discard(message: Message) -> None:
                pass

            await self._app(scope, receive, discard)

        return close


_ENDPOINT = re.compile(rb"session_id=([0-9a-f]{32})")


class SseSessions:
    """ASGI middleware in front of the SDK's SSE app: each stream (a GET) is a session, named by the
    session id the SDK sends in its first event; posts to `/messages/?session_id=` are its requests.
    A stream is closed for room or when idle by ending it cleanly (streams.py)."""

    def __init__(self, app: ASGIApp, table: SessionTable, streams: OpenStreams) -> None:
        self._app = app
        self.table = table
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
        elif scope["method"] == "GET":
            await self._stream(scope, receive, send)
        elif scope["method"] == "POST" and (session := self._session_of(scope)) is not None:
            self.table.begin(session, counts=True)
            try:
                await self._app(scope, receive, send)
            finally:
                self.table.end(session)
        else:
            await self._app(scope, receive, send)

    def _session_of(self, scope: Scope) -> Session | None:
        ids = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id", [])
        return self.table.get(ids[0]) if len(ids) == 1 else None

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = peer(scope)
        await self.table.make_room(client)
        stream = OpenStream()
        key: str | None = None

        async def close() -> None:
            stream.close()

        async def capture(message: Message) -> None:
            nonlocal key
            if key is None and message["type"] == "http.response.body":
                found = _ENDPOINT.search(message.get("body", b""))
                if found is not None:
                    key = named = found.group(1).decode()
                    self.table.opening(client, -1)
                    self.table.add(named, client, close)
            await send(message)

        self.table.opening(client, +1)
        try:
            await self._streams.serve(stream, scope, receive, capture)
        finally:
            if key is None:
                self.table.opening(client, -1)
            else:
                self.table.forget(key)
