"""The 2025-11-25 wire (`basic/utilities/tasks`), for hosts that declared the `tasks` capability.

Such a host is told at `initialize` that the server takes task-augmented `tools/call` (and `tasks/list`,
`tasks/cancel`), and sees `execution.taskSupport: "optional"` on the two waits (listing.py). A call of a
wait with `task: {ttl}` is answered at once with a `CreateTaskResult`; then `tasks/get`, `tasks/result`
(blocks until the run ends; exactly what the call would have returned), `tasks/list` and `tasks/cancel`.
Any other host, and any call without `task`, gets today's bounded call, byte for byte. On stateless HTTP
(replicas) no request knows what the handshake declared: there a call that sends `task` gets a task, and the
listing, the same for every host, is not marked.

The SDK checks every result on this wire against the 2025 schema of its method, where a `tools/call`
answers with a `CallToolResult` only: the `CreateTaskResult` is therefore given by a middleware, above that
check (the SDK passes a middleware's own result through as it is), and so is the capability at `initialize`.
"""

from __future__ import annotations

from typing import Any, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    CallToolRequestParams,
    CancelTaskRequestParams,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    InitializeRequestParams,
    PaginatedRequestParams,
)

from .records import RELATED_TASK
from .registry import TooManyTasksError
from .service import EXTENSION_ID, TASKS_VERSION, WAITS, Ctx, TaskService

CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
IMMEDIATE_RESPONSE = "io.modelcontextprotocol/model-immediate-response"
LIST_PAGE = 100


def middleware(service: TaskService) -> Any:
    """The server middleware for this wire: the capability at `initialize`, the task at `tools/call`."""

    async def tasks_2025(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            return _with_capability(ctx, await call_next(ctx))
        if ctx.method != "tools/call" or (ctx.params or {}).get("task") is None or not service.asks_2025(ctx):
            return await call_next(ctx)  # receivers ignore `task` where they did not offer tasks; null is no task
        params = CallToolRequestParams.model_validate(ctx.params, by_name=False)  # as the SDK would, below
        if params.name not in WAITS:
            raise MCPError(METHOD_NOT_FOUND, f"{params.name} does not run as a task; call it without `task`.")
        ttl_ms = params.task.ttl if params.task is not None else None
        token = (params.meta or {}).get("progress_token")
        try:
            record = await service.start(
                ctx,
                "2025",
                params.name,
                dict(params.arguments or {}),
                ttl_ms / 1000 if ttl_ms is not None and ttl_ms > 0 else None,
                token,
            )
        except TooManyTasksError as error:
            raise MCPError(code=INVALID_REQUEST, message=str(error)) from None
        words = "The wait runs as a task; its result comes when the run ends (or needs a person)."
        return {"task": record.task_fields(), "_meta": {IMMEDIATE_RESPONSE: words}}

    return tasks_2025


def _with_capability(ctx: ServerRequestContext[Any, Any], result: HandlerResult) -> HandlerResult:
    """The `initialize` result: tasks offered to a 2025-11-25 host that declared them; the 2026 extension,
    which the legacy wire does not carry, named to none."""
    if not isinstance(result, dict):
        return result
    answer = result
    capabilities = answer.get("capabilities")
    if not isinstance(capabilities, dict):
        return answer
    capabilities = dict(cast(dict[str, Any], capabilities))  # the SDK's own, not to be changed in place
    extensions = capabilities.get("extensions")
    if isinstance(extensions, dict) and EXTENSION_ID in extensions:
        rest = {k: v for k, v in cast(dict[str, Any], extensions).items() if k != EXTENSION_ID}
        if rest:
            capabilities["extensions"] = rest
        else:
            del capabilities["extensions"]
    declared = InitializeRequestParams.model_validate(ctx.params or {}, by_name=False).capabilities
    if answer.get("protocolVersion") == TASKS_VERSION and declared.tasks is not None:
        capabilities["tasks"] = CAPABILITY
    return {**answer, "capabilities": capabilities}


async def get_task(service: TaskService, ctx: Ctx, params: GetTaskRequestParams) -> dict[str, Any]:
    return (await service.find(ctx, params.task_id, "2025")).task_fields()


async def task_result(service: TaskService, ctx: Ctx, params: GetTaskPayloadRequestParams) -> dict[str, Any]:
    """What the call would have returned: its result, or its JSON-RPC error, once the task has ended."""
    record = await service.wait_end(ctx, params.task_id, "2025")
    related = {RELATED_TASK: {"taskId": record.task_id}}
    if record.result is not None:
        meta = {**cast(dict[str, Any], record.result.get("_meta") or {}), **related}
        return {**record.result, "_meta": meta}
    error = record.error or {"code": INVALID_REQUEST, "message": record.status_message or "The task was cancelled."}
    code = int(error.get("code", INVALID_REQUEST))
    raise MCPError(code=code, message=str(error.get("message")), data=error.get("data"))


async def list_tasks(service: TaskService, ctx: Ctx, params: PaginatedRequestParams) -> dict[str, Any]:
    records = await service.owned(ctx, "2025")
    start = 0
    if params.cursor is not None:
        if not params.cursor.isdigit():
            raise MCPError(code=-32602, message="Invalid cursor: pass back the nextCursor of the previous page.")
        start = int(params.cursor)
    page = records[start : start + LIST_PAGE]
    answer: dict[str, Any] = {"tasks": [record.task_fields() for record in page]}
    if start + LIST_PAGE < len(records):
        answer["nextCursor"] = str(start + LIST_PAGE)
    return answer


async def cancel_task(service: TaskService, ctx: Ctx, params: CancelTaskRequestParams) -> dict[str, Any]:
    return (await service.cancel(ctx, params.task_id, "2025")).task_fields()
