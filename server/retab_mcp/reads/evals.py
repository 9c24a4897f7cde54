"""Reading an eval run for its results, triage and comparison: the run, every result, and the workflow's
evals (their names and whether they drifted from their block), read concurrently."""

from __future__ import annotations

import anyio

from ..api.client import RetabClient
from ..api.errors import RetabError
from ..api.evals import Eval, EvalResult, EvalRun
from ..tools import names
from ..views.eval_compare import EvalPair
from ..views.eval_results import EvalEvidence
from .common import every_page, optional

RESULTS_READ = 1_000
EVALS_READ = 500


async def gather_eval_run(client: RetabClient, run_id: str, *, with_evals: bool = True) -> EvalEvidence:
    """The run and its results are required (their errors are the call's); the evals are optional."""
    run = await client.get_eval_run(run_id)
    warnings: list[str] = []
    results: list[list[EvalResult]] = []
    evals: dict[str, Eval] = {}
    failures: list[RetabError] = []

    async def read_results() -> None:
        try:
            results.append(await every_page(client.list_eval_results, RESULTS_READ, run_id=run_id, limit=100))
        except RetabError as error:  # raised below, outside the task group
            failures.append(error)

    async def read_evals() -> None:
        if not with_evals or not run.workflow_id:
            return
        listed = await optional(
            "The workflow's evals", every_page(client.list_evals, EVALS_READ, workflow_id=run.workflow_id), warnings
        )
        evals.update({saved.id: saved for saved in listed or []})

    async with anyio.create_task_group() as group:
        group.start_soon(read_results)
        group.start_soon(read_evals)
    if failures:
        raise failures[0]
    return EvalEvidence(run, results[0], evals, warnings)


async def previous_eval_run(client: RetabClient, candidate: EvalRun) -> EvalRun | None:
    """The eval run to compare `candidate` with: the latest completed run before it, of the same workflow and
    the same scope (the same block, or the same single eval, or all)."""
    if not candidate.workflow_id:
        return None
    page = await client.list_eval_runs(workflow_id=candidate.workflow_id, status="completed", limit=50)
    created = candidate.timing.created_at
    for run in page.data:  # newest first
        if run.id == candidate.id or run.eval_id != candidate.eval_id:
            continue
        if (run.target.block_id if run.target else None) != (candidate.target.block_id if candidate.target else None):
            continue
        if created is not None and run.timing.created_at is not None and run.timing.created_at >= created:
            continue
        return run
    return None


async def runs_against(client: RetabClient, base: EvalRun) -> list[EvalRun]:
    """Eval runs of the same workflow and scope created after `base`, oldest first: the candidates tried
    against it (from Retab's own history, so every replica and every restart counts them alike)."""
    if not base.workflow_id or base.timing.created_at is None:
        return []
    page = await client.list_eval_runs(workflow_id=base.workflow_id, limit=100)
    later = [
        run
        for run in page.data
        if run.id != base.id
        and run.eval_id == base.eval_id
        and (run.target.block_id if run.target else None) == (base.target.block_id if base.target else None)
        and run.timing.created_at is not None
        and run.timing.created_at > base.timing.created_at
        and run.status not in ("cancelled", "error")
    ]
    since = base.timing.created_at
    return sorted(later, key=lambda run: run.timing.created_at or since)


BASE_RULE = "the latest completed eval run of the same workflow and evals before the candidate"


class NoBaseError(RetabError):
    """No base eval run was given and none could be found."""


async def gather_eval_pair(client: RetabClient, base_id: str | None, candidate_id: str) -> EvalPair:
    """Both runs' results (the candidate's with the evals' drift), the base found when not given, and the
    candidate's place among the eval runs tried against that base (from Retab's own list)."""
    candidate = await gather_eval_run(client, candidate_id)
    base_chosen = None
    if base_id is None:
        found = await previous_eval_run(client, candidate.run)
        if found is None:
            raise NoBaseError(
                f"No base eval run for {candidate_id}: none matches {BASE_RULE}. Pass base_run_id, e.g. from "
                f"{names.LIST_RUNS_ANY}(kind='eval', workflow_id='{candidate.run.workflow_id}')."
            )
        base_id, base_chosen = found.id, BASE_RULE
    base = await gather_eval_run(client, base_id, with_evals=False)
    warnings: list[str] = []
    tried = await optional("The eval runs tried against this base", runs_against(client, base.run), warnings)
    index = next((i + 1 for i, run in enumerate(tried or []) if run.id == candidate_id), 1)
    return EvalPair(base, candidate, candidate_index=index, base_chosen=base_chosen, warnings=warnings)
