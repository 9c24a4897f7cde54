"""What a platform probes and scrapes: /healthz (the process answers), /readyz (it can do its work), and
/metrics (Prometheus text).

They answer before the Host and Origin checks, since a load balancer or an orchestrator probes by
address; none of them says anything about a caller, a run or a key. /metrics holds counts only, and asks
for the bearer token when the server has one (Prometheus sends it with `authorization`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from ..base import telemetry
from .answers import send_json

ReadyCheck = Callable[[], Awaitable[str | None]]  # None when ready; else what is wrong, in a few words
READY_TIMEOUT_S = 3.0


class OperationsRoutes:
    """ASGI middleware: GET /healthz, /readyz and /metrics here; everything else to `app`."""

    def __init__(self, app: Any, checks: Sequence[tuple[str, ReadyCheck]], metrics_app: Any | None = None) -> None:
        self._app = app
        self._checks = checks
        self._metrics = metrics_app or metrics_endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path == "/healthz":
                await send_json(send, 200, {"status": "ok"})
                return
            if path == "/readyz":
                problems = await self._problems()
                await send_json(
                    send, 503 if problems else 200, {"status": "unready" if problems else "ready", **problems}
                )
                return
            if path == "/metrics":
                await self._metrics(scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        for name, check in self._checks:
            problem: str | None = f"no answer within {READY_TIMEOUT_S:g} s"
            with anyio.move_on_after(READY_TIMEOUT_S):
                problem = await check()
            if problem is not None:
                problems[name] = problem
        return problems


async def metrics_endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    del scope, receive
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(telemetry.enable())
    headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
