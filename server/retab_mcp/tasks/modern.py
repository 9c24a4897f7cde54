"""The 2026-07-28 wire: the `io.modelcontextprotocol/tasks` extension (SEP-2663), and the extension object
that serves both eras' task methods.

The server decides per request: a call of a wait whose `_meta` declares the extension is answered at once
with `resultType: "task"` (a task id, `ttlMs`, `pollIntervalMs`); `tasks/get` then gives its status and
message, and once it has ended, its result (or error) inline; `tasks/cancel` ends its wait; `tasks/update`
is acknowledged (these tasks never ask for input). A request that does not declare the extension gets
today's bounded call, and `tasks/*` answers it -32021 (missing client capability).

`TasksExtension` is what the SDK's Extension API takes: it advertises the extension in `server/discover`,
intercepts `tools/call`, and binds `tasks/get` and `tasks/cancel` for both eras (each answers in its era's
shape), `tasks/result` and `tasks/list` for 2025-11-25 and `tasks/update` for 2026-07-28.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver.server import require_client_extension
from mcp.types import (
    CallToolRequestParams,
    CancelTaskRequestParams,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    PaginatedRequestParams,
    RequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from . import legacy
from .registry import TooManyTasksError
from .runner import ROUND_AS_TASK
from .service import EXTENSION_ID, TASKS_VERSION, WAITS, Ctx, TaskService

BOTH_ERAS = frozenset({TASKS_VERSION, *MODERN_PROTOCOL_VERSIONS})
MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)


class UpdateTaskParams(RequestParams):
    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] | None = Field(default=None, alias="inputResponses")


class TasksExtension(Extension):
    identifier = EXTENSION_ID

    def __init__(self, service: TaskService) -> None:
        self.service = service

    def methods(self) -> Sequence[MethodBinding]:
        service = self.service

        def era(modern: Callable[..., Awaitable[Any]], old: Callable[..., Awaitable[Any]]) -> Any:
            async def handle(ctx: Ctx, params: Any) -> HandlerResult:
                if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    require_client_extension(ctx, EXTENSION_ID)
                    return await modern(service, ctx, params)
                return await old(service, ctx, params)

            return handle

        def legacy_only(handler: Callable[..., Awaitable[Any]]) -> Any:
            async def handle(ctx: Ctx, params: Any) -> HandlerResult:
                return await handler(service, ctx, params)

            return handle

        only_2025 = frozenset({TASKS_VERSION})
        return (
            MethodBinding("tasks/get", GetTaskRequestParams, era(get_task, legacy.get_task), BOTH_ERAS),
            MethodBinding("tasks/cancel", CancelTaskRequestParams, era(cancel_task, legacy.cancel_task), BOTH_ERAS),
            MethodBinding("tasks/result", GetTaskPayloadRequestParams, legacy_only(legacy.task_result), only_2025),
            MethodBinding("tasks/list", PaginatedRequestParams, legacy_only(legacy.list_tasks), only_2025),
            MethodBinding("tasks/update", UpdateTaskParams, era(update_task, _never), MODERN),
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        service = self.service
        if ROUND_AS_TASK.get() or params.name not in WAITS or not service.offered_2026(ctx):
            return await call_next(ctx)
        try:
            record = await service.start(ctx, "2026", params.name, dict(params.arguments or {}))
        except TooManyTasksError:
            return await call_next(ctx)  # the server decides per request: past a bound, the bounded call
        return {"resultType": "task", **record.task_fields()}


async def get_task(service: TaskService, ctx: Ctx, params: GetTaskRequestParams) -> dict[str, Any]:
    return (await service.find(ctx, params.task_id, "2026")).detailed()


async def cancel_task(service: TaskService, ctx: Ctx, params: CancelTaskRequestParams) -> dict[str, Any]:
    await service.cancel(ctx, params.task_id, "2026")
    return {}


async def update_task(service: TaskService, ctx: Ctx, params: UpdateTaskParams) -> dict[str, Any]:
    await service.find(ctx, params.task_id, "2026")  # a wait asks for no input: responses are ignored
    return {}


async def _never(service: TaskService, ctx: Ctx, params: Any) -> dict[str, Any]:
    raise AssertionError("tasks/update is bound to 2026-07-28 only")
