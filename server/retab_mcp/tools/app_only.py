"""The tools only the run view calls (apps.py serves the view): listed only to hosts that render it."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ..views.metrics import MetricsReport, report_metrics
from . import descriptions, names
from .common import AppState, RunId, dump, state_of, tool_result
from .errors import tool_errors
from .registry import tool

DOCUMENTS_MAX = 500  # bars in the chart; Retab's experiments hold a few hundred documents at most


@tool(
    names.DOCUMENT_SCORES,
    title="Run document scores (view)",
    description=descriptions.DOCUMENT_SCORES,
    summary="Every scored document of a run, for the run view's chart (listed only to hosts that render it).",
    example='get_run_document_scores(run_id="exprun_…")',
    view="app_only",
)
async def get_run_document_scores(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, MetricsReport]:
    state = state_of(ctx)
    with tool_errors(run_id):
        metrics = await state.client.get_metrics(run_id, "summary")
    report = report_metrics(metrics, run_id, "summary", k=DOCUMENTS_MAX)
    text = f"{len(report.lowest)} document scores of {run_id}, lowest first (for the run view)."
    return tool_result(text, dump(report))
