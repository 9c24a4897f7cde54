"""Comparison: did a change to the block make the runs agree more, by more than run-to-run noise?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..views.compare import (
    ComparisonReport,
    UnreadableRun,
    build_comparison,
    comparison_result,
    gather_comparison,
)
from ..views.messages import explain
from . import descriptions, names
from .apps import SHOWN_BY_VIEW
from .common import READ_ONLY, AppState, state_of, tool_result
from .errors import tool_errors

if TYPE_CHECKING:
    from .server import RetabServer

BaseRunId = Annotated[str, Field(description="The run before the change, e.g. the previous run of the experiment.")]
CandidateRunId = Annotated[str, Field(description="The run after the change.")]


async def compare_experiment_runs(
    base_run_id: BaseRunId, candidate_run_id: CandidateRunId, ctx: Context[AppState]
) -> Annotated[CallToolResult, ComparisonReport]:
    state = state_of(ctx)
    for run_id in (base_run_id, candidate_run_id):
        with tool_errors(run_id):
            check_id(run_id)
    try:
        found = await gather_comparison(state.client, base_run_id, candidate_run_id)
    except UnreadableRun as unreadable:
        raise ToolError(explain(unreadable.error, unreadable.run_id)) from None
    return tool_result(*comparison_result(build_comparison(found)))


def register(server: RetabServer) -> None:
    server.add_tool(
        compare_experiment_runs,
        name=names.COMPARE,
        title="Compare experiment runs",
        description=descriptions.COMPARE,
        annotations=READ_ONLY,
        meta=SHOWN_BY_VIEW,
    )
