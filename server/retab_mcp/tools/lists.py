"""Lists: runs (of an experiment, a workflow, a status) and the per-document results of one run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..views.lists import ResultList, RunList, list_result_rows, render_result_list, render_run_list, run_list
from . import descriptions, names
from .common import READ_ONLY, AppState, Cursor, OptionalId, RunId, dump, state_of, tool_result
from .errors import tool_errors

if TYPE_CHECKING:
    from .server import RetabServer

# The statuses of api/statuses.py, spelled out: a schema needs literals.
RunStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled"]


async def list_experiment_runs(
    ctx: Context[AppState],
    experiment_id: OptionalId = None,
    workflow_id: OptionalId = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Field(ge=1, le=25, description="Rows per page, 1 to 25.")] = 10,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, RunList]:
    state = state_of(ctx)
    with tool_errors("", subject="the experiment or workflow"):
        page = await state.client.list_runs(
            experiment_id=experiment_id or None,
            workflow_id=workflow_id or None,
            status=status,
            limit=limit,
            after=check_id(cursor, "cursor") if cursor else None,
        )
    runs = run_list(page, state.now())
    return tool_result(render_run_list(runs), dump(runs))


async def list_experiment_run_results(
    run_id: RunId,
    ctx: Context[AppState],
    status: RunStatus | None = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Rows per page, 1 to 50.")] = 20,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, ResultList]:
    state = state_of(ctx)
    with tool_errors(run_id):
        results = await list_result_rows(state.client, run_id, status=status, limit=limit, cursor=cursor)
    return tool_result(render_result_list(results), dump(results))


def register(server: RetabServer) -> None:
    server.add_tool(
        list_experiment_runs,
        name=names.LIST_RUNS,
        title="List experiment runs",
        description=descriptions.LIST_RUNS,
        annotations=READ_ONLY,
    )
    server.add_tool(
        list_experiment_run_results,
        name=names.LIST_RESULTS,
        title="List run results",
        description=descriptions.LIST_RESULTS,
        annotations=READ_ONLY,
    )
