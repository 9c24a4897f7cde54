"""The MCP server: identity, lifespan and thin tool adapters.

A tool body fetches, summarises and returns. Waiting lives in `waiting.py` and `batch.py`, the shape of
what a model reads in `summaries.py`, `listings.py`, `scores.py` and `triage.py`, the words it reads
before calling in `descriptions.py`, and error messages in `tool_errors.py`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    CompletionArgument,
    EmptyResult,
    InputRequiredResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field, ValidationError

from .. import __version__
from ..api.client import RetabClient, call_deadline, check_id
from ..api.errors import InvalidIdError, NotFoundError, RetabError
from ..api.retry import RetryPolicy
from ..clock import Clock, RealClock
from ..config import Settings
from ..redaction import Redactor
from ..views.lists import ResultList, RunList, list_result_rows, render_result_list, render_run_list, run_list
from ..views.metrics import MetricsReport, render_metrics, report_metrics
from ..views.run import RunSummary, WaitResult, compact, render, summarize, summarize_wait
from ..views.triage import TriageReport, build_report, fit_to_budget, gather_evidence
from ..watch.many import MAX_RUNS, RunsWaitResult, WaitMode, render_runs_wait, wait_for_runs
from ..watch.many import structured as batch_structured
from ..watch.schedule import Schedule
from ..watch.watcher import ProgressCallback, RunWatcher, running_watcher
from . import descriptions
from .errors import explain, invalid_arguments, tool_errors

if TYPE_CHECKING:
    import httpx2

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)

RunId = Annotated[
    str,
    Field(description="Retab experiment run id, e.g. 'exprun_2': 1-128 letters, digits, '_' or '-'."),
]
OptionalId = Annotated[str | None, Field(description="An id as Retab shows it; omit for no filter.")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page; omit for the first page.")]
RunStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled"]
WaitSeconds = Annotated[
    float,
    Field(
        description="Seconds to wait at most; clamped to 1..RETAB_MCP_MAX_WAIT_S (default 50), since hosts end "
        "tool calls at ~60 s.",
        allow_inf_nan=False,
    ),
]
RUN_URI = "retab://experiment-runs/{run_id}"
RUN_ID_SUGGESTIONS = 20
COMPLETION_DEADLINE_S = 5.0  # suggestions while a person types: better none than late
WAIT_TOOLS = frozenset({"wait_for_run", "wait_for_runs"})  # bounded by their own timeout_s
BACKSTOP_S = 0.5  # past the deadline, a call that is still running is ended here, whatever it waits on


class CancelResult(RunSummary):
    """A run after asking Retab to cancel it."""

    cancel_sent: bool = Field(description="False when there was nothing to cancel (the run had already ended).")


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
    watcher: RunWatcher
    waited: WaitLedger = field(default_factory=WaitLedger)

    def now(self) -> datetime:
        """The current wall time by this server's clock (virtual in tests)."""
        return self.clock.wall_at(self.clock.now())


class RetabServer(MCPServer[AppState]):
    """The SDK's server, with what every tool call gets: one deadline over all it does (waits have their
    own), argument errors in this server's words instead of a validation dump, and the redaction of all
    it returns (redaction.py)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retab_settings = settings  # `settings` is the SDK's own
        self.redact = Redactor([settings.api_key, settings.auth_token])
        self._calls_in_flight = 0
        self._no_calls = anyio.Event()
        self._no_calls.set()

    async def calls_done(self) -> None:
        """Return once no tool call is in flight (at shutdown: their answers have gone out)."""
        while self._calls_in_flight:
            await self._no_calls.wait()

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Call the tool within its deadline; what comes back, result or error, goes through the redaction."""
        if not self._calls_in_flight:
            self._no_calls = anyio.Event()
        self._calls_in_flight += 1
        try:
            return await self._redacted_call(name, arguments, context)
        finally:
            self._calls_in_flight -= 1
            if not self._calls_in_flight:
                self._no_calls.set()

    async def _redacted_call(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        try:
            result = await self._call_within_deadline(name, arguments, context)
        except UnexpectedToolError:
            raise  # the SDK shows only "Error executing tool NAME" for these
        except ToolError as error:
            raise ToolError(self.redact.text(str(error))) from error.__cause__
        if isinstance(result, CallToolResult):
            content = [
                block.model_copy(update={"text": self.redact.text(block.text)})
                if isinstance(block, TextContent)
                else block
                for block in result.content
            ]
            result = result.model_copy(
                update={"content": content, "structured_content": self.redact.deep(result.structured_content)}
            )
        return result

    async def _call_within_deadline(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        deadline = None if name in WAIT_TOOLS else self.retab_settings.call_deadline_s
        try:
            with (
                call_deadline(deadline),
                anyio.fail_after(None if deadline is None else deadline + BACKSTOP_S),
            ):
                return await super().call_tool(name, arguments, context)
        except TimeoutError:
            raise ToolError(
                f"{name} did not finish within its {deadline:g} s deadline (RETAB_MCP_CALL_DEADLINE_S). "
                "Call again in about a minute."
            ) from None
        except ToolError as error:
            if isinstance(error.__cause__, ValidationError) and not isinstance(error, UnexpectedToolError):
                schema = self._tool_input_schema(name)
                raise ToolError(invalid_arguments(name, error.__cause__, schema)) from error.__cause__
            raise


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    schedule: Schedule | None = None,
    stop: anyio.Event | None = None,
) -> RetabServer:
    """The retab MCP server. `transport` and `clock` let the demo and tests put the simulated API behind it;
    setting `stop` makes every wait in progress return at once (for a prompt, clean shutdown)."""
    the_clock = clock or RealClock()
    running: list[AppState] = []  # the lifespan's state, for handlers the SDK gives no context (completion)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncGenerator[AppState]:
        retry = RetryPolicy.from_settings(settings, sleep=the_clock.sleep)
        async with (
            RetabClient(settings, transport=transport, retry=retry) as client,
            running_watcher(client, the_clock, schedule=schedule, stop=stop) as watcher,
        ):
            state = AppState(client, the_clock, settings, watcher)
            running.append(state)
            try:
                yield state
            finally:
                running.remove(state)

    server = RetabServer(
        settings,
        name="retab",
        title="Retab experiment runs",
        instructions=descriptions.INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(title="Get experiment run", description=descriptions.GET_RUN, annotations=READ_ONLY)
    async def get_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, RunSummary]:
        state = ctx.request_context.lifespan_context
        with tool_errors(run_id):
            run = await state.client.get_run(run_id)
        state.watcher.record(run)
        summary = summarize(run, state.now())
        return _result(render(summary, run), compact(summary))

    @server.tool(title="Wait for run", description=descriptions.WAIT_RUN, annotations=READ_ONLY)
    async def wait_for_run(
        run_id: RunId, ctx: Context[AppState], timeout_s: WaitSeconds = 45
    ) -> Annotated[CallToolResult, WaitResult]:
        state = ctx.request_context.lifespan_context
        with tool_errors(run_id):
            check_id(run_id)
            outcome = await state.watcher.wait(
                run_id,
                timeout_s=_clamp_wait(timeout_s, state.settings),
                on_progress=_redacted_progress(ctx, server.redact),
            )
        result = summarize_wait(
            outcome.run,
            state.now(),
            timed_out=outcome.timed_out,
            waited_s=outcome.waited_s,
            warning=outcome.warning,
            total_waited_s=state.waited.add(run_id, outcome.waited_s),
            read_at=outcome.read_at,
        )
        return _result(render(result, outcome.run), compact(result))

    @server.tool(name="wait_for_runs", title="Wait for runs", description=descriptions.WAIT_RUNS, annotations=READ_ONLY)
    async def wait_for_runs_tool(
        run_ids: Annotated[
            list[str],
            Field(min_length=1, max_length=MAX_RUNS, description=f"1 to {MAX_RUNS} experiment run ids."),
        ],
        ctx: Context[AppState],
        mode: Annotated[WaitMode, Field(description="'all': until every run ends; 'any': until one does.")] = "all",
        timeout_s: WaitSeconds = 45,
    ) -> Annotated[CallToolResult, RunsWaitResult]:
        state = ctx.request_context.lifespan_context
        unique = list(dict.fromkeys(run_ids))
        with tool_errors(unique[0]):
            result = await wait_for_runs(
                state.watcher,
                unique,
                mode=mode,
                timeout_s=_clamp_wait(timeout_s, state.settings),
                on_progress=_redacted_progress(ctx, server.redact),
            )
        return _result(render_runs_wait(result), batch_structured(result))

    @server.tool(title="List experiment runs", description=descriptions.LIST_RUNS, annotations=READ_ONLY)
    async def list_experiment_runs(
        ctx: Context[AppState],
        experiment_id: OptionalId = None,
        workflow_id: OptionalId = None,
        status: RunStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=25, description="Rows per page, 1 to 25.")] = 10,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, RunList]:
        state = ctx.request_context.lifespan_context
        with tool_errors("", subject="the experiment or workflow"):
            page = await state.client.list_runs(
                experiment_id=experiment_id or None,
                workflow_id=workflow_id or None,
                status=status,
                limit=limit,
                after=check_id(cursor, "cursor") if cursor else None,
            )
        runs = run_list(page, state.now())
        return _result(render_run_list(runs), _dump(runs))

    @server.tool(title="List run results", description=descriptions.LIST_RESULTS, annotations=READ_ONLY)
    async def list_experiment_run_results(
        run_id: RunId,
        ctx: Context[AppState],
        status: RunStatus | None = None,
        limit: Annotated[int, Field(ge=1, le=50, description="Rows per page, 1 to 50.")] = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, ResultList]:
        state = ctx.request_context.lifespan_context
        with tool_errors(run_id):
            results = await list_result_rows(state.client, run_id, status=status, limit=limit, cursor=cursor)
        return _result(render_result_list(results), _dump(results))

    @server.tool(title="Get run metrics", description=descriptions.GET_METRICS, annotations=READ_ONLY)
    async def get_experiment_run_metrics(
        run_id: RunId,
        ctx: Context[AppState],
        view: Literal["summary", "by_document", "by_target", "votes"] = "summary",
        document_id: Annotated[str | None, Field(description="For by_document and votes.")] = None,
        target_path: Annotated[
            str | None, Field(max_length=512, description="A field path, e.g. 'invoice.total'; by_target, votes.")
        ] = None,
    ) -> Annotated[CallToolResult, MetricsReport]:
        state = ctx.request_context.lifespan_context
        subject = f"document {document_id!r} in run {run_id!r}" if document_id else None
        with tool_errors(run_id, subject=subject):
            metrics = await state.client.get_metrics(
                run_id, view, document_id=document_id or None, target_path=target_path or None
            )
        report = report_metrics(metrics, run_id, view)
        return _result(render_metrics(report), _dump(report))

    @server.tool(title="Triage experiment run", description=descriptions.TRIAGE, annotations=READ_ONLY)
    async def triage_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, TriageReport]:
        state = ctx.request_context.lifespan_context
        with tool_errors(run_id):
            evidence = await gather_evidence(state.client, run_id)
        return _result(*fit_to_budget(build_report(evidence, state.now()), evidence.run))

    if settings.allow_writes:

        @server.tool(title="Cancel experiment run", description=descriptions.CANCEL, annotations=DESTRUCTIVE)
        async def cancel_experiment_run(
            run_id: RunId, ctx: Context[AppState]
        ) -> Annotated[CallToolResult, CancelResult]:
            state = ctx.request_context.lifespan_context
            with tool_errors(run_id):
                try:
                    await state.client.cancel_run(run_id)
                    sent = True
                except NotFoundError:
                    # Retab answers 404 both for an unknown run and for one that already ended.
                    if not (await state.client.get_run(run_id)).lifecycle.is_terminal:
                        raise
                    sent = False
                run = await state.client.get_run(run_id)
            summary = summarize(run, state.now())
            note = "Cancel requested." if sent else f"Nothing to cancel: the run had already ended ({run.status})."
            result = CancelResult(**summary.model_dump(), cancel_sent=sent).model_copy(
                update={"hint": f"{note} {summary.hint}"}
            )
            return _result(render(result, run), compact(result))

    @server.resource(
        RUN_URI,
        name="experiment-run",
        title="Experiment run",
        description="The current state of a Retab experiment run, as get_experiment_run renders it.",
        mime_type="text/plain",
    )
    async def experiment_run_resource(run_id: str, ctx: Context[AppState]) -> str:
        state = ctx.request_context.lifespan_context
        try:
            with call_deadline(settings.call_deadline_s):
                run = await state.client.get_run(run_id)
        except RetabError as error:
            # An MCPError goes to the caller as it is; the SDK would log any other exception with a traceback.
            code = INVALID_PARAMS if isinstance(error, InvalidIdError | NotFoundError) else INTERNAL_ERROR
            raise MCPError(code, server.redact.text(explain(error, run_id))) from None
        return server.redact.text(render(summarize(run, state.now()), run))

    @server.prompt(
        name="triage-experiment-run",
        title="Triage an experiment run",
        description="Walk through a run: wait for it, triage it, drill into failures and scores, then report.",
    )
    def triage_prompt(run_id: Annotated[str, Field(description="The experiment run to triage.")]) -> str:
        try:
            check_id(run_id)
        except InvalidIdError as error:
            raise MCPError(INVALID_PARAMS, explain(error, run_id)) from None
        return descriptions.TRIAGE_PROMPT.format(run_id=run_id)

    @server.completion()
    async def complete_run_id(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: object
    ) -> Completion | None:
        """Suggest recent run ids for the prompt's and the resource template's `run_id`."""
        del ref, context  # both take a run id, and nothing else is completed
        if argument.name != "run_id" or not running:
            return None
        try:
            with call_deadline(min(settings.call_deadline_s, COMPLETION_DEADLINE_S)):
                page = await running[0].client.list_runs(limit=RUN_ID_SUGGESTIONS)
        except RetabError:
            return None  # suggestions are a convenience; a failure shows as none
        values = [server.redact.text(run.id) for run in page.data if run.id.startswith(argument.value)]
        return Completion(values=values, has_more=False)

    # Hosts speaking the 2025 protocol may set a log level at start. This server sends no log
    # notifications, so accepting the level is all there is to do; without a handler such hosts get
    # "method not found". The SDK has no public hook for this method, which its 2026 revision removed.
    server._lowlevel_server.add_request_handler(  # pyright: ignore[reportPrivateUsage]
        "logging/setLevel", SetLevelRequestParams, _accept_log_level
    )
    return server


def _redacted_progress(ctx: Context[AppState], redact: Redactor) -> ProgressCallback:
    """Progress for the caller, its message (which quotes the run's status) through the redaction."""

    async def report(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, redact.text(message))

    return report


async def _accept_log_level(_ctx: object, _params: SetLevelRequestParams) -> EmptyResult:
    return EmptyResult()


def _clamp_wait(timeout_s: float, settings: Settings) -> float:
    return min(max(timeout_s, 1.0), settings.max_wait_s)


def _dump(model: BaseModel) -> dict[str, object]:
    return model.model_dump(mode="json", exclude_none=True)


def _result(text: str, structured_content: dict[str, object]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured_content)
