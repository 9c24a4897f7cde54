"""HTTP connections: a request is read whole within a time bound, and open connections stay below the
process's file limit.

uvicorn (h11) waits for a request's headers without a bound, and any byte restarts its keep-alive timer:
a client that sends its headers one byte a second holds its connection, and its file descriptor,
forever. At the file limit, `accept()` fails over and over and asyncio logs a traceback each time, while
normal clients time out. So:
- from a connection's first byte, or its opening, the request must have arrived whole (headers and body)
  within `read_timeout_s`, however its bytes trickle in; otherwise the connection is closed. Between
  requests, the keep-alive timeout applies as before.
- at most `max_connections` are open. One more closes the connection that has waited longest without a
  request in flight (a trickler, or an idle keep-alive), so a newcomer is served; when every connection
  is serving a request, the newcomer gets 503 at once. The default cap leaves a reserve of descriptors
  below the file limit for the API client, logs and sessions.
Each of these is logged as one WARNING line at most every 10 s for each kind (logs.PeerMistakesInOneLine).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

logger = logging.getLogger(__name__)

DESCRIPTOR_RESERVE = 128
REQUEST_UNREAD_STATES = (h11.IDLE, h11.SEND_BODY)
BUSY_ANSWER = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, soft - DESCRIPTOR_RESERVE)


def guarded_protocol(read_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the two bounds above; pass it as uvicorn's `http`."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._read_deadline: asyncio.TimerHandle | None = None
            self._waiting_since = time.monotonic()
            self._arm_read_deadline()
            if self._open_count() > max_connections and not self._make_room():
                logger.warning("Connection cap reached: every one of %d connections is busy", max_connections)
                transport.write(BUSY_ANSWER)
                transport.close()

        def data_received(self, data: bytes) -> None:
            if self._read_deadline is None and self.conn.their_state in REQUEST_UNREAD_STATES:
                self._waiting_since = time.monotonic()
                self._arm_read_deadline()
            super().data_received(data)
            if self.conn.their_state not in REQUEST_UNREAD_STATES:
                self._disarm_read_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_read_deadline()
            super().connection_lost(exc)

        def _arm_read_deadline(self) -> None:
            self._read_deadline = self.loop.call_later(read_timeout_s, self._read_too_slow)

        def _disarm_read_deadline(self) -> None:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
                self._read_deadline = None

        def _read_too_slow(self) -> None:
            self._read_deadline = None
            if self.conn.their_state in REQUEST_UNREAD_STATES and not self._serving():
                logger.warning("Request not read whole within %g s: connection closed", read_timeout_s)
                self.transport.close()

        def _serving(self) -> bool:
            cycle = cast("RequestResponseCycle | None", self.cycle)  # None until a first request arrives
            return cycle is not None and not cycle.response_complete

        def _peers(self) -> set[GuardedH11Protocol]:
            return cast("set[GuardedH11Protocol]", self.connections)  # every connection is served by this class

        def _open_count(self) -> int:
            return sum(not c.transport.is_closing() for c in self._peers())

        def _make_room(self) -> bool:
            """Close the connection that has waited longest without a request in flight; False if none."""
            idle = [c for c in self._peers() if c is not self and not c._serving() and not c.transport.is_closing()]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c._waiting_since)
            logger.warning("Connection cap reached: closed the longest-idle of %d connections", max_connections)
            oldest.transport.close()
            return True

        def on_response_complete(self) -> None:
            self._waiting_since = time.monotonic()
            super().on_response_complete()

    return GuardedH11Protocol
