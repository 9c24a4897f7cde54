"""Waiting: one run (`wait_for_run`) or several (`wait_for_runs`), within a host's call limit."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..kinds import kind_of_id
from ..views.many import RunsWaitResult, render_runs_wait, runs_wait_result, structured
from ..views.runs import WaitResult, wait_view
from ..watch.many import MAX_RUNS, WaitMode, wait_many
from . import descriptions, names
from .common import AnyRunId, AppState, Kind, WaitSeconds, redacted_progress, state_of, tool_result
from .errors import tool_errors
from .registry import tool


@tool(
    names.WAIT_RUN,
    title="Wait for run",
    description=descriptions.WAIT_RUN,
    summary=(
        "Blocks until the run is completed, error or cancelled, or `timeout_s` passes (clamped to 1..50 "
        "s). A timeout is a normal result (`finished: false`, `timed_out: true`, `waited_s`) that says "
        "to call again and when to stop. Sends progress (documents completed) when the host asks for it."
    ),
    example='wait_for_run(run_id="exprun_…", timeout_s=45)',
    view="shown",
)
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


@tool(
    names.WAIT_RUNS,
    title="Wait for runs",
    description=descriptions.WAIT_RUNS,
    summary=(
        'One bounded wait over up to 20 runs, until all finish (`mode="all"`) or the first does '
        '(`"any"`). One compact row per run; a run that cannot be read gets its reason in its row while '
        "the others are still waited on. Progress is the sum of documents completed."
    ),
    example='wait_for_runs(run_ids=["exprun_a", "exprun_b"], mode="any")',
)
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
