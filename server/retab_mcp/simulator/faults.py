"""Faults the simulated API can be told to inject, and answers it can lose.

`SimulatedRetab.inject(...)` queues a `Fault` for the next matching requests:
- "status": an error status with a FastAPI envelope (or `body`), optionally with Retry-After;
- "slow": the normal answer, after `delay_s` of real time (it is the network that is slow);
- "malformed": a 200 whose body is not JSON (or `body`);
- "raw": any `status`, `body` and `media_type`, e.g. a proxy's HTML error page or a drifted schema;
- "truncated": a 200 that declares more bytes than it sends, then ends (over a real socket the
  connection is cut mid-body).
`SimulatedRetab.drop_answer(...)` acts on the next matching request and then loses its answer
(`lose_the_answer`): the API did what was asked, the caller cannot know.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from starlette.responses import JSONResponse, Response

FaultKind = Literal["status", "slow", "malformed", "raw", "truncated"]
LossKind = Literal["502", "cut", "502-unsent"]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass
class Fault:
    kind: FaultKind
    times: int
    status: int = 503
    retry_after: str | None = None
    delay_s: float = 0.0
    path_contains: str = ""
    body: Any = None
    media_type: str = "application/json"


async def answer_with_fault(
    faults: list[Fault], path: str, quoted: str, on_abandon: Callable[[], None]
) -> Response | None:
    """The answer of the first fault that matches `path` (using up one of its times), or None for the
    normal answer (no fault, or a slow one whose delay has passed). `quoted` is the key as error messages
    quote it, if they do; `on_abandon` is called when the caller gives up on a slow answer."""
    for fault in faults:
        if fault.times <= 0 or fault.path_contains not in path:
            continue
        fault.times -= 1
        if fault.kind == "slow":
            try:
                await anyio.sleep(fault.delay_s)  # real time: it is the network that is slow
            except anyio.get_cancelled_exc_class():
                on_abandon()
                raise
            return None
        return _fault_answer(fault, quoted)
    return None


def _fault_answer(fault: Fault, quoted: str) -> Response:
    if fault.kind == "malformed":
        return Response(
            fault.body or b"<html>502 Bad Gateway</html>",
            status_code=200,
            media_type="application/json",
        )
    if fault.kind == "raw":
        return Response(fault.body, status_code=fault.status, media_type=fault.media_type)
    if fault.kind == "truncated":
        partial = fault.body or b'{"id": "exprun_cut", "lifecycle": {"sta'
        declared = {"content-length": str(len(partial) * 4)}
        return Response(partial, status_code=200, media_type="application/json", headers=declared)
    headers = {"retry-after": fault.retry_after} if fault.retry_after else None
    body = fault.body or (
        {"detail": f"Rate limit exceeded for key{quoted}. Please try again later."}
        if fault.status == 429
        else {
            "detail": {
                "code": "HTTP_EXCEPTION",
                "message": "An HTTP exception occurred.",
                "details": {"error": f"Upstream service unavailable{quoted}"},
            }
        }
    )
    return JSONResponse(body, status_code=fault.status, headers=headers)


# The start of a created run's body, as a cut connection leaves it, by the path the POST went to.
_CUT_BODIES = {
    "/v1/workflows/evals/runs": b'{"id": "wfevalrun_',
    "/v1/workflows/runs": b'{"id": "run_',
}


async def lose_the_answer(app: ASGIApp, how: LossKind, scope: Any, receive: Any, send: Any) -> None:
    """Act on the request (unless the proxy fails before the API sees it, "502-unsent"), then lose the
    answer: a proxy's 502 page ("502"), or an answer cut mid-body ("cut")."""

    async def lost(message: Any) -> None:
        pass

    if how != "502-unsent":
        await app(scope, receive, lost)  # done: the run exists
    if how.startswith("502"):
        await Response(b"<html>502 Bad Gateway</html>", status_code=502, media_type="text/html")(scope, receive, send)
        return
    # "cut": an answer that declares more than it sends; over a real socket the connection ends mid-body
    partial = _CUT_BODIES.get(scope["path"], b'{"id": "exprun_')
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"500")]})
    await send({"type": "http.response.body", "body": partial, "more_body": False})
