"""Reading two experiment runs for their comparison, in three rounds, each concurrent:
1. both runs and their per-document scores (summary metrics);
2. the candidate's experiment's runs, newest first: the base when none was given (the latest completed run
   before the candidate on the same documents) and k, the candidate's place among the tries against the
   base (views/compare.count_candidates);
3. only when a verdict can be drawn: each paired document's per-field scores, one by_document read of the
   candidate with the base as prior_run_id, and one of the base only if Retab sent no prior scores; at
   most FIELD_DOCUMENTS_MAX documents, FIELD_READS_AT_ONCE at a time, within the time given.
"""

from __future__ import annotations

import anyio

from ..api.client import RetabClient
from ..api.errors import RetabError
from ..api.models import Metrics, Run
from ..base.text import clip
from ..tools import names
from ..views.compare import Comparison, choose_base, count_candidates, no_verdict_reason, paired_documents
from .common import optional

LISTED_RUNS_MAX = 300  # of the experiment, newest first: where the base and the tries since it are looked for
FIELD_DOCUMENTS_MAX = 100
FIELD_READS_AT_ONCE = 8
FIELD_READ_SHARE = 0.5  # of the call's deadline, for the per-field reads; what is read by then is used
BASE_RULE = "the latest completed run of the candidate's experiment before it, on the same documents"


class UnreadableRun(Exception):
    """One of the two runs could not be read: which one, and why."""

    def __init__(self, run_id: str, error: RetabError) -> None:
        super().__init__(str(error))
        self.run_id, self.error = run_id, error


class NoBase(Exception):
    """No base was given and none could be found."""


async def gather_comparison(
    client: RetabClient, base_id: str | None, candidate_id: str, *, field_budget_s: float = 20.0
) -> Comparison:
    """Read what the comparison needs. Raises UnreadableRun if a run itself cannot be read, NoBase if none
    was given and none can be found; anything else missing is a warning."""
    warnings: list[str] = []
    runs: dict[str, Run] = {}
    summaries: dict[str, Metrics] = {}
    failure: list[UnreadableRun] = []

    async def read_run(run_id: str) -> None:
        try:
            runs[run_id] = await client.get_run(run_id)
        except RetabError as error:
            failure.append(UnreadableRun(run_id, error))
            group.cancel_scope.cancel()

    async def read_summary(run_id: str) -> None:
        request = client.get_metrics(run_id, "summary", include_prior=False)
        if (found := await optional(f"scores of {run_id}", request, warnings)) is not None:
            summaries[run_id] = found

    async with anyio.create_task_group() as group:
        for run_id in dict.fromkeys(i for i in (candidate_id, base_id) if i is not None):
            group.start_soon(read_run, run_id)
            group.start_soon(read_summary, run_id)
    if failure:
        raise failure[0]
    candidate = runs[candidate_id]
    base_given = runs.get(base_id) if base_id is not None else None
    if base_given is not None and base_given.experiment_id != candidate.experiment_id:
        listing, listed_error = [], None  # runs of two experiments: no tries to count, nothing to list
    else:
        listing, listed_error = await _experiment_runs(client, candidate, base_id)
    base_chosen = None
    if base_id is None:
        base = choose_base(listing, candidate)
        if base is None:
            why = f"its runs could not be listed ({listed_error})" if listed_error else "none was found"
            raise NoBase(
                f"No base run for {candidate_id}: {BASE_RULE}; {why}. Pass base_run_id, e.g. from "
                f"{names.LIST_RUNS}(experiment_id='{candidate.experiment_id}')."
            )
        base_chosen = BASE_RULE
        await read_summary(base.id)
    else:
        base = runs[base_id]
        if listed_error:
            warnings.append(
                clip(f"Runs of the experiment not listed, tries against this base not counted: {listed_error}", 200)
            )
    found = Comparison(
        base,
        candidate,
        summaries.get(base.id),
        summaries.get(candidate.id),
        candidate_index=count_candidates(listing, base, candidate)
        if base.experiment_id == candidate.experiment_id
        else 1,
        base_chosen=base_chosen,
        warnings=warnings,
    )
    if no_verdict_reason(found) is None:
        await _read_fields(client, found, field_budget_s)
    return found


async def _experiment_runs(client: RetabClient, candidate: Run, base_id: str | None) -> tuple[list[Run], str | None]:
    """The candidate's experiment's runs, newest first, until the base (given or found) is passed."""
    if not candidate.experiment_id:
        return [], "the candidate names no experiment"
    listing: list[Run] = []
    seen_candidate = False
    after: str | None = None
    try:
        while len(listing) < LISTED_RUNS_MAX:
            page = await client.list_runs(experiment_id=candidate.experiment_id, order="desc", limit=100, after=after)
            for run in page.data:
                listing.append(run)
                seen_candidate = seen_candidate or run.id == candidate.id
                if base_id is not None and run.id == base_id:
                    return listing, None
                if base_id is None and seen_candidate and choose_base(listing, candidate) is not None:
                    return listing, None
            after = page.next_cursor
            if not after or not page.data:
                break
    except RetabError as error:
        return listing, str(error)
    return listing, None


async def _read_fields(client: RetabClient, found: Comparison, budget_s: float) -> None:
    documents = sorted(paired_documents(found))[:FIELD_DOCUMENTS_MAX]
    found.field_documents_asked = len(documents)
    limiter = anyio.CapacityLimiter(FIELD_READS_AT_ONCE)
    errors: list[str] = []
    base_id, candidate_id = found.base.id, found.candidate.id

    async def read(document_id: str) -> None:
        async with limiter:
            try:
                after = await client.get_metrics(
                    candidate_id, "by_document", document_id=document_id, prior_run_id=base_id
                )
                before = {t.path: t.prior_score for t in after.targets if t.prior_score is not None}
                if not before:  # no prior scores sent: read the base itself
                    base = await client.get_metrics(
                        base_id, "by_document", document_id=document_id, include_prior=False
                    )
                    before = {t.path: t.score for t in base.targets if t.score is not None}
            except RetabError as error:
                errors.append(str(error))
                return
        found.field_scores[document_id] = {
            t.path: (before[t.path], t.score) for t in after.targets if t.score is not None and t.path in before
        }

    with anyio.move_on_after(budget_s) as scope:
        async with anyio.create_task_group() as group:
            for document_id in documents:
                group.start_soon(read, document_id)
    if errors:
        found.warnings.append(clip(f"Fields of {len(errors)} documents not read: {errors[0]}", 200))
    if scope.cancelled_caught:
        found.warnings.append(
            f"Fields read for {len(found.field_scores)} of {len(documents)} paired documents within {budget_s:g} s; "
            "the field tests use those."
        )
