"""One run: get it, and cancel it (writes only). Its resource is resources.py's."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.errors import NotFoundError
from ..views.run import RunSummary, summarize
from . import descriptions, names
from .common import DESTRUCTIVE, AppState, RunId, state_of, tool_result
from .errors import tool_errors
from .registry import tool


class CancelResult(RunSummary):
    """A run after asking Retab to cancel it."""

    cancel_sent: bool = Field(description="False when there was nothing to cancel (the run had already ended).")


@tool(
    names.GET_RUN,
    title="Get experiment run",
    description=descriptions.GET_RUN,
    summary=(
        "The run's state at once: status, score, documents done, error count, timing, ETA, the error and "
        "the end of the stack trace of a failed run, the experiment, workflow, block and parent-run ids, "
        "and a next-step hint."
    ),
    example='get_experiment_run(run_id="exprun_NzgyL-WnaCEXXx5ET7SNt")',
    view="shown",
)
async def get_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, RunSummary]:
    state = state_of(ctx)
    with tool_errors(run_id):
        run = await state.watcher.get(run_id)
    summary = summarize(run, state.now())
    return tool_result(summary.render(), summary.structured())


@tool(
    names.CANCEL,
    title="Cancel experiment run",
    description=descriptions.CANCEL,
    summary=(
        "Only when the operator sets `RETAB_MCP_ALLOW_WRITES=1`; otherwise not listed at all. "
        "Destructive (annotated so). Cancelling a finished run changes nothing and says so."
    ),
    example='cancel_experiment_run(run_id="exprun_…")',
    annotations=DESTRUCTIVE,
    writes=True,
)
async def cancel_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, CancelResult]:
    state = state_of(ctx)
    with tool_errors(run_id):
        try:
            await state.client.cancel_run(run_id)
            sent = True
        except NotFoundError:
            # Retab answers 404 both for an unknown run and for one that already ended.
            if not (await state.client.get_run(run_id)).lifecycle.is_terminal:
                raise
            sent = False
        run = await state.watcher.get(run_id)
    summary = summarize(run, state.now())
    note = "Cancel requested." if sent else f"Nothing to cancel: the run had already ended ({run.status})."
    result = summary.into(CancelResult, cancel_sent=sent, hint=f"{note} {summary.hint}")
    return tool_result(result.render(), result.structured())
