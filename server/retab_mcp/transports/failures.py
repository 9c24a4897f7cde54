"""The last catch of the HTTP layer: an exception nothing else handled becomes a 500 and one log line.

A peer can make a gate or the SDK fail in ways nobody foresaw, and can do it on every request: a traceback
per request would fill the operator's log with the peer's doing, and uvicorn's own answer to a crash is a
bare 500. Here the caller gets a JSON 500 (when nothing was sent yet), and the operator one ERROR line per
kind of failure at most every `EVERY_S`, saying how many were left out; the traceback goes to DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from starlette.types import Message, Receive, Scope, Send

from .answers import send_json

logger = logging.getLogger(__name__)

EVERY_S = 10.0


class FailuresInOneLine:
    """ASGI middleware around the whole HTTP app."""

    def __init__(self, app: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, tracking)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as error:
            self._log(error, scope)
            if not started:
                await send_json(send, 500, {"error": "internal_error", "message": "The server failed to answer."})

    def _log(self, error: Exception, scope: Scope) -> None:
        kind = type(error).__name__
        now = self._clock()
        logger.debug("Unhandled %s on %s %s", kind, scope.get("method"), scope.get("path"), exc_info=error)
        if now - self._last.get(kind, float("-inf")) < EVERY_S:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return
        self._last[kind] = now
        left_out = self._left_out.pop(kind, 0)
        more = f" ({left_out} more since the last such line)" if left_out else ""
        logger.error("A request failed unexpectedly (%s) and got a 500%s", kind, more)
