"""Runs of any kind: get one, list workflow or eval runs, and say why one ended as it did."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from ..api.client import check_id
from ..kinds import EVAL, WORKFLOW, kind_of_id
from ..reads.evals import gather_eval_run
from ..reads.triage import gather_evidence
from ..reads.workflows import gather_workflow
from ..views.eval_triage import EvalTriage, eval_triage, render_eval_triage
from ..views.run_lists import KindRunList, eval_run_list, render_kind_run_list, workflow_run_list
from ..views.runs import RunView, view_of
from ..views.triage import TriageReport, build_report, fit_to_budget
from ..views.workflow_triage import WorkflowTriage, render_workflow_triage, workflow_triage
from . import descriptions, names
from .common import AnyRunId, AppState, Cursor, Kind, OptionalId, state_of, tool_result
from .errors import cursor_errors, tool_errors
from .registry import tool

BUDGET_BYTES = 4_000
RunStatus = Literal["pending", "queued", "running", "awaiting_review", "completed", "error", "cancelled"]


class RunTriage(BaseModel):
    """Why a run ended as it did. `kind` says which section holds the report."""

    kind: str = Field(description="experiment, workflow or eval.")
    verdict: str = Field(description="The answer in one or two sentences.")
    experiment: TriageReport | None = None
    workflow: WorkflowTriage | None = None
    eval: EvalTriage | None = None


@tool(
    names.GET_RUN_ANY,
    title="Get run",
    description=descriptions.GET_RUN_ANY,
    summary=(
        "Any run's state at once, whatever its kind: an experiment run as `get_experiment_run` gives it; a "
        "workflow run's steps done and failed, the failing step, and whether a review gate holds it for a "
        "person (`needs_person`, with each pending review); an eval run's passed / failed / blocked of its "
        "evals and whether it is stale. The kind comes from the id's prefix, or `kind`."
    ),
    example='get_run(run_id="run_abc123xyz")',
    view="shown",
)
async def get_run(run_id: AnyRunId, ctx: Context[AppState], kind: Kind = None) -> Annotated[CallToolResult, RunView]:
    state = state_of(ctx)
    run_kind = kind_of_id(run_id, kind)
    with tool_errors(run_id, kind=run_kind):
        check_id(run_id)
        run = await state.watcher.get(run_id, run_kind)
    view = view_of(run, run_kind, state.now())
    return tool_result(view.render(), view.structured())


@tool(
    names.LIST_RUNS_ANY,
    title="List workflow or eval runs",
    description=descriptions.LIST_RUNS_ANY,
    summary=(
        "Workflow runs or eval runs, newest first, a row each: status, timing, the trigger or the evals' "
        "passed / failed / blocked, and whether a run waits for a person; filters `workflow_id` and `status`; "
        "`next_cursor`."
    ),
    example='list_runs(kind="workflow", status="awaiting_review")',
)
async def list_runs(
    kind: Annotated[Literal["workflow", "eval"], Field(description="workflow runs or eval runs.")],
    ctx: Context[AppState],
    workflow_id: OptionalId = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Field(ge=1, le=25, description="Rows per page, 1 to 25.")] = 10,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, KindRunList]:
    state = state_of(ctx)
    with tool_errors("", subject="the workflow"), cursor_errors(cursor):
        after = check_id(cursor, "cursor") if cursor else None
        if kind == WORKFLOW:
            page = await state.client.list_workflow_runs(
                workflow_id=workflow_id, status=status, limit=limit, after=after
            )
            listing = workflow_run_list(page)
        else:
            eval_page = await state.client.list_eval_runs(
                workflow_id=workflow_id, status=status, limit=limit, after=after
            )
            listing = eval_run_list(eval_page)
    return tool_result(render_kind_run_list(listing), listing.model_dump(mode="json"))


@tool(
    names.TRIAGE_RUN,
    title="Triage run",
    description=descriptions.TRIAGE_RUN,
    summary=(
        "Why a run of any kind ended as it did, in one call and under 4 KB. A workflow run: failed steps "
        "grouped by error, review gates waiting on a person, the slowest steps, where its outputs are. An eval "
        "run: failures grouped by block and assertion kind with actual against expected, blocked evals and "
        "why, and the evals that drifted from their block named apart (not regressions). An experiment run: "
        "`triage_experiment_run`'s report."
    ),
    example='triage_run(run_id="wfevalrun_q1z2")',
    view="shown",
)
async def triage_run(
    run_id: AnyRunId, ctx: Context[AppState], kind: Kind = None
) -> Annotated[CallToolResult, RunTriage]:
    state = state_of(ctx)
    run_kind = kind_of_id(run_id, kind)
    with tool_errors(run_id, kind=run_kind):
        check_id(run_id)
        if run_kind.name == WORKFLOW:
            report = workflow_triage(await gather_workflow(state.client, run_id, state.now()), state.now())
            text, data = _fit(report, render_workflow_triage)
            return tool_result(text, {"kind": WORKFLOW, "verdict": report.verdict, "workflow": data})
        if run_kind.name == EVAL:
            evals = eval_triage(await gather_eval_run(state.client, run_id), state.now())
            text, data = _fit(evals, render_eval_triage)
            return tool_result(text, {"kind": EVAL, "verdict": evals.verdict, "eval": data})
        evidence = await gather_evidence(state.client, run_id)
    text, data = fit_to_budget(build_report(evidence, state.now()), evidence.run)
    return tool_result(text, {"kind": "experiment", "verdict": data["verdict"], "experiment": data})


TRIMMED = ("outputs", "slowest_steps", "blocked", "drifted", "failures", "pending_reviews", "warnings")


def _fit(report: Any, render: Any) -> tuple[str, dict[str, Any]]:
    """The report's text and structured content within BUDGET_BYTES: the longest lists lose their last
    items first, and the text says so."""
    cut = 0
    while True:
        text = render(report)
        data = {**report.model_dump(mode="json", exclude_none=True), "run": report.run.structured()}
        size = len(text.encode()) + len(json.dumps(data, separators=(",", ":")).encode())
        if size <= BUDGET_BYTES:
            break
        lists = [(len(getattr(report, name)), name) for name in TRIMMED if len(getattr(report, name, []) or []) > 1]
        if not lists:
            break
        _, longest = max(lists)
        report = report.model_copy(update={longest: getattr(report, longest)[:-1]})
        cut += 1
    if cut:
        text += f"\n({cut} item(s) left out to stay under 4 KB.)"
    return text, data
