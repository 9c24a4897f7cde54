"""Scores: a run's agreement metrics, by summary, document, field or consensus votes."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..views.metrics import MetricsReport, render_metrics, report_metrics
from . import descriptions, names
from .common import AppState, RunId, dump, state_of, tool_result
from .errors import tool_errors
from .registry import tool


@tool(
    names.GET_METRICS,
    title="Get run metrics",
    description=descriptions.GET_METRICS,
    summary=(
        "Score, prior score and delta, and the 5 lowest-scoring documents (`summary`), fields of a "
        "document (`by_document`), documents for a field (`by_target`) or vote rows (`votes`). Stale or "
        "missing metrics come back as a warning with Retab's reasons, not an error."
    ),
    example='get_experiment_run_metrics(run_id="exprun_…", view="by_document", document_id="doc_…")',
)
async def get_experiment_run_metrics(
    run_id: RunId,
    ctx: Context[AppState],
    view: Literal["summary", "by_document", "by_target", "votes"] = "summary",
    document_id: Annotated[str | None, Field(description="For by_document and votes.")] = None,
    target_path: Annotated[
        str | None, Field(max_length=512, description="A field path, e.g. 'invoice.total'; by_target, votes.")
    ] = None,
) -> Annotated[CallToolResult, MetricsReport]:
    state = state_of(ctx)
    subject = f"document {document_id!r} in run {run_id!r}" if document_id else None
    with tool_errors(run_id, subject=subject):
        metrics = await state.client.get_metrics(
            run_id, view, document_id=document_id or None, target_path=target_path or None
        )
    report = report_metrics(metrics, run_id, view)
    return tool_result(render_metrics(report), dump(report))
