"""Lists: runs (of an experiment, a workflow, a status) and the per-document results of one run."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..reads.results import list_result_rows
from ..views.lists import ResultList, RunList, render_result_list, render_run_list, run_list
from . import descriptions, names
from .common import AppState, Cursor, OptionalId, RunId, dump, state_of, tool_result
from .errors import cursor_errors, tool_errors
from .registry import tool

# The statuses of api/statuses.py, spelled out: a schema needs literals.
RunStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled"]


@tool(
    names.LIST_RUNS,
    title="List experiment runs",
    description=descriptions.LIST_RUNS,
    summary=("Runs newest first, one row each (id, status, score, documents, errors, created), and `next_cursor`."),
    example='list_experiment_runs(status="error", limit=5)',
)
async def list_experiment_runs(
    ctx: Context[AppState],
    experiment_id: OptionalId = None,
    workflow_id: OptionalId = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Field(ge=1, le=25, description="Rows per page, 1 to 25.")] = 10,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, RunList]:
    state = state_of(ctx)
    with tool_errors("", subject="the experiment or workflow"), cursor_errors(cursor):
        page = await state.client.list_runs(
            experiment_id=experiment_id or None,
            workflow_id=workflow_id or None,
            status=status,
            limit=limit,
            after=check_id(cursor, "cursor") if cursor else None,
        )
    runs = run_list(page, state.now())
    return tool_result(render_run_list(runs), dump(runs))


@tool(
    names.LIST_RESULTS,
    title="List run results",
    description=descriptions.LIST_RESULTS,
    summary=(
        'One row per document: id, filename, status, error message cut short, duration; `status="error"` '
        "keeps only the failures (filtered across the API's pages)."
    ),
    example='list_experiment_run_results(run_id="exprun_…", status="error")',
)
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
