"""Running a task: the wait tool, called again and again from the task's own context, until the run ends.

A task is the same tool call a host would make, without the host's time limit: each round is one bounded
wait through the SDK's `tools/call` handler (the same redaction, errors and result as any call), and a round
that ends before the run (`timed_out`) is followed by the next, until the run ends (or needs a person), the
call fails, or the task's TTL comes near (then its last round's result, which says to call again, is the
task's result). The watcher keeps each run's poll loop and schedule across rounds, so the Retab API sees the
requests of one waiter, as before; `timeout_s` is a host's limit, so a round waits as long as the server
allows (RETAB_MCP_MAX_WAIT_S) instead.

While it waits the task says how far the run is: each progress event of the round becomes the task's status
message (documents, steps or evals done) and, for a 2025-era host that gave a progress token with its call,
a progress notification on its connection, strictly increasing over the task's life (never after its end);
between rounds the message is the round's own one-line state, with its ETA.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.transport_context import TransportContext
from mcp.types import INTERNAL_ERROR, CallToolRequestParams, CallToolResult, InputRequiredResult, TextContent
from mcp_types.methods import serialize_server_result

from ..tools.sdk_compat import connection_of, tool_call_handler
from .registry import LiveTask, TaskRegistry

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from ..base.config import Settings


class Service(Protocol):
    """What a task's wait uses of the service that runs it (service.py's TaskService)."""

    settings: Settings

    @property
    def server(self) -> MCPServer[Any]: ...


class Served(Protocol):
    """What a task's wait uses of the lifespan it runs in (service.py's Lifespan)."""

    registry: TaskRegistry

    @property
    def stopping(self) -> bool: ...


logger = logging.getLogger(__name__)

ROUND_AS_TASK: contextvars.ContextVar[bool] = contextvars.ContextVar("retab_mcp_round_as_task", default=False)
Progress = Callable[[float, float | None, str | None], Awaitable[None]]
RESULT_MARGIN_S = 60.0  # a task stops waiting this long (at most a tenth of its TTL) before it expires
ROUND_MIN_S = 1.0


class _Answered:
    """The request-scoped channel of a request already answered: a round of a task has no request of its own,
    so it sends nothing on one (its progress goes to the task, see `_TaskSession`)."""

    transport = TransportContext(kind="task", can_send_request=False)
    can_send_request = False
    request_id = None
    message_metadata = None

    def __init__(self) -> None:
        self.cancel_requested = anyio.Event()

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        return None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


class _TaskSession(ServerSession):
    """The session a round runs in: the caller's connection (its capabilities, its channel), with the
    round's progress going to the task."""

    def __init__(self, ctx: ServerRequestContext[Any, Any], on_progress: Progress) -> None:
        super().__init__(_Answered(), connection_of(ctx))
        self._on_progress = on_progress

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        await self._on_progress(progress, total, message)


async def run_task(service: Service, served: Served, live: LiveTask, ctx: ServerRequestContext[Any, Any]) -> None:
    """Wait out `live`'s run in rounds; its scope (set by the caller) cancels it. Runs in the server's group."""
    record = live.record
    registry = served.registry
    sent = -1.0

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal sent
        if live.record.terminal:
            return
        if message and message != live.record.status_message:
            live.record.status_message = message
            await registry.changed(live)
        token = live.record.progress_token
        if token is not None and progress > sent:
            sent = progress
            params: dict[str, Any] = {"progressToken": token, "progress": progress, "message": message}
            if total is not None:
                params["total"] = total
            await connection_of(ctx).notify("notifications/progress", params)

    round_ctx = replace(ctx, session=_TaskSession(ctx, on_progress), request_id=None)
    handler = tool_call_handler(service.server)
    margin = min(RESULT_MARGIN_S, record.ttl_s / 10)
    ROUND_AS_TASK.set(True)
    assert live.scope is not None
    with live.scope:
        try:
            while True:
                left = record.expires_wall - margin - registry.now()
                arguments = {**record.arguments, "timeout_s": max(ROUND_MIN_S, min(service.settings.max_wait_s, left))}
                params = CallToolRequestParams(name=record.tool, arguments=arguments)
                try:
                    result = _as_result(await handler(round_ctx, params))
                except MCPError as error:
                    await _end(registry, live, error=error.error.model_dump(mode="json", exclude_none=True))
                    return
                again = _timed_out(result) and registry.now() < record.expires_wall - margin - ROUND_MIN_S
                if again and served.stopping:
                    if registry.shared is not None:
                        return  # another replica takes it over when asked; the lease is released below
                    again = False
                if not again:
                    await _end(registry, live, result=result, protocol_version=ctx.protocol_version)
                    return
                line = _first_line(result)
                if line and line != live.record.status_message:
                    live.record.status_message = line
                    await registry.changed(live)
        except Exception:  # a bug here must end the task, not leave it working for ever
            logger.exception("the wait of a task failed")
            await _end(registry, live, error={"code": INTERNAL_ERROR, "message": "The wait failed on the server."})
        finally:
            live.scope = None
            if registry.shared is not None:
                with anyio.CancelScope(shield=True):
                    await registry.shared.release(record.task_id)


async def _end(
    registry: TaskRegistry,
    live: LiveTask,
    *,
    result: CallToolResult | InputRequiredResult | None = None,
    protocol_version: str = "",
    error: dict[str, Any] | None = None,
) -> None:
    """Record the task's end: completed (2025: failed when the result is an error), or failed on a JSON-RPC
    error. A task cancelled meanwhile stays cancelled."""
    record = live.record
    if record.terminal:
        return
    if error is not None:
        record.status, record.error = "failed", error
        record.status_message = str(error.get("message", "failed"))
    else:
        assert result is not None
        record.result = _wire(result, protocol_version)
        is_error = isinstance(result, CallToolResult) and result.is_error
        record.status = "failed" if is_error and record.era == "2025" else "completed"
        record.status_message = _first_line(result) or None
    await registry.changed(live)


def _as_result(answer: HandlerResult) -> CallToolResult | InputRequiredResult:
    """What the tools/call handler gave, as the result model it is (an interceptor may answer with a dict)."""
    if isinstance(answer, CallToolResult | InputRequiredResult):
        return answer
    return CallToolResult.model_validate(answer or {}, by_name=False)


def _wire(result: CallToolResult | InputRequiredResult, protocol_version: str) -> dict[str, Any]:
    """The result as this call's wire would carry it: what `tasks/result` (2025) or `tasks/get` (2026) returns
    is exactly what the call would have returned."""
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return serialize_server_result("tools/call", protocol_version, dumped)


def _timed_out(result: CallToolResult | InputRequiredResult) -> bool:
    """A round that ended before the run: its result says `timed_out` (one run, or several not done)."""
    if not isinstance(result, CallToolResult) or result.is_error:
        return False
    structured: dict[str, Any] = result.structured_content or {}
    return structured.get("timed_out") is True


def _first_line(result: CallToolResult | InputRequiredResult) -> str:
    """The result's first line of text, less the call to action a task makes for the caller."""
    if isinstance(result, CallToolResult):
        for block in result.content:
            if isinstance(block, TextContent):
                return block.text.split("\n", 1)[0].removesuffix(" Call again.").strip()
    return ""
