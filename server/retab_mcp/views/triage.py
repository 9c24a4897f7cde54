"""One answer to "why did this run end this way?", from the evidence reads/triage.py gathers: a verdict,
failures grouped by error, the lowest documents and fields, the change against the prior run, and the next
calls, within 4 KB. What could not be read is said in `warnings`: a partial diagnosis beats none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..api import statuses
from ..tools import names
from . import verdicts
from .compare import keep_side, keep_sign, p_text, signed_text
from .metrics import ScoredItem, delta, lowest, metrics_warning, score_text, scored_items
from .run import ID_KEYS, RunSummary, compact, documents_text, summarize, trace_tail
from .text import clip, duration_text

if TYPE_CHECKING:
    from ..api.models import Metrics, Result, Run

FAILURE_GROUPS_K = 3
EXAMPLES_PER_GROUP = 2
NAME_MAX = 40  # a filename in the report
CODE_MAX = 40
VERDICT_MESSAGE_MAX = 160
CALL_ARGUMENT_MAX = 128  # a next call whose argument is longer than an id is left out
WORST_K = 3
FIELD_SOURCE_DOCUMENTS = 2  # worst documents whose per-field scores are read
RESULTS_SCANNED = 1_000
FAILURE_MESSAGE_MAX = 120
TRIAGE_TRACE_LINES = 4
TRIAGE_TRACE_BYTES = 500
BUDGET_BYTES = 4_000  # text plus compact structured content, under the 4 KB promised
CAUSE_MAX = 240


class FailureGroup(BaseModel):
    message: str = Field(description="The error message shared by these documents, cut short.")
    code: str | None = None
    count: int
    documents: list[str] = Field(description="Up to 2 of them, by filename (or id).")


class Change(BaseModel):
    """The run against its prior run, document by document: the paired test the comparison tool makes."""

    verdict: str = Field(
        description="'improved', 'regressed', 'no detectable change' (views/verdicts.py's rule: the 95% interval "
        "is the sign-flip test inverted, so it excludes 0 exactly when p < 0.05), or 'no verdict' (fewer than 6 "
        "documents in both runs)."
    )
    paired_documents: int
    mean_delta: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


class TriageReport(BaseModel):
    """Why a run ended as it did: the verdict, what failed, where the score is lowest, what to call next."""

    verdict: str = Field(description="The answer in one or two sentences.")
    run: RunSummary
    cause: str | None = Field(default=None, description="A failed run's last stack-trace line: usually the cause.")
    score: float | None = None
    prior_score: float | None = None
    delta: float | None = Field(default=None, description="score - prior_score; negative means worse.")
    prior_run_id: str | None = None
    change: Change | None = Field(default=None, description="Whether the change from the prior run is beyond noise.")
    scored_documents: int | None = None
    failed_documents: int = Field(description="Documents whose result is an error.")
    failures: list[FailureGroup] = Field(description="Failed documents grouped by error message, largest first.")
    worst_documents: list[ScoredItem]
    worst_fields: list[ScoredItem] = Field(description="Fields (target paths) scoring lowest in the worst documents.")
    metrics_warning: str | None = None
    warnings: list[str] | None = Field(default=None, description="Parts that could not be read.")
    next_calls: list[str]


@dataclass
class Evidence:
    """What the API said about a run; None where the request failed (the reason is in `warnings`)."""

    run: Run
    results: list[Result] | None = None
    results_truncated: bool = False
    metrics: Metrics | None = None
    document_metrics: list[Metrics] = field(default_factory=list["Metrics"])
    warnings: list[str] = field(default_factory=list[str])


def failure_groups(results: Sequence[Result]) -> tuple[int, list[FailureGroup]]:
    """(failed document count, the largest groups of failures by message)."""
    groups: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        if result.status == statuses.ERROR:
            groups[result.lifecycle.error_message or "(no message)"].append(result)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    failed = sum(len(members) for members in groups.values())
    return failed, [
        FailureGroup(
            message=clip(message, FAILURE_MESSAGE_MAX),
            code=_code(members[0]),
            count=len(members),
            documents=[clip(m.filename or m.document_id or m.id, NAME_MAX) for m in members[:EXAMPLES_PER_GROUP]],
        )
        for message, members in ordered[:FAILURE_GROUPS_K]
    ]


def _code(result: Result) -> str | None:
    code = result.lifecycle.details.error_code if result.lifecycle.details else None
    return clip(code, CODE_MAX) if code else None


def _short_names(items: list[ScoredItem]) -> list[ScoredItem]:
    return [i.model_copy(update={"name": clip(i.name, NAME_MAX)}) if i.name else i for i in items]


def worst_fields(document_metrics: Sequence[Metrics], k: int = WORST_K) -> list[ScoredItem]:
    """Fields by their mean score over the documents read, lowest first."""
    scores: dict[str, list[float]] = defaultdict(list)
    for metrics in document_metrics:
        for target in metrics.targets:
            if target.score is not None:
                scores[target.path].append(target.score)
    means = [ScoredItem(id=clip(path, NAME_MAX), score=round(sum(v) / len(v), 4)) for path, v in scores.items()]
    return lowest(means, k)


def build_report(evidence: Evidence, now: datetime) -> TriageReport:
    run = evidence.run
    summary = summarize(run, now)
    metrics = evidence.metrics
    usable = metrics if metrics is not None and metrics_warning(metrics) is None else None
    failed, groups = failure_groups(evidence.results) if evidence.results is not None else (run.error_count, [])
    warnings = list(evidence.warnings)
    if evidence.results_truncated:
        warnings.append(f"Only the first {RESULTS_SCANNED} documents were scanned for failures.")
    prior_run_id = (usable.prior_run_id if usable else None) or run.parent_run_id
    score = usable.score if usable and usable.score is not None else summary.score
    prior = usable.prior_score if usable else None
    report = TriageReport(
        verdict="",
        run=summary,
        cause=last_trace_line(run) if run.status == statuses.ERROR else None,
        score=score,
        prior_score=prior,
        delta=delta(score, prior),
        prior_run_id=prior_run_id,
        change=change_against_prior(usable),
        scored_documents=usable.scored_document_count if usable else None,
        failed_documents=failed,
        failures=groups,
        worst_documents=_short_names(lowest(scored_items(usable), WORST_K)) if usable else [],
        worst_fields=worst_fields(evidence.document_metrics),
        metrics_warning=metrics_warning(metrics) if metrics is not None else None,
        warnings=warnings or None,
        next_calls=[],
    )
    return report.model_copy(update={"verdict": verdict(report), "next_calls": next_calls(report)})


def change_against_prior(metrics: Metrics | None) -> Change | None:
    """The paired test over the documents scored in both this run and its prior run."""
    if metrics is None:
        return None
    deltas = [d.score - d.prior_score for d in metrics.documents if d.score is not None and d.prior_score is not None]
    if not deltas:
        return None
    test = verdicts.sign_flip(deltas)
    judged = test.n >= verdicts.MIN_PAIRED
    return Change(
        verdict=test.verdict if judged else "no verdict",
        paired_documents=test.n,
        mean_delta=round(test.mean, 4),
        ci_low=keep_sign(test.low) if judged else None,
        ci_high=keep_sign(test.high) if judged else None,
        p_value=keep_side(test.p_value, verdicts.ALPHA) if judged else None,
    )


def verdict(report: TriageReport) -> str:
    run = report.run
    docs = documents_text(run)
    match run.status:
        case statuses.COMPLETED:
            text = f"Completed, {score_text(report.score, report.prior_score, report.prior_run_id)}."
        case statuses.ERROR:
            where = f" in block {run.error.block_name!r}" if run.error and run.error.block_name else ""
            message = clip(run.error.message, VERDICT_MESSAGE_MAX) if run.error else "(no message)"
            text = f"Failed{where} after {docs}: {_sentence(message)}"
        case statuses.CANCELLED:
            text = f"Cancelled after {docs}" + (f": {_sentence(run.cancel_reason)}" if run.cancel_reason else ".")
        case _:
            left = f", ~{duration_text(run.eta_s)} left" if run.eta_s is not None else ""
            text = f"Not finished ({run.status}, {docs}{left}); this is a report so far."
    if report.failed_documents:
        scored = f" of {run.total_documents}" if run.total_documents else ""
        top = "; ".join(f"{g.count}x {clip(g.message, 60)}" for g in report.failures[:2])
        text += f" {report.failed_documents}{scored} documents failed ({top})."
    if report.worst_documents and report.worst_documents[0].score is not None:
        worst = report.worst_documents[0]
        text += f" Lowest document: {worst.name or worst.id} at {worst.score:.3f}."
    return text


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def last_trace_line(run: Run) -> str | None:
    """The last line of a failed run's stack trace: in Python tracebacks, the exception and its message."""
    trace = run.lifecycle.details.stack_trace if run.lifecycle.details else None
    lines = [line.strip() for line in (trace or "").splitlines() if line.strip()]
    return clip(lines[-1], CAUSE_MAX) if lines else None


def next_calls(report: TriageReport) -> list[str]:
    run_id = report.run.run_id
    calls: list[str] = []
    if not report.run.finished:
        calls.append(f"{names.WAIT_RUN}(run_id='{run_id}')")
    if report.failed_documents:
        calls.append(f"{names.LIST_RESULTS}(run_id='{run_id}', status='error')")
    if report.worst_documents and len(doc := report.worst_documents[0].id) <= CALL_ARGUMENT_MAX:
        calls.append(f"{names.GET_METRICS}(run_id='{run_id}', view='by_document', document_id='{doc}')")
    if report.worst_fields and not (path := report.worst_fields[0].id).endswith("…"):
        calls.append(f"{names.GET_METRICS}(run_id='{run_id}', view='by_target', target_path='{path}')")
    if report.prior_run_id:
        calls.append(f"{names.TRIAGE}(run_id='{report.prior_run_id}')")
    return calls


def structured(report: TriageReport) -> dict[str, object]:
    """The report as structuredContent: nulls left out, the run summary compacted like the run tools'."""
    data = compact(report)
    # The run's static ids are one read of the run away; the report keeps what explains the outcome.
    run_data = {k: v for k, v in compact(report.run).items() if k not in ID_KEYS}
    if report.run.error is not None:  # the verdict carries the message already
        run_data["error"] = compact(report.run.error) | {"message": clip(report.run.error.message, VERDICT_MESSAGE_MAX)}
    data["run"] = run_data
    for name in ("worst_documents", "worst_fields"):
        data[name] = [compact(item) for item in getattr(report, name)]
    return data


def fit_to_budget(report: TriageReport, run: Run, budget: int = BUDGET_BYTES) -> tuple[str, dict[str, object]]:
    """The text and structured content of `report`, made smaller step by step until both fit in `budget`.

    Typical reports fit as they are; the steps only bite on extreme input (very long messages or names).
    """
    trace_lines = TRIAGE_TRACE_LINES
    steps = [
        ("trace", 2),
        ("failures", 2),
        ("worst_documents", 2),
        ("worst_fields", 2),
        ("trace", 0),
        ("failures", 1),
        ("worst_documents", 1),
        ("worst_fields", 1),
        ("failures", 0),
        ("worst_documents", 0),
        ("worst_fields", 0),
    ]
    while True:
        text = render_report(report, run, trace_lines=trace_lines)
        data = structured(report)
        if _size(text, data) <= budget or not steps:
            return text, data
        part, keep = steps.pop(0)
        if part == "trace":
            trace_lines = keep
        else:
            report = report.model_copy(update={part: getattr(report, part)[:keep]})


def _size(text: str, data: dict[str, object]) -> int:
    return len(text.encode()) + len(json.dumps(data, separators=(",", ":")).encode())


def render_report(report: TriageReport, run: Run, *, trace_lines: int = TRIAGE_TRACE_LINES) -> str:
    lines = [f"Verdict: {report.verdict}"]
    if report.change is not None:
        lines.append(change_line(report.change, report.delta))
    run_text = report.run.render(trace=False).splitlines()
    lines.extend(line for line in run_text if not line.startswith(("Next:", "Error", "Cancel reason")))
    trace = run.lifecycle.details.stack_trace if run.lifecycle.details else None
    if trace and trace_lines:
        lines.extend(trace_tail(trace, max_lines=trace_lines, max_bytes=TRIAGE_TRACE_BYTES))
    if report.failures:
        lines.append(f"Failed documents ({report.failed_documents}), by error:")
        for group in report.failures:
            code = f" [{group.code}]" if group.code else ""
            lines.append(f"- {group.count}x{code} {group.message} — e.g. {', '.join(group.documents)}")
    if report.worst_documents:
        lines.append("Worst documents: " + "; ".join(_scored(i) for i in report.worst_documents))
    if report.worst_fields:
        lines.append("Worst fields (in the worst documents): " + "; ".join(_scored(i) for i in report.worst_fields))
    if report.metrics_warning:
        lines.append(f"Metrics: {report.metrics_warning}")
    for warning in report.warnings or []:
        lines.append(f"Warning: {warning}")
    if report.next_calls:
        lines.append("Next calls:")
        lines.extend(f"- {call}" for call in report.next_calls)
    return "\n".join(lines)


def change_line(change: Change, score_delta: float | None) -> str:
    """The paired test against the prior run in one line, saying why its mean differs from the score's delta."""
    n = change.paired_documents
    because = ""
    if score_delta is not None:
        because = (
            f"; the score's {signed_text(score_delta)} compares whole-run aggregates, this mean only the {n} "
            "documents both scored"
        )
    if change.ci_low is None or change.ci_high is None or change.p_value is None:
        return (
            f"Against the prior run: no verdict (n={n} documents scored in both, fewer than {verdicts.MIN_PAIRED}; "
            f"mean per-document delta {signed_text(change.mean_delta)}{because})."
        )
    return (
        f"Against the prior run: {change.verdict} (n={n}, mean per-document delta {signed_text(change.mean_delta)}, "
        f"95% interval [{signed_text(change.ci_low)}, {signed_text(change.ci_high)}], sign-flip p="
        f"{p_text(change.p_value, verdicts.ALPHA)}{because})."
    )


def _scored(item: ScoredItem) -> str:
    score = f"{item.score:.3f}" if item.score is not None else "unscored"
    change = f" ({'+' if item.delta >= 0 else ''}{item.delta:.3f})" if item.delta is not None else ""
    return f"{item.name or item.id} {score}{change}"
