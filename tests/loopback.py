"""An ASGI app on a real loopback socket, inside the test's event loop."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
import uvicorn


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:  # the test process keeps its own signal handlers
        yield


@dataclass
class Loopback:
    """An ASGI app served by uvicorn on a real loopback port; it can go down and come back on the same port."""

    app: Any
    group: anyio.abc.TaskGroup
    lifespan: Literal["on", "off"] = "off"  # "on" for an app that needs its lifespan (the MCP app does)
    port: int = 0
    _server: uvicorn.Server | None = None
    _stopped: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)  # listening from here on: no readiness to wait for
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, lifespan=self.lifespan, access_log=False, timeout_graceful_shutdown=1
        )
        self._server = _Quiet(config)
        self._stopped = anyio.Event()
        server, stopped = self._server, self._stopped

        async def serve() -> None:
            try:
                await server.serve(sockets=[sock])
            finally:
                sock.close()
                stopped.set()

        self.group.start_soon(serve)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.should_exit = True
        await self._stopped.wait()
