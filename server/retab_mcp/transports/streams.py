"""Response streams (an SSE stream, a streamable-HTTP GET stream) that this server can end cleanly.

Such a response never ends by itself: it lasts as long as its client listens. Ending it by cancelling
the task that writes it, as uvicorn does once its shutdown grace is over, cuts the response mid-chunk,
prints a traceback per stream and makes clients see a broken connection. Here the task is cancelled
inside a scope this module owns, and the response is then finished with its last, empty chunk: the
client reads a stream that ended, and reconnects or stops as it would after any end of stream.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class OpenStream:
    """One response in flight; `close()` ends it cleanly from any task."""

    def __init__(self) -> None:
        self._scope = anyio.CancelScope()
        self._started = False
        self._finished = False

    def close(self) -> None:
        self._scope.cancel()

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self._finished = True
            await send(message)

        with self._scope:
            await app(scope, receive, tracking_send)
        if not self._scope.cancelled_caught or self._finished:
            return
        if not self._started:
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class OpenStreams:
    """ASGI middleware: every GET (the requests that open streams) is served as an `OpenStream`, so that
    `close_all()` can end them all cleanly at shutdown."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._open: set[OpenStream] = set()
        self._none_open = anyio.Event()
        self._none_open.set()

    def __len__(self) -> int:
        return len(self._open)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self._app(scope, receive, send)
            return
        await self.serve(OpenStream(), scope, receive, send)

    async def serve(self, stream: OpenStream, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve `stream` (made by a caller that wants to close it on its own too)."""
        self._open.add(stream)
        self._none_open = anyio.Event()
        try:
            await stream.serve(self._app, scope, receive, send)
        finally:
            self._open.discard(stream)
            if not self._open:
                self._none_open.set()

    async def close_all(self, within_s: float) -> None:
        """End every open stream and return once they have ended, or after `within_s`."""
        for stream in list(self._open):
            stream.close()
        with anyio.move_on_after(within_s):
            await self._none_open.wait()
