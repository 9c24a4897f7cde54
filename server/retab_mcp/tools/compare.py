"""Comparison: did a change to the block make the runs agree more, by more than run-to-run noise?

reads/compare.py reads (the per-field reads within half the call's deadline), views/compare.py judges.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..reads.compare import FIELD_READ_SHARE, NoBase, UnreadableRun, gather_comparison
from ..views.compare import ComparisonReport, build_comparison, comparison_result
from ..views.messages import explain
from . import descriptions, names
from .common import AppState, state_of, tool_result
from .errors import tool_errors
from .registry import tool

BaseRunId = Annotated[
    str | None,
    Field(description="The run before the change; omit for the run before the candidate on the same documents."),
]
CandidateRunId = Annotated[str, Field(description="The run after the change.")]


@tool(
    names.COMPARE,
    title="Compare experiment runs",
    description=descriptions.COMPARE,
    summary=(
        "Did a change help? The documents both runs scored, paired, and the mean per-document change in "
        "agreement put to a sign-flip test (exact up to 16 documents) whose interval is the test inverted, so "
        "the verdict (`improved`, `regressed`, `no detectable change`) never contradicts it. `no verdict`, "
        "with why and what would give one, when the runs cannot be compared (the same run, one not completed, "
        "stale metrics, different experiments, fewer than 6 shared documents). Without `base_run_id`, the "
        "candidate's previous completed run on the same documents. The k-th candidate against one base "
        "(counted from Retab's runs) is held to p * k(k+1)/2, so ten tries of edits that do nothing are "
        "called improved in under 5 % of such loops. Also: the score delta beside the mean delta and why they "
        'differ, the smallest change the comparison could catch, "no change" or "too few documents to tell", '
        "the fields that changed (each tested, Holm-corrected), the documents that moved most, warnings. "
        "Under 4 KB; the rule is in the result."
    ),
    example='compare_experiment_runs(candidate_run_id="exprun_…")',
    view="shown",
)
async def compare_experiment_runs(
    *, base_run_id: BaseRunId = None, candidate_run_id: CandidateRunId, ctx: Context[AppState]
) -> Annotated[CallToolResult, ComparisonReport]:
    state = state_of(ctx)
    for run_id in (base_run_id, candidate_run_id):
        if run_id is not None:
            with tool_errors(run_id):
                check_id(run_id)
    budget = state.settings.call_deadline_s * FIELD_READ_SHARE
    try:
        found = await gather_comparison(state.client, base_run_id, candidate_run_id, field_budget_s=budget)
    except UnreadableRun as unreadable:
        raise ToolError(explain(unreadable.error, unreadable.run_id)) from None
    except NoBase as missing:
        raise ToolError(str(missing)) from None
    # The exact tests take tens of milliseconds per field on a hundred documents: off the event loop.
    report = await anyio.to_thread.run_sync(build_comparison, found)
    return tool_result(*comparison_result(report))
