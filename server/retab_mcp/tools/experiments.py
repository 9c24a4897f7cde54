"""Experiments: find them, read one, and start a run of one (writes only) without ever starting two by
accident.

Starting a run costs the user money, so `start_experiment_run`:
- sends `POST /runs` once. When its outcome is unknown (a timeout after sending, a cut connection, a 5xx),
  it lists the experiment's runs to find out: a run that was not there before the call is the one it
  started (returned, and said so); none means nothing was seen, and the answer says how to check before
  trying again;
- does not start a run while another of the experiment is pending, queued or running (it returns that
  one), unless `allow_concurrent` says to;
- asks the person first where the client can ask (elicitation); a "no" is a normal answer. Without
  elicitation, the operator's RETAB_MCP_ALLOW_WRITES=1 is the consent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from ..api.client import RetabClient, check_id
from ..api.errors import InvalidIdError, RetabError, outcome_unknown
from ..api.models import Run
from ..views.experiments import (
    ExperimentList,
    ExperimentView,
    StartResult,
    experiment_list,
    experiment_view,
    render_experiment,
    render_experiment_list,
    render_start,
    start_result,
)
from ..views.messages import explain
from . import descriptions, names
from .common import READ_ONLY, AppState, Cursor, state_of, tool_result
from .errors import tool_errors

if TYPE_CHECKING:
    from .server import RetabServer

STARTS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
ExperimentId = Annotated[str, Field(description="Retab experiment id, e.g. 'exp_abc'.")]
ACTIVE_SCANNED = 20  # the experiment's latest runs looked at for one still going
RECONCILE_READS = 3  # listings after an answer was lost: the new run may take a moment to be listed
RECONCILE_PAUSE_S = 1.0


class Consent(BaseModel):
    start: bool = Field(description="Start this run now?")


async def list_experiments(
    workflow_id: Annotated[str, Field(description="The workflow whose experiments to list.")],
    ctx: Context[AppState],
    limit: Annotated[int, Field(ge=1, le=25, description="Rows per page, 1 to 25.")] = 10,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, ExperimentList]:
    state = state_of(ctx)
    with tool_errors("", subject=f"workflow {workflow_id!r}"):
        page = await state.client.list_experiments(
            workflow_id, limit=limit, after=check_id(cursor, "cursor") if cursor else None
        )
    listing = experiment_list(page)
    return tool_result(render_experiment_list(listing), listing.model_dump(mode="json"))


async def get_experiment(
    experiment_id: ExperimentId, ctx: Context[AppState]
) -> Annotated[CallToolResult, ExperimentView]:
    state = state_of(ctx)
    with tool_errors("", subject=f"experiment {experiment_id!r}"):
        experiment = await state.client.get_experiment(experiment_id)
        runs = (await state.client.list_runs(experiment_id=experiment.id, limit=2)).data
    view = experiment_view(experiment, runs)
    return tool_result(render_experiment(view), view.model_dump(mode="json"))


async def ask_to_start(
    experiment_id: str, ctx: Context[AppState], allow_concurrent: bool = False
) -> Elicit[Consent] | Consent:
    """The question to the person, when there is one to ask: not when the client cannot ask (the operator's
    opt-in is the consent then), and not when a run is already going (nothing will start)."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return Consent(start=True)
    state = state_of(ctx)
    try:
        experiment = await state.client.get_experiment(experiment_id)
        if not allow_concurrent and await _active_run(state.client, experiment_id) is not None:
            return Consent(start=True)
    except RetabError:
        return Consent(start=True)  # the tool body meets the same error and explains it
    name = f" {experiment.name!r}" if experiment.name else ""
    consensus = f", {experiment.n_consensus} consensus passes each" if experiment.n_consensus else ""
    return Elicit(
        f"Start a Retab run of experiment{name} ({experiment.id}): {experiment.document_count} documents"
        f"{consensus}. It runs the block on every document and is billed to your Retab account.",
        Consent,
    )


async def start_experiment_run(
    experiment_id: ExperimentId,
    ctx: Context[AppState],
    consent: Annotated[ElicitationResult[Consent], Resolve(ask_to_start)],
    workflow_id: Annotated[
        str | None, Field(description="The experiment's workflow; when given, it must match (else not found).")
    ] = None,
    allow_concurrent: Annotated[
        bool, Field(description="Start even though another run of this experiment is going (default: no).")
    ] = False,
) -> Annotated[CallToolResult, StartResult]:
    state = state_of(ctx)
    subject = f"experiment {experiment_id!r}" + (f" in workflow {workflow_id!r}" if workflow_id else "")
    if not isinstance(consent, AcceptedElicitation) or not consent.data.start:
        result = start_result(experiment_id, None, state.now(), outcome="declined", note="The person said no.")
        return tool_result(render_start(result), result.model_dump(mode="json"))
    with tool_errors("", subject=subject):
        check_id(experiment_id, "experiment id")
        before = (await state.client.list_runs(experiment_id=experiment_id, limit=ACTIVE_SCANNED)).data
        active = _going(before)
        if active is not None and not allow_concurrent:
            note = f"{active.id} is {active.status}; wait for it, or pass allow_concurrent=true to start another."
            result = start_result(experiment_id, active, state.now(), outcome="already_running", note=note)
            return tool_result(render_start(result), result.model_dump(mode="json"))
        try:
            run = await state.client.create_run(experiment_id, workflow_id)
            outcome, note = "started", "Started."
        except RetabError as error:
            if not outcome_unknown(error):
                raise
            run = await _find_new_run(state, experiment_id, {r.id for r in before})
            if run is None:
                raise ToolError(_nothing_seen(experiment_id, error)) from None
            outcome, note = "found_after_lost_answer", "The API's answer was lost; this run appeared meanwhile."
    state.watcher.remember(run)
    result = start_result(experiment_id, run, state.now(), outcome=outcome, note=note)
    return tool_result(render_start(result), result.model_dump(mode="json"))


async def _active_run(client: RetabClient, experiment_id: str) -> Run | None:
    return _going((await client.list_runs(experiment_id=experiment_id, limit=ACTIVE_SCANNED)).data)


def _going(runs: list[Run]) -> Run | None:
    """The newest run still pending, queued or running (lists are newest first)."""
    return next((run for run in runs if not run.lifecycle.is_terminal), None)


async def _find_new_run(state: AppState, experiment_id: str, known: set[str]) -> Run | None:
    """The run the lost POST created: one listed now that was not before the call. Listed a few times, a
    moment apart, since a run just created may not be listed at once; any read error counts as not seen."""
    for attempt in range(RECONCILE_READS):
        if attempt:
            await state.clock.sleep(RECONCILE_PAUSE_S)
        try:
            runs = (await state.client.list_runs(experiment_id=experiment_id, limit=ACTIVE_SCANNED)).data
        except RetabError:
            continue
        new = [run for run in runs if run.id not in known]
        if new:
            return new[0]  # newest first: with several, the most recent is this call's
    return None


def _nothing_seen(experiment_id: str, error: RetabError) -> str:
    return (
        f"The start of a run of experiment {experiment_id!r} may or may not have reached Retab "
        f"({explain(error, '').rstrip('.')}), and no new run was listed afterwards. Before trying again, check "
        f"with {names.LIST_RUNS}(experiment_id='{experiment_id}'): start again only if no run appeared."
    )


def register(server: RetabServer) -> None:
    server.add_tool(
        list_experiments,
        name=names.LIST_EXPERIMENTS,
        title="List experiments",
        description=descriptions.LIST_EXPERIMENTS,
        annotations=READ_ONLY,
    )
    server.add_tool(
        get_experiment,
        name=names.GET_EXPERIMENT,
        title="Get experiment",
        description=descriptions.GET_EXPERIMENT,
        annotations=READ_ONLY,
    )


def iterate_prompt(
    experiment_id: Annotated[str, Field(description="The experiment to iterate on.")],
) -> str:
    try:
        check_id(experiment_id, "experiment id")
    except InvalidIdError as error:
        raise MCPError(INVALID_PARAMS, explain(error, "")) from None
    return descriptions.ITERATE_PROMPT.format(experiment_id=experiment_id)


def register_prompt(server: RetabServer) -> None:
    server.prompt(
        name="iterate-on-experiment",
        title="Iterate on an experiment",
        description="Read an experiment, run it if asked or stale, wait, compare with the previous run, triage, "
        "and say what changed, whether it is real, and the edit most likely to help.",
    )(iterate_prompt)


def register_writes(server: RetabServer) -> None:
    server.add_tool(
        start_experiment_run,
        name=names.START,
        title="Start experiment run",
        description=descriptions.START,
        annotations=STARTS,
    )
