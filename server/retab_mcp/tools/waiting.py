"""Waiting: one run (`wait_for_run`) or several (`wait_for_runs`), within a host's call limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..views.many import RunsWaitResult, render_runs_wait, runs_wait_result, structured
from ..views.run import WaitResult, wait_view
from ..watch.many import MAX_RUNS, WaitMode, wait_many
from . import descriptions, names
from .apps import SHOWN_BY_VIEW
from .common import READ_ONLY, AppState, RunId, WaitSeconds, redacted_progress, state_of, tool_result
from .errors import tool_errors

if TYPE_CHECKING:
    from .server import RetabServer


async def wait_for_run(
    run_id: RunId, ctx: Context[AppState], timeout_s: WaitSeconds = 45
) -> Annotated[CallToolResult, WaitResult]:
    state = state_of(ctx)
    with tool_errors(run_id):
        check_id(run_id)
        outcome = await state.watcher.wait(
            run_id, timeout_s=state.clamp_wait(timeout_s), on_progress=redacted_progress(ctx)
        )
    result = wait_view(outcome, state.now())
    return tool_result(result.render(), result.structured())


async def wait_for_runs(
    run_ids: Annotated[
        list[str],
        Field(min_length=1, max_length=MAX_RUNS, description=f"1 to {MAX_RUNS} experiment run ids."),
    ],
    ctx: Context[AppState],
    mode: Annotated[WaitMode, Field(description="'all': until every run ends; 'any': until one does.")] = "all",
    timeout_s: WaitSeconds = 45,
) -> Annotated[CallToolResult, RunsWaitResult]:
    state = state_of(ctx)
    unique = list(dict.fromkeys(run_ids))
    with tool_errors(unique[0]):
        outcome = await wait_many(
            state.watcher,
            unique,
            mode=mode,
            timeout_s=state.clamp_wait(timeout_s),
            on_progress=redacted_progress(ctx),
        )
    result = runs_wait_result(outcome)
    return tool_result(render_runs_wait(result), structured(result))


def register(server: RetabServer) -> None:
    server.add_tool(
        wait_for_run,
        name=names.WAIT_RUN,
        title="Wait for run",
        description=descriptions.WAIT_RUN,
        annotations=READ_ONLY,
        meta=SHOWN_BY_VIEW,
    )
    server.add_tool(
        wait_for_runs,
        name=names.WAIT_RUNS,
        title="Wait for runs",
        description=descriptions.WAIT_RUNS,
        annotations=READ_ONLY,
    )
