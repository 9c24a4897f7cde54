"""The run resource (an experiment run as get_experiment_run renders it) and the completion of run ids, for
the resource template and the prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    Completion,
    CompletionArgument,
    PromptReference,
    ResourceTemplateReference,
)

from ..api.client import call_deadline
from ..api.errors import InvalidIdError, NotFoundError, RetabError
from ..views.messages import explain
from . import names
from .common import AppState, state_of
from .opening import EngineNotOpenError

RUN_URI = "retab://experiment-runs/{run_id}"
RUN_ID_SUGGESTIONS = 20
COMPLETION_DEADLINE_S = 5.0  # suggestions while a person types: better none than late


def register_resource(server: MCPServer[Any], current: Callable[[], AppState | None]) -> None:
    """The run resource and run-id completion; `current` gives the lifespan's state (None outside it)."""

    async def experiment_run_resource(run_id: str, ctx: Context[AppState]) -> str:
        state = state_of(ctx)
        try:
            await state.ready()  # over stdio, the first request may be this one (opening.py)
        except EngineNotOpenError as error:
            raise MCPError(INTERNAL_ERROR, f"{error} Read it again; if this persists, restart the server.") from None
        try:
            with call_deadline(state.settings.call_deadline_s):
                run = await state.client.get_run(run_id)
        except RetabError as error:
            # An MCPError goes to the caller as it is; the SDK would log any other exception with a traceback.
            code = INVALID_PARAMS if isinstance(error, InvalidIdError | NotFoundError) else INTERNAL_ERROR
            raise MCPError(code, state.redact.text(explain(error, run_id))) from None
        from ..views.run import summarize  # at the first read, not at every start (BENCHMARKS.md 'Start-up')

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
                await state.ready()
                page = await state.client.list_runs(limit=RUN_ID_SUGGESTIONS)
        except (RetabError, EngineNotOpenError):
            return None  # suggestions are a convenience; a failure shows as none
        values = [state.redact.text(run.id) for run in page.data if run.id.startswith(argument.value)]
        return Completion(values=values, has_more=False)

    server.completion()(complete_run_id)
