"""Scores: a run's agreement metrics, by summary, document, field or consensus votes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..views.metrics import MetricsReport, render_metrics, report_metrics
from . import descriptions, names
from .common import READ_ONLY, AppState, RunId, dump, state_of, tool_result
from .errors import tool_errors

if TYPE_CHECKING:
    from .server import RetabServer


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


def register(server: RetabServer) -> None:
    server.add_tool(
        get_experiment_run_metrics,
        name=names.GET_METRICS,
        title="Get run metrics",
        description=descriptions.GET_METRICS,
        annotations=READ_ONLY,
    )
