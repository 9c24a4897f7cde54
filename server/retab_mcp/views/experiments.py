"""What a model reads about experiments: a row each, one experiment with its latest run, and the answer to
"start a run" (which may be: one is already going, the person said no, or the answer was lost)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from ..tools import names
from .run import RUN_KEYS, RunError, summarize
from .text import clip

if TYPE_CHECKING:
    from ..api.models import Experiment, Page, Run

NAME_MAX = 48  # an experiment name: 25 rows of them come in one page
REASON_MAX = 120

StartOutcome = Literal["started", "found_after_lost_answer", "already_running", "ambiguous", "declined"]


class ExperimentRow(BaseModel):
    experiment_id: str
    name: str | None = None
    block_type: str | None = None
    n_consensus: int | None = None
    documents: int = Field(description="Documents in the experiment.")
    latest_run_id: str | None = None
    latest_status: str | None = Field(default=None, description="Of the experiment: draft, processing, completed, ...")
    latest_score: float | None = None
    stale: bool = Field(description="True when the latest run's metrics no longer apply (block or documents changed).")
    stale_reasons: list[str] = Field(default_factory=list[str])


class ExperimentList(BaseModel):
    experiments: list[ExperimentRow]
    next_cursor: str | None = None
    hint: str


class ExperimentView(ExperimentRow):
    """One experiment, its latest run and the one before, and the next call worth making."""

    workflow_id: str | None = None
    block_id: str | None = None
    latest_run_status: str | None = Field(default=None, description="The latest run's own status.")
    previous_run_id: str | None = Field(default=None, description="The run before the latest, to compare with.")
    schema_drift: str | None = Field(
        default=None,
        description="Whether the block's schema moved away from what the experiment measures: none, partial, drifted.",
    )
    drifted_fields: list[str] | None = Field(default=None, description="The fields the drift touches, when known.")
    run_plan: str | None = Field(
        default=None,
        description="What starting a run would do now: run (re-run rerunnable_documents), noop (nothing to re-run), "
        "conflict (Retab would refuse until resolved).",
    )
    rerunnable_documents: int | None = None
    stale_needs: str | None = Field(
        default=None, description="What a stale experiment needs before its score means anything."
    )
    next_call: str = Field(description="The exact call worth making next.")


class StartResult(BaseModel):
    """The run started (or found, or already going), with the published run keys; null when none."""

    started: bool = Field(description="True when this call started a run.")
    outcome: StartOutcome = Field(
        description="started; found_after_lost_answer (the API's answer was lost, the run was found by listing); "
        "already_running (another run of the experiment is going: none started); ambiguous (the answer was lost "
        "and several runs appeared meanwhile, see appeared_run_ids: none is claimed); declined (the person said no)."
    )
    experiment_id: str
    run_id: str | None
    status: str | None
    finished: bool | None
    score: float | None
    completed_documents: int | None
    total_documents: int | None
    error_count: int | None
    error: RunError | None
    cancel_reason: str | None
    n_consensus: int | None = None
    wait_call: str | None = Field(description=f"The exact {names.WAIT_RUN} call for this run.")
    appeared_run_ids: list[str] | None = Field(
        default=None,
        description="When ambiguous: the runs that appeared while the answer was lost, one of them this start's.",
    )
    hint: str


def experiment_row(experiment: Experiment) -> ExperimentRow:
    return ExperimentRow(
        experiment_id=experiment.id,
        name=clip(experiment.name, NAME_MAX) if experiment.name else None,
        block_type=experiment.block_type,
        n_consensus=experiment.n_consensus,
        documents=experiment.document_count,
        latest_run_id=experiment.last_run_id,
        latest_status=experiment.status,
        latest_score=experiment.score,
        stale=experiment.stale,
        stale_reasons=[clip(r, REASON_MAX) for r in experiment.stale_reasons][:5],
    )


def experiment_list(page: Page[Experiment]) -> ExperimentList:
    rows = [experiment_row(e) for e in page.data]
    stale = [row.experiment_id for row in rows if row.stale]
    hint = f"One in detail: {names.GET_EXPERIMENT}(experiment_id=...)."
    if stale:
        hint += f" Stale (block or documents changed since their last run): {', '.join(stale[:3])}."
    if page.next_cursor:
        hint = "More: call again with cursor. " + hint
    return ExperimentList(experiments=rows, next_cursor=page.next_cursor, hint=hint)


def experiment_view(experiment: Experiment, runs: list[Run]) -> ExperimentView:
    """`runs`: the experiment's runs, newest first (the first two are enough)."""
    row = experiment_row(experiment)
    latest = runs[0] if runs else None
    previous = runs[1] if len(runs) > 1 else None
    if latest is None:
        next_call = f"{names.START}(experiment_id='{experiment.id}'): it has no run yet"
    elif not latest.lifecycle.is_terminal:
        next_call = f"{names.WAIT_RUN}(run_id='{latest.id}')"
    elif row.stale:
        next_call = f"{names.START}(experiment_id='{experiment.id}'): its metrics are stale"
    elif previous is not None:
        next_call = f"{names.COMPARE}(base_run_id='{previous.id}', candidate_run_id='{latest.id}')"
    else:
        next_call = f"{names.TRIAGE}(run_id='{latest.id}')"
    drift = experiment.schema_drift if experiment.schema_drift not in (None, "none", "unknown") else None
    if drift is None and experiment.drift is not None and experiment.drift.status in ("drifted", "broken"):
        drift = experiment.drift.status
    fields = experiment.drift.affected_targets[:5] if experiment.drift and experiment.drift.affected_targets else None
    return ExperimentView(
        **row.model_dump(exclude={"latest_run_id"}),
        latest_run_id=latest.id if latest else row.latest_run_id,
        workflow_id=experiment.workflow_id,
        block_id=experiment.block_id,
        latest_run_status=latest.status if latest else None,
        previous_run_id=previous.id if previous else None,
        schema_drift=drift,
        drifted_fields=fields,
        run_plan=experiment.run_plan_mode if experiment.run_plan_mode not in (None, "unknown") else None,
        rerunnable_documents=experiment.rerunnable_document_count,
        stale_needs=_stale_needs(experiment, drift) if row.stale or drift else None,
        next_call=next_call,
    )


def _stale_needs(experiment: Experiment, drift: str | None) -> str:
    """What a stale (or drifted) experiment needs, in a sentence."""
    needs: list[str] = []
    if drift:
        detail = f" ({clip(experiment.schema_drift_detail, 120)})" if experiment.schema_drift_detail else ""
        needs.append(
            f"its block's schema has {drift} from what it measures{detail}: update the experiment's fields first"
        )
    match experiment.run_plan_mode:
        case "run":
            count = experiment.rerunnable_document_count
            docs = f" ({count} documents would be re-run)" if count else ""
            needs.append(f"a new run, since its metrics no longer apply{docs}")
        case "noop":
            needs.append("nothing to re-run: a run now would change nothing (the metrics need refreshing in Retab)")
        case "conflict":
            needs.append("the conflict resolved in Retab before any run can start")
        case _:
            needs.append("a new run, since its metrics no longer apply")
    return "; then ".join(needs) + "."


def start_result(
    experiment_id: str,
    run: Run | None,
    now: datetime,
    *,
    outcome: StartOutcome,
    note: str = "",
    appeared: Sequence[Run] = (),
) -> StartResult:
    if outcome == "ambiguous":
        ids = [r.id for r in appeared]
        return StartResult(
            started=False,
            outcome=outcome,
            experiment_id=experiment_id,
            **dict.fromkeys(RUN_KEYS),
            wait_call=None,
            appeared_run_ids=ids,
            hint=f"The API's answer was lost and {len(ids)} runs of the experiment appeared meanwhile: "
            f"{', '.join(ids)}. One is this start's, the others someone else's (e.g. from the dashboard); none is "
            f"claimed. Do not start again: look at them with {names.GET_RUN} and keep the one you need.",
        )
    if run is None:
        return StartResult(
            started=False,
            outcome=outcome,
            experiment_id=experiment_id,
            **dict.fromkeys(RUN_KEYS),
            wait_call=None,
            hint=note or "Nothing was started.",
        )
    summary = summarize(run, now)
    wait_call = f"{names.WAIT_RUN}(run_id='{run.id}', timeout_s=45)"
    note = note or _start_note(outcome, run)
    return StartResult(
        started=outcome in ("started", "found_after_lost_answer"),
        outcome=outcome,
        experiment_id=experiment_id,
        **summary.model_dump(include=set(RUN_KEYS | {"n_consensus"})),
        wait_call=wait_call,
        hint=f"{note} Next: {wait_call}.".strip(),
    )


def start_data(result: StartResult) -> dict[str, object]:
    """The structured content: every published key; the runs that appeared only when there are some."""
    return result.model_dump(mode="json", exclude={"appeared_run_ids"} if result.appeared_run_ids is None else None)


def _start_note(outcome: StartOutcome, run: Run) -> str:
    match outcome:
        case "started":
            return "Started."
        case "found_after_lost_answer":
            return "The API's answer was lost; this run appeared meanwhile."
        case "already_running":
            return f"{run.id} is {run.status}; wait for it, or pass allow_concurrent=true to start another."
        case _:
            return ""


def render_start(result: StartResult) -> str:
    if result.outcome == "ambiguous":
        return f"Not claimed (ambiguous): {result.hint}"
    if result.run_id is None:
        return f"Not started ({result.outcome}): {result.hint}"
    head = {
        "started": "Started",
        "found_after_lost_answer": "Started (the answer was lost; found by listing the experiment's runs)",
        "already_running": "Not started: a run of this experiment is already going",
        "declined": "Not started",
    }[result.outcome]
    documents = f"{result.completed_documents}/{result.total_documents} docs"
    return f"{head}: {result.run_id} · {result.status} · {documents}.\n{result.hint}"


def render_experiment_list(listing: ExperimentList) -> str:
    if not listing.experiments:
        return f"No experiments in this workflow. {listing.hint}"
    lines = [f"{len(listing.experiments)} experiment(s):"]
    lines += [_row_text(row) for row in listing.experiments]
    lines.append(f"Next: {listing.hint}")
    return "\n".join(lines)


def render_experiment(view: ExperimentView) -> str:
    lines = [_row_text(view)]
    if view.latest_run_status:
        previous = f"; previous {view.previous_run_id}" if view.previous_run_id else ""
        lines.append(f"Latest run {view.latest_run_id}: {view.latest_run_status}{previous}.")
    if view.schema_drift:
        fields = f" (fields: {', '.join(view.drifted_fields)})" if view.drifted_fields else ""
        lines.append(f"Schema drift: {view.schema_drift}{fields}.")
    if view.stale_needs:
        lines.append(f"It needs {view.stale_needs}")
    lines.append(f"Next: {view.next_call}")
    return "\n".join(lines)


def _row_text(row: ExperimentRow) -> str:
    bits = [row.experiment_id]
    if row.name:
        bits.append(repr(row.name))
    if row.block_type:
        bits.append(f"{row.block_type} x{row.n_consensus}" if row.n_consensus else row.block_type)
    bits.append(f"{row.documents} docs")
    if row.latest_run_id:
        score = f" score {row.latest_score:.3f}" if row.latest_score is not None else ""
        bits.append(f"latest {row.latest_run_id} {row.latest_status or '?'}{score}")
    if row.stale:
        why = f" ({', '.join(row.stale_reasons)})" if row.stale_reasons else ""
        bits.append(f"STALE{why}")
    return "- " + " · ".join(bits)
