"""The MCP server: identity, lifespan and thin tool adapters.

A tool body fetches, summarises and returns; waiting lives in `waiting.py`, wording in `summaries.py`
and `tool_errors.py`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

import httpx2
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from . import __version__
from .client import RetabClient
from .clock import Clock, RealClock
from .config import Settings
from .retry import RetryPolicy
from .summaries import RunSummary, WaitResult, compact, render, summarize, summarize_wait
from .tool_errors import tool_errors
from .waiting import PollSchedule, wait_for_finish

INSTRUCTIONS = """\
Watch Retab workflow experiment runs (a document-extraction block run over a set of documents, scored).
- get_experiment_run: the current state of a run (status, score, documents done, error and stack-trace
  tail of a failed run). Cheap; use it first.
- wait_for_run: blocks up to ~45 s until the run finishes. If it returns finished=false, call it again
  only if the result is needed now; stop after ~15 min or when two calls show no new documents.
A run that ended in `error` or `cancelled` is a normal answer, not a failure of the tool: read `error`
or `cancel_reason`, and do not wait on it again."""

# Tool descriptions are prompts: what the tool returns, when to call the other one, when to stop.
GET_DESCRIPTION = """\
Get the current state of a Retab experiment run: status, score, documents done, errors, timing.
For a failed run it includes the error and the end of the stack trace. Returns at once; to wait for an
unfinished run to end, call wait_for_run."""

WAIT_DESCRIPTION = """\
Wait until a Retab experiment run is completed, error or cancelled, or until timeout_s passes.
Finished: the full run summary with timed_out=false. Not finished in time: a normal result with
finished=false, timed_out=true and only what changes (status, documents, elapsed, ETA); call wait_for_run
again to keep waiting, and stop after ~15 min or when two calls show no new documents. Sends progress
(documents completed) when the caller asks for it."""

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)

RunId = Annotated[
    str,
    Field(description="Retab experiment run id, e.g. 'exprun_2': 1-128 letters, digits, '_' or '-'."),
]


class WaitLedger:
    """How long this server has waited on each run, over all calls (the last 1,000 runs)."""

    def __init__(self, capacity: int = 1_000) -> None:
        self._seconds: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity

    def add(self, run_id: str, seconds: float) -> float:
        total = self._seconds.pop(run_id, 0.0) + seconds
        self._seconds[run_id] = total
        while len(self._seconds) > self._capacity:
            self._seconds.popitem(last=False)
        return total


@dataclass
class AppState:
    client: RetabClient
    clock: Clock
    settings: Settings
    schedule: PollSchedule
    waited: WaitLedger = field(default_factory=WaitLedger)


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    schedule: PollSchedule | None = None,
) -> MCPServer[AppState]:
    """The retab MCP server. `transport` and `clock` let the demo and tests put the simulated API behind it."""
    the_clock = clock or RealClock()

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncGenerator[AppState]:
        retry = RetryPolicy.from_settings(settings, sleep=the_clock.sleep)
        async with RetabClient(settings, transport=transport, retry=retry) as client:
            yield AppState(client, the_clock, settings, schedule or PollSchedule())

    server = MCPServer[AppState](
        "retab",
        title="Retab experiment runs",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(title="Get experiment run", description=GET_DESCRIPTION, annotations=READ_ONLY)
    async def get_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, RunSummary]:
        state = ctx.request_context.lifespan_context
        with tool_errors(run_id):
            run = await state.client.get_run(run_id)
        summary = summarize(run, state.clock.wall_at(state.clock.now()))
        return _result(render(summary, run), compact(summary))

    @server.tool(title="Wait for run", description=WAIT_DESCRIPTION, annotations=READ_ONLY)
    async def wait_for_run(
        run_id: RunId,
        ctx: Context[AppState],
        timeout_s: Annotated[
            float,
            Field(
                description="Seconds to wait at most; clamped to 1..RETAB_MCP_MAX_WAIT_S (default 50), since "
                "hosts end tool calls at ~60 s.",
                allow_inf_nan=False,
            ),
        ] = 45,
    ) -> Annotated[CallToolResult, WaitResult]:
        state = ctx.request_context.lifespan_context
        timeout = min(max(timeout_s, 1.0), state.settings.max_wait_s)

        async def on_progress(progress: float, total: float | None, message: str) -> None:
            await ctx.report_progress(progress, total, message)

        with tool_errors(run_id):
            outcome = await wait_for_finish(
                state.client,
                run_id,
                timeout_s=timeout,
                clock=state.clock,
                on_progress=on_progress,
                schedule=state.schedule,
            )
        assert outcome.run is not None  # wait_for_finish raises rather than return without a state
        result = summarize_wait(
            outcome.run,
            state.clock.wall_at(state.clock.now()),
            timed_out=outcome.timed_out,
            waited_s=outcome.waited_s,
            warning=outcome.warning,
            total_waited_s=state.waited.add(run_id, outcome.waited_s),
        )
        return _result(render(result, outcome.run), compact(result))

    return server


def _result(text: str, structured: dict[str, object]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
