"""Comparison: did a change to the block make the runs agree more, by more than run-to-run noise?"""

from __future__ import annotations

from typing import Annotated

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
from .common import AppState, state_of, tool_result
from .errors import tool_errors
from .registry import tool

BaseRunId = Annotated[str, Field(description="The run before the change, e.g. the previous run of the experiment.")]
CandidateRunId = Annotated[str, Field(description="The run after the change.")]


@tool(
    names.COMPARE,
    title="Compare experiment runs",
    description=descriptions.COMPARE,
    summary=(
        "Did a change help? The documents both runs scored, paired; the score delta; the mean "
        "per-document delta with a 95% bootstrap interval and a sign-flip p-value; the verdict "
        "(`improved`, `regressed`, `no detectable change`, rule stated in the result) with n; the noise "
        "level when both runs share configuration and documents; the documents and fields that moved "
        "most; warnings. Under 4 KB."
    ),
    example='compare_experiment_runs(base_run_id="exprun_…", candidate_run_id="exprun_…")',
    view="shown",
)
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
