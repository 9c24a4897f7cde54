"""Experiments: find them, read one, and start a run of one (writes only) without ever starting two by
accident.

Starting a run costs the user money, so `start_experiment_run` (the procedure is watch/starts.py's):
- holds the experiment's start lock while it lists, posts and reconciles: in this process, and across
  replicas through Redis; a caller that waited on it sees the run the first one started;
- sends `POST /runs` once. When its outcome is unknown (a timeout after sending, a cut connection, a 5xx),
  it lists the experiment's runs to find out: the one run that appeared since and no other start of ours
  made is the one it started; none means nothing was seen (the answer says how to check before trying
  again, and the next start checks first); several means someone else started one too, and all are named;
- does not start a run while another of the experiment is pending, queued or running (it returns that
  one), unless `allow_concurrent` says to;
- asks the person first where the client can ask (elicitation); a "no" is a normal answer. Without
  elicitation, the operator's RETAB_MCP_ALLOW_WRITES=1 is the consent.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from ..api.client import RetabClient, check_id
from ..api.errors import RetabError
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
    start_data,
    start_result,
)
from ..views.messages import explain
from ..watch.starts import StartCalls, StartUnknownError, start_once
from . import descriptions, names
from .common import AppState, Cursor, state_of, tool_result
from .errors import cursor_errors, tool_errors
from .registry import tool

STARTS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
ExperimentId = Annotated[str, Field(description="Retab experiment id, e.g. 'exp_abc'.")]
RECENT_SCANNED = 20  # the experiment's latest runs looked at: for one still going, and for one just created


class Consent(BaseModel):
    start: bool = Field(description="Start this run now?")


@tool(
    names.LIST_EXPERIMENTS,
    title="List experiments",
    description=descriptions.LIST_EXPERIMENTS,
    summary=(
        "The workflow's experiments, a row each: name, block type, n_consensus, documents, latest run "
        "(id, status, score), and whether its metrics are stale and why."
    ),
    example='list_experiments(workflow_id="workflow_…")',
)
async def list_experiments(
    workflow_id: Annotated[str, Field(description="The workflow whose experiments to list.")],
    ctx: Context[AppState],
    limit: Annotated[int, Field(ge=1, le=25, description="Rows per page, 1 to 25.")] = 10,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, ExperimentList]:
    state = state_of(ctx)
    with tool_errors("", subject=f"workflow {workflow_id!r}"), cursor_errors(cursor):
        page = await state.client.list_experiments(
            workflow_id, limit=limit, after=check_id(cursor, "cursor") if cursor else None
        )
    listing = experiment_list(page)
    return tool_result(render_experiment_list(listing), listing.model_dump(mode="json"))


@tool(
    names.GET_EXPERIMENT,
    title="Get experiment",
    description=descriptions.GET_EXPERIMENT,
    summary=(
        "One experiment with its latest run and the one before, staleness and why, and the exact next "
        "call (wait, compare, triage or start)."
    ),
    example='get_experiment(experiment_id="exp_…")',
)
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


@tool(
    names.START,
    title="Start experiment run",
    description=descriptions.START,
    summary=(
        "Only with `RETAB_MCP_ALLOW_WRITES=1`. Starts a run, never two by accident: the request is sent "
        "once and, if its answer is lost, the experiment's runs are listed to find it; with a run of the "
        "experiment already going, none is started and that one is returned; where the client can ask, "
        'the person confirms first (a "no" is a normal answer). Returns the run\'s keys and the exact '
        "`wait_for_run` call."
    ),
    example='start_experiment_run(experiment_id="exp_…")',
    annotations=STARTS,
    writes=True,
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
        return tool_result(render_start(result), start_data(result))
    with tool_errors("", subject=subject):
        check_id(experiment_id, "experiment id")
        calls = StartCalls[Run](
            list_recent=lambda: _recent_runs(state.client, experiment_id),
            get=state.client.get_run,
            create=lambda: state.client.create_run(experiment_id, workflow_id),
        )
        # Waiting for a start in flight takes at most half the call's deadline: the rest is for this start.
        wait_s = state.settings.call_deadline_s / 2
        try:
            async with state.starts.hold(f"experiment:{experiment_id}", wait_s=wait_s) as section:
                outcome = await start_once(section, calls, clock=state.clock, allow_concurrent=allow_concurrent)
        except StartUnknownError as error:
            raise ToolError(_nothing_seen(experiment_id, error.cause)) from None
    if outcome.run is not None:
        state.watcher.remember(outcome.run)
    result = start_result(experiment_id, outcome.run, state.now(), outcome=outcome.kind, appeared=outcome.appeared)
    return tool_result(render_start(result), start_data(result))


async def _recent_runs(client: RetabClient, experiment_id: str) -> list[Run]:
    return (await client.list_runs(experiment_id=experiment_id, limit=RECENT_SCANNED)).data


def _nothing_seen(experiment_id: str, error: RetabError) -> str:
    return (
        f"The start of a run of experiment {experiment_id!r} may or may not have reached Retab "
        f"({explain(error, '').rstrip('.')}), and no new run was listed afterwards. Before trying again, check "
        f"with {names.LIST_RUNS}(experiment_id='{experiment_id}'): start again only if no run appeared (a start "
        "from this server looks for it first)."
    )


async def _active_run(client: RetabClient, experiment_id: str) -> Run | None:
    return next((run for run in await _recent_runs(client, experiment_id) if not run.lifecycle.is_terminal), None)
