"""Eval runs: their results, a comparison of two, and starting one (writes only) without ever starting two
by accident (the procedure is watch/starts.py's, as for experiment runs)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from ..api.client import check_id
from ..api.errors import RetabError
from ..api.evals import EvalRun
from ..kinds.readers import EVAL_KIND
from ..reads.evals import NoBaseError, gather_eval_pair, gather_eval_run
from ..views.eval_compare import EvalComparison, compare_evals, render_eval_comparison
from ..views.eval_results import EvalResultList, parse_cursor, render_result_list, result_list
from ..views.evals import EvalStartResult, eval_start_result, render_eval_start
from ..views.messages import explain
from ..watch.starts import StartCalls, StartUnknownError, start_once
from . import descriptions, names
from .common import AnyRunId, AppState, Cursor, state_of, tool_result
from .errors import tool_errors
from .registry import STARTS, tool

RECENT_SCANNED = 20
BUDGET_BYTES = 4_000


@tool(
    names.LIST_EVAL_RESULTS,
    title="List eval results",
    description=descriptions.LIST_EVAL_RESULTS,
    summary=(
        "An eval run's results, failures first: each eval's outcome (passed, failed, blocked: could not be "
        "evaluated), its assertion kind, actual against expected, score and threshold where the assertion has "
        "them, Retab's reason, and whether the eval drifted from its block; `outcome` filters, `next_cursor` pages."
    ),
    example='list_eval_results(run_id="wfevalrun_…", outcome="failed")',
)
async def list_eval_results(
    run_id: AnyRunId,
    ctx: Context[AppState],
    outcome: Literal["passed", "failed", "blocked"] | None = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Rows per page, 1 to 50.")] = 20,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, EvalResultList]:
    state = state_of(ctx)
    try:
        offset = parse_cursor(cursor)
    except ValueError:
        raise ToolError(
            f"cursor {cursor!r} was not given by {names.LIST_EVAL_RESULTS}: pass the next_cursor of the page before, "
            "or omit it for the first page."
        ) from None
    with tool_errors(run_id, kind=EVAL_KIND):
        check_id(run_id)
        evidence = await gather_eval_run(state.client, run_id)
    listing = result_list(evidence, outcome=outcome, offset=offset, limit=limit)
    return tool_result(render_result_list(listing), listing.model_dump(mode="json", exclude_none=False))


@tool(
    names.COMPARE_EVALS,
    title="Compare eval runs",
    description=descriptions.COMPARE_EVALS,
    summary=(
        "Did a change break or fix evals? The two runs' results paired by eval: each regression (passed -> "
        "failed) with actual against expected, each fix, what still fails, the evals not in both, blocked and "
        "drifted evals left out and named. Two verdicts with their rule: a strict gate (any regression fails it, "
        "as Retab's CLI does) and McNemar's exact test (more fixes than regressions beyond the flips of an "
        "unchanged configuration), the k-th candidate against one base judged at p * k(k+1)/2; no verdict, and "
        "why, when nothing pairs. Without `base_run_id`, the run before."
    ),
    example='compare_eval_runs(candidate_run_id="wfevalrun_…")',
    view="shown",
)
async def compare_eval_runs(
    ctx: Context[AppState],
    candidate_run_id: Annotated[str, Field(description="The eval run after the change.")],
    base_run_id: Annotated[
        str | None,
        Field(description="The eval run before it. Omit for the latest completed run of the same evals before it."),
    ] = None,
) -> Annotated[CallToolResult, EvalComparison]:
    state = state_of(ctx)
    for run_id in (base_run_id, candidate_run_id):
        if run_id is not None:
            with tool_errors(run_id, kind=EVAL_KIND):
                check_id(run_id)
    try:
        pair = await gather_eval_pair(state.client, base_run_id, candidate_run_id)
    except NoBaseError as error:
        raise ToolError(str(error)) from None
    except RetabError as error:
        raise ToolError(explain(error, candidate_run_id, kind=EVAL_KIND)) from None
    result = compare_evals(pair)
    text, data = render_eval_comparison(result), result.model_dump(mode="json")
    while _size(text, data) > BUDGET_BYTES and len(result.regressions) > 1:  # the rest are counted, not shown
        result = result.model_copy(update={"regressions": result.regressions[:-1]})
        text, data = render_eval_comparison(result), result.model_dump(mode="json")
    return tool_result(text, data)


def _size(text: str, data: dict[str, object]) -> int:
    return len(text.encode()) + len(json.dumps(data, separators=(",", ":")).encode())


class Consent(BaseModel):
    start: bool = Field(description="Start this eval run now?")


def _scope(block_id: str | None, eval_id: str | None) -> tuple[dict[str, str] | None, str]:
    if eval_id:
        return {"type": "single", "eval_id": check_id(eval_id, "eval id")}, f"eval {eval_id}"
    if block_id:
        return {"type": "block", "block_id": check_id(block_id, "block id")}, f"block {block_id}"
    return None, "all"


async def ask_to_start_evals(
    workflow_id: str, ctx: Context[AppState], block_id: str | None = None, eval_id: str | None = None
) -> Elicit[Consent] | Consent:
    """The question to the person where the client can ask; else the operator's opt-in is the consent."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return Consent(start=True)
    try:
        _, scope = _scope(block_id, eval_id)
    except RetabError:
        return Consent(start=True)  # the tool body meets the same error and explains it
    what = "every eval of the workflow" if scope == "all" else f"the evals of {scope}"
    return Elicit(
        f"Start a Retab eval run of {what} ({workflow_id})? It replays each eval's block on its saved inputs and is "
        "billed to your Retab account.",
        Consent,
    )


@tool(
    names.START_EVALS,
    title="Start eval run",
    description=descriptions.START_EVALS,
    summary=(
        "Only with `RETAB_MCP_ALLOW_WRITES=1`. Starts an eval run of a workflow's evals (all, one block's with "
        "`block_id`, one with `eval_id`), with the guarantees of `start_experiment_run`: one start at a time per "
        "workflow and scope (across replicas too), sent once, a lost answer found by listing, the person asked "
        "where the client can; a run of the same evals already going is returned instead."
    ),
    example='start_eval_run(workflow_id="workflow_…", block_id="block_…")',
    annotations=STARTS,
    writes=True,
)
async def start_eval_run(
    workflow_id: Annotated[str, Field(description="The workflow whose evals to run.")],
    ctx: Context[AppState],
    consent: Annotated[ElicitationResult[Consent], Resolve(ask_to_start_evals)],
    block_id: Annotated[str | None, Field(description="Only this block's evals.")] = None,
    eval_id: Annotated[str | None, Field(description="Only this eval.")] = None,
    allow_concurrent: Annotated[
        bool, Field(description="Start even though a run of these evals is going (default: no).")
    ] = False,
) -> Annotated[CallToolResult, EvalStartResult]:
    state = state_of(ctx)
    with tool_errors("", subject=f"workflow {workflow_id!r}"):
        check_id(workflow_id, "workflow id")
        scope, scope_text = _scope(block_id, eval_id)
    if not isinstance(consent, AcceptedElicitation) or not consent.data.start:
        result = eval_start_result(workflow_id, scope_text, None, "declined", note="The person said no.")
        return tool_result(render_eval_start(result), result.model_dump(mode="json", exclude_none=False))

    async def recent() -> list[EvalRun]:
        page = await state.client.list_eval_runs(
            workflow_id=workflow_id,
            eval_id=eval_id,
            target_block_id=None if eval_id else block_id,
            limit=RECENT_SCANNED,
        )
        # The list's filters are the scope's; a run of all the workflow's evals has neither target nor eval.
        return [run for run in page.data if eval_id or block_id or (run.target is None and run.eval_id is None)]

    calls = StartCalls[EvalRun](
        list_recent=recent,
        get=state.client.get_eval_run,
        create=lambda: state.client.create_eval_run(workflow_id, scope),
    )
    with tool_errors("", subject=f"workflow {workflow_id!r}"):
        try:
            async with state.starts.hold(
                f"evals:{workflow_id}:{scope_text}", wait_s=state.settings.call_deadline_s / 2
            ) as section:
                outcome = await start_once(section, calls, clock=state.clock, allow_concurrent=allow_concurrent)
        except StartUnknownError as error:
            raise ToolError(
                f"The start of an eval run of workflow {workflow_id!r} may or may not have reached Retab "
                f"({explain(error.cause, '').rstrip('.')}), and no new run was listed afterwards. Before trying "
                f"again, check with {names.LIST_RUNS_ANY}(kind='eval', workflow_id='{workflow_id}'): start again "
                "only if no run appeared."
            ) from None
    if outcome.run is not None:
        state.watcher.remember(outcome.run, EVAL_KIND)
    appeared = [run.id for run in outcome.appeared] or None
    result = eval_start_result(workflow_id, scope_text, outcome.run, outcome.kind, appeared=appeared)
    data = result.model_dump(mode="json", exclude={"appeared_run_ids"} if appeared is None else None)
    return tool_result(render_eval_start(result), data)
