"""Waiting: one run (`wait_for_run`) or several (`wait_for_runs`), within a host's call limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..kinds import kind_of_id
from ..views.many import RunsWaitResult, render_runs_wait, runs_wait_result, structured
from ..views.runs import WaitResult, wait_view
from ..watch.many import MAX_RUNS, WaitMode, wait_many
from . import descriptions, names
from .apps import SHOWN_BY_VIEW
from .common import READ_ONLY, AnyRunId, AppState, Kind, WaitSeconds, redacted_progress, state_of, tool_result
from .errors import tool_errors

if TYPE_CHECKING:
    from .server import RetabServer


async def wait_for_run(
    run_id: AnyRunId, ctx: Context[AppState], timeout_s: WaitSeconds = 45, kind: Kind = None
) -> Annotated[CallToolResult, WaitResult]:
    state = state_of(ctx)
    run_kind = kind_of_id(run_id, kind)
    with tool_errors(run_id, kind=run_kind):
        check_id(run_id)
        outcome = await state.watcher.wait(
            run_id, kind=run_kind, timeout_s=state.clamp_wait(timeout_s), on_progress=redacted_progress(ctx)
        )
    result = wait_view(outcome, run_kind, state.now())
    return tool_result(result.render(), result.structured())


async def wait_for_runs(
    run_ids: Annotated[
        list[str],
        Field(min_length=1, max_length=MAX_RUNS, description=f"1 to {MAX_RUNS} run ids, of any kind."),
    ],
    ctx: Context[AppState],
    mode: Annotated[WaitMode, Field(description="'all': until every run ends; 'any': until one does.")] = "all",
    timeout_s: WaitSeconds = 45,
    kind: Kind = None,
) -> Annotated[CallToolResult, RunsWaitResult]:
    state = state_of(ctx)
    unique = list(dict.fromkeys(run_ids))
    with tool_errors(unique[0]):
        outcome = await wait_many(
            state.watcher,
            [(run_id, kind_of_id(run_id, kind)) for run_id in unique],
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
