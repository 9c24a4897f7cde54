"""Comparison: did a change to the block make the runs agree more, by more than run-to-run noise?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..views.compare import ComparisonReport, build_comparison, comparison_result, gather_comparison
from . import descriptions, names
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
    with tool_errors(base_run_id):
        check_id(base_run_id)
    with tool_errors(candidate_run_id):
        check_id(candidate_run_id)
        found = await gather_comparison(state.client, base_run_id, candidate_run_id)
    return tool_result(*comparison_result(build_comparison(found)))


def register(server: RetabServer) -> None:
    server.add_tool(
        compare_experiment_runs,
        name=names.COMPARE,
        title="Compare experiment runs",
        description=descriptions.COMPARE,
        annotations=READ_ONLY,
    )
