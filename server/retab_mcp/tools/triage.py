"""Triage: why a run scored as it did, in one call, and the prompt that walks an agent through it."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ..reads.triage import gather_evidence
from ..views.triage import TriageReport, build_report, fit_to_budget
from . import descriptions, names
from .common import AppState, RunId, state_of, tool_result
from .errors import tool_errors
from .registry import tool


@tool(
    names.TRIAGE,
    title="Triage experiment run",
    description=descriptions.TRIAGE,
    summary=(
        "Why the run ended this way, in one call and under 4 KB: a verdict, the run summary, score "
        "against the prior run, failed documents grouped by error, the worst documents and fields, "
        "metrics staleness, and the next calls worth making."
    ),
    example='triage_experiment_run(run_id="exprun_…")',
    view="shown",
)
async def triage_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, TriageReport]:
    state = state_of(ctx)
    with tool_errors(run_id):
        evidence = await gather_evidence(state.client, run_id)
    return tool_result(*fit_to_budget(build_report(evidence, state.now()), evidence.run))
