"""An ASGI app (the simulated API, or the MCP app) on a real loopback port, inside the caller's event loop.

For tests and benchmarks that need real sockets: timeouts, refused and cut connections behave as the
network's own. The app can go down and come back on the same port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc

from ..transports.http import server_without_signal_handlers
from ..transports.sockets import listening_socket


@dataclass
class Loopback:
    app: Any
    group: anyio.abc.TaskGroup
    lifespan: Literal["on", "off"] = "off"  # "on" for an app that needs its lifespan (the MCP app does)
    port: int = 0  # 0: any free port, kept across restarts
    _server: Any = None
    _stopped: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import uvicorn

        sock = listening_socket("127.0.0.1", self.port)  # listening from here on: no readiness to wait for
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, lifespan=self.lifespan, access_log=False, timeout_graceful_shutdown=1
        )
        server = self._server = server_without_signal_handlers(config)
        stopped = self._stopped = anyio.Event()

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
