"""Triage: why a run scored as it did, in one call, and the prompt that walks an agent through it."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult
from pydantic import Field

from ..api.client import check_id
from ..api.errors import InvalidIdError
from ..reads.triage import gather_evidence
from ..views.messages import explain
from ..views.triage import TriageReport, build_report, fit_to_budget
from . import descriptions, names
from .common import AppState, RunId, state_of, tool_result
from .errors import tool_errors
from .registry import tool


@tool(
    names.TRIAGE,
    title="Triage experiment run",
    description=descriptions.TRIAGE,
    summary=(
        "Why the run ended this way, in one call and under 4 KB: a verdict, the run summary, score "
        "against the prior run, failed documents grouped by error, the worst documents and fields, "
        "metrics staleness, and the next calls worth making."
    ),
    example='triage_experiment_run(run_id="exprun_…")',
    view="shown",
)
async def triage_experiment_run(run_id: RunId, ctx: Context[AppState]) -> Annotated[CallToolResult, TriageReport]:
    state = state_of(ctx)
    with tool_errors(run_id):
        evidence = await gather_evidence(state.client, run_id)
    return tool_result(*fit_to_budget(build_report(evidence, state.now()), evidence.run))


def triage_prompt(run_id: Annotated[str, Field(description="The experiment run to triage.")]) -> str:
    try:
        check_id(run_id)
    except InvalidIdError as error:
        raise MCPError(INVALID_PARAMS, explain(error, run_id)) from None
    return descriptions.TRIAGE_PROMPT.format(run_id=run_id)


def register_prompt(server: MCPServer[Any]) -> None:
    server.prompt(
        name="triage-experiment-run",
        title="Triage an experiment run",
        description="Walk through a run: wait for it, triage it, drill into failures and scores, then report.",
    )(triage_prompt)
