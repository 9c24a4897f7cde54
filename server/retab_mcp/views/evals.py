"""What a model reads about an eval run: did it run, and did the evals pass.

An eval run's lifecycle says whether it ran; its outcome is passed / failed / blocked of its evals
(blocked: the assertion could not be evaluated, neither a pass nor a fail). A stale eval run (its
baseline or inputs changed since) is said to be so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..tools import names
from .run import MESSAGE_MAX, NAME_MAX, RunError, RunState, Timed
from .text import clip, duration_text

if TYPE_CHECKING:
    from ..api.evals import EvalRun


class EvalView(RunState, Timed):
    """An eval run's keys (null for the other kinds of runs)."""

    workflow_id: str | None = None
    target_block_id: str | None = Field(default=None, description="Eval run: the block whose evals ran, if one.")
    eval_id: str | None = Field(default=None, description="Eval run: the one eval it ran, if one.")
    evals_total: int | None = Field(default=None, description="Eval run: evals in the run.")
    evals_finished: int | None = Field(default=None, description="Eval run: evals that ran (completed or not).")
    passed: int | None = Field(default=None, description="Eval run: evals whose assertion held.")
    failed: int | None = Field(default=None, description="Eval run: evals whose assertion did not hold.")
    blocked: int | None = Field(
        default=None, description="Eval run: evals whose assertion could not be evaluated (neither pass nor fail)."
    )
    stale_reasons: list[str] | None = Field(default=None, description="Eval run: why it no longer applies, if so.")


def eval_values(run: EvalRun) -> dict[str, Any]:
    outcome = run.counts.outcome
    lifecycle = run.lifecycle
    error = None
    if run.status == "error":
        details = lifecycle.details
        error = RunError(
            message=clip(lifecycle.error_message or "(no message)", MESSAGE_MAX),
            code=clip(details.error_code, NAME_MAX) if details and details.error_code else None,
            block_id=details.block_id if details else None,
            block_name=clip(details.block_name, NAME_MAX) if details and details.block_name else None,
        )
    stale = run.freshness is not None and run.freshness.status == "stale"
    return {
        "workflow_id": run.workflow_id,
        "target_block_id": run.target.block_id if run.target else None,
        "eval_id": run.eval_id,
        "evals_total": run.total_evals,
        "evals_finished": run.counts.lifecycle_counts.finished,
        "passed": outcome.passed,
        "failed": outcome.failed,
        "blocked": outcome.blocked,
        "stale_reasons": (run.freshness.reasons or ["stale"]) if stale and run.freshness else None,
        # The run keys: an eval run has no agreement score and no documents; its errors are evals that errored.
        "score": None,
        "completed_documents": None,
        "total_documents": None,
        "error_count": run.counts.lifecycle_counts.error,
        "error": error,
    }


def eval_headline(view: EvalView) -> str:
    parts = [view.run_id, f"eval run {view.status}", f"{view.evals_finished or 0}/{view.evals_total or 0} evals"]
    if view.evals_finished:
        parts.append(f"{view.passed or 0} passed, {view.failed or 0} failed, {view.blocked or 0} blocked")
    if view.duration_s is not None:
        parts.append(duration_text(view.duration_s))
    elif view.elapsed_s is not None:
        parts.append(f"{duration_text(view.elapsed_s)} so far")
    if view.eta_s is not None:
        parts.append(f"~{duration_text(view.eta_s)} left")
    return " · ".join(parts)


def eval_lines(view: EvalView) -> list[str]:
    lines: list[str] = []
    if view.target_block_id or view.eval_id:
        scope = f"eval {view.eval_id}" if view.eval_id else f"the evals of block {view.target_block_id}"
        lines.append(f"Ran {scope}.")
    if view.stale_reasons:
        lines.append(f"Stale (its block or inputs changed since): {', '.join(view.stale_reasons)}.")
    if view.error is not None:
        code = f" [{view.error.code}]" if view.error.code else ""
        lines.append(f"Error{code}, as reported by Retab: {view.error.message}")
    if view.cancel_reason:
        lines.append(f"Cancel reason, as reported by Retab: {view.cancel_reason}")
    return lines


def eval_next_step(view: EvalView) -> str:
    match view.status:
        case "completed" if view.failed or view.blocked:
            return (
                f"Why: {names.TRIAGE_RUN}(run_id='{view.run_id}'). What changed since the run before: "
                f"{names.COMPARE_EVALS} with this run as candidate_run_id."
            )
        case "completed":
            return (
                f"Every eval passed. {names.COMPARE_EVALS}(candidate_run_id='{view.run_id}') compares with the run "
                "before."
            )
        case "error":
            return "Failed; waiting won't change it. Start a new eval run once the cause is fixed."
        case "cancelled":
            return "Cancelled; it will not finish."
        case "pending" | "queued" | "running":
            return f"Not finished: call {names.WAIT_RUN} to wait (up to ~45 s a call)."
        case _:
            return f"Unknown status: call {names.GET_RUN_ANY} again later."


class EvalStartResult(BaseModel):
    """The eval run started (or found, or already going); the run keys null when there is none."""

    started: bool = Field(description="True when this call started a run.")
    outcome: str = Field(
        description="started; found_after_lost_answer; already_running (a run of these evals is going: none "
        "started); ambiguous (the answer was lost and several runs appeared: see appeared_run_ids); declined."
    )
    workflow_id: str
    scope: str = Field(description="all (the workflow's evals), block <id> or eval <id>.")
    run_id: str | None
    status: str | None
    finished: bool | None
    score: float | None
    completed_documents: int | None
    total_documents: int | None
    error_count: int | None
    error: RunError | None
    cancel_reason: str | None
    evals_total: int | None = None
    wait_call: str | None = Field(description=f"The exact {names.WAIT_RUN} call for this run.")
    appeared_run_ids: list[str] | None = None
    hint: str


START_HEADS = {
    "started": "Started",
    "found_after_lost_answer": "Started (the answer was lost; found by listing the workflow's eval runs)",
    "already_running": "Not started: an eval run of these evals is already going",
    "ambiguous": "Not claimed (ambiguous)",
    "declined": "Not started",
}


def eval_start_result(
    workflow_id: str,
    scope: str,
    run: EvalRun | None,
    outcome: str,
    *,
    appeared: list[str] | None = None,
    note: str = "",
) -> EvalStartResult:
    keys: dict[str, Any] = dict.fromkeys(
        (
            "run_id",
            "status",
            "finished",
            "score",
            "completed_documents",
            "total_documents",
            "error_count",
            "error",
            "cancel_reason",
        )
    )
    wait_call = None
    if run is not None:
        values = eval_values(run)
        keys |= {k: values[k] for k in ("score", "completed_documents", "total_documents", "error_count", "error")}
        keys |= {"run_id": run.id, "status": run.status, "finished": run.finished, "cancel_reason": None}
        wait_call = f"{names.WAIT_RUN}(run_id='{run.id}', timeout_s=45)"
    if outcome == "ambiguous":
        ids = ", ".join(appeared or [])
        note = (
            f"The API's answer was lost and {len(appeared or [])} eval runs appeared meanwhile: {ids}. One is this "
            f"start's, the others someone else's; none is claimed. Do not start again: look at them with "
            f"{names.GET_RUN_ANY}."
        )
    elif not note:
        note = {
            "started": "Started.",
            "found_after_lost_answer": "The API's answer was lost; this run appeared meanwhile.",
            "already_running": "Wait for it, or pass allow_concurrent=true to start another.",
        }.get(outcome, "")
    hint = f"{note} Next: {wait_call}." if wait_call else note
    return EvalStartResult(
        started=outcome in ("started", "found_after_lost_answer"),
        outcome=outcome,
        workflow_id=workflow_id,
        scope=scope,
        evals_total=run.total_evals if run is not None else None,
        wait_call=wait_call,
        appeared_run_ids=appeared,
        hint=hint.strip(),
        **keys,
    )


def render_eval_start(result: EvalStartResult) -> str:
    head = START_HEADS.get(result.outcome, result.outcome)
    if result.run_id is None:
        return f"{head}: {result.hint}"
    evals = f" · {result.evals_total} evals" if result.evals_total else ""
    return f"{head}: {result.run_id} · {result.status}{evals} ({result.scope}).\n{result.hint}"
