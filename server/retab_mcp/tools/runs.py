"""One run: get it, read it as a resource (with its id completed), and cancel it (writes only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    CompletionArgument,
    PromptReference,
    ResourceTemplateReference,
)
from pydantic import Field

from ..api.client import call_deadline
from ..api.errors import InvalidIdError, NotFoundError, RetabError
from ..views.messages import explain
from ..views.run import RunSummary, summarize
from . import descriptions, names
from .common import DESTRUCTIVE, AppState, RunId, state_of, tool_result
from .errors import tool_errors
from .registry import tool

RUN_URI = "retab://experiment-runs/{run_id}"
RUN_ID_SUGGESTIONS = 20
COMPLETION_DEADLINE_S = 5.0  # suggestions while a person types: better none than late


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


def register_resource(server: MCPServer[Any], current: Callable[[], AppState | None]) -> None:
    """The run resource and run-id completion; `current` gives the lifespan's state (None outside it)."""

    async def experiment_run_resource(run_id: str, ctx: Context[AppState]) -> str:
        state = state_of(ctx)
        try:
            with call_deadline(state.settings.call_deadline_s):
                run = await state.client.get_run(run_id)
        except RetabError as error:
            # An MCPError goes to the caller as it is; the SDK would log any other exception with a traceback.
            code = INVALID_PARAMS if isinstance(error, InvalidIdError | NotFoundError) else INTERNAL_ERROR
            raise MCPError(code, state.redact.text(explain(error, run_id))) from None
        return state.redact.text(summarize(run, state.now()).render())

    server.resource(
        RUN_URI,
        name="experiment-run",
        title="Experiment run",
        description=f"The current state of a Retab experiment run, as {names.GET_RUN} renders it.",
        mime_type="text/plain",
    )(experiment_run_resource)

    async def complete_run_id(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: object
    ) -> Completion | None:
        """Suggest recent run ids for the prompt's and the resource template's `run_id`."""
        del ref, context  # both take a run id, and nothing else is completed
        state = current()
        if argument.name != "run_id" or state is None or state.callers is not None:
            return None  # with per-user keys, a completion carries no caller's key to list runs with
        try:
            with call_deadline(min(state.settings.call_deadline_s, COMPLETION_DEADLINE_S)):
                page = await state.client.list_runs(limit=RUN_ID_SUGGESTIONS)
        except RetabError:
            return None  # suggestions are a convenience; a failure shows as none
        values = [state.redact.text(run.id) for run in page.data if run.id.startswith(argument.value)]
        return Completion(values=values, has_more=False)

    server.completion()(complete_run_id)
