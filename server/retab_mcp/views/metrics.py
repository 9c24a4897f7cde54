"""What a model reads about a run's metrics: the score against the prior run, and where it is lowest.

Every view of the metrics endpoint becomes one `MetricsReport`: the score, the prior score and their
difference, and the k lowest-scoring items of the view (documents of a run or of a target, targets of a
document, vote rows of a cell). `stale_metrics` and `no_metrics` are answers, not failures: they become
a warning that carries Retab's reasons.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, Field

from ..tools import names
from .text import clip

if TYPE_CHECKING:
    from ..api.models import Metrics

LOWEST_K = 5
NAME_MAX = 60
WARNING_MAX = 300


class ScoredItem(BaseModel):
    """A document, a target (field path) or a vote row, with its score."""

    id: str = Field(description="Document id, target path, or vote row number.")
    name: str | None = Field(default=None, description="Filename of a document; votes of a vote row.")
    score: float | None = None
    prior_score: float | None = None
    delta: float | None = Field(default=None, description="score - prior_score.")


class MetricsReport(BaseModel):
    """A run's metrics in one view, lowest scores first."""

    run_id: str
    view: str
    kind: str = Field(description="What Retab answered: the view's name, stale_metrics or no_metrics.")
    subject: str | None = Field(default=None, description="The document or target the view is about.")
    score: float | None = None
    prior_score: float | None = None
    delta: float | None = Field(default=None, description="score - prior_score; negative means worse.")
    prior_run_id: str | None = None
    scored_documents: int | None = None
    total_documents: int | None = None
    lowest: list[ScoredItem] = Field(description="The lowest-scoring items of the view, worst first.")
    item_count: int = Field(description="How many items the view has in all.")
    warning: str | None = Field(default=None, description="Why there are no usable metrics, from Retab.")
    stale_reasons: list[str] | None = None
    hint: str


def delta(score: float | None, prior: float | None) -> float | None:
    return round(score - prior, 4) if score is not None and prior is not None else None


def lowest(items: list[ScoredItem], k: int) -> list[ScoredItem]:
    """The k lowest-scoring items; unscored ones come last, as they say nothing about quality."""
    return sorted(items, key=lambda item: (item.score is None, item.score or 0.0, item.id))[:k]


def metrics_warning(metrics: Metrics) -> str | None:
    if metrics.kind == "stale_metrics":
        reasons = ", ".join(metrics.stale_reasons) or "not given"
        return clip(f"Metrics are stale (reasons: {reasons}). Retab says: {metrics.message or '-'}", WARNING_MAX)
    if metrics.kind == "no_metrics":
        return clip(f"No metrics. Retab says: {metrics.message or '-'}", WARNING_MAX)
    return None


def scored_items(metrics: Metrics) -> list[ScoredItem]:
    """The rows of any view as scored items."""
    if metrics.kind == "by_document":
        return [
            ScoredItem(id=t.path, score=t.score, prior_score=t.prior_score, delta=delta(t.score, t.prior_score))
            for t in metrics.targets
        ]
    if metrics.kind == "votes":
        return [_vote_item(i, row) for i, row in enumerate(_extra_list(metrics, "rows"))]
    return [
        ScoredItem(
            id=d.id,
            name=clip(d.filename, NAME_MAX) if d.filename else None,
            score=d.score,
            prior_score=d.prior_score,
            delta=delta(d.score, d.prior_score),
        )
        for d in metrics.documents
    ]


def report_metrics(metrics: Metrics, run_id: str, view: str, k: int = LOWEST_K) -> MetricsReport:
    warning = metrics_warning(metrics)
    items = [] if warning else scored_items(metrics)
    report = MetricsReport(
        run_id=run_id,
        view=view,
        kind=metrics.kind,
        subject=_subject(metrics),
        score=metrics.score,
        prior_score=metrics.prior_score,
        delta=delta(metrics.score, metrics.prior_score),
        prior_run_id=metrics.prior_run_id,
        scored_documents=metrics.scored_document_count,
        total_documents=metrics.total_document_count,
        lowest=lowest(items, k),
        item_count=len(items),
        warning=warning,
        stale_reasons=list(metrics.stale_reasons) or None,
        hint="",
    )
    return report.model_copy(update={"hint": _hint(report)})


def _subject(metrics: Metrics) -> str | None:
    extra = metrics.model_extra or {}
    document = extra.get("document")
    target = extra.get("target")
    parts: list[str] = []
    if isinstance(document, dict):
        doc = cast(dict[str, Any], document)
        parts.append(f"{doc.get('filename') or '?'} ({doc.get('id') or '?'})")
    if isinstance(target, str):
        parts.append(target)
    return clip(" / ".join(parts), NAME_MAX * 2) if parts else None


def _extra_list(metrics: Metrics, name: str) -> list[dict[str, Any]]:
    value = (metrics.model_extra or {}).get(name)
    if not isinstance(value, list):
        return []
    return [cast(dict[str, Any], row) for row in cast(list[Any], value) if isinstance(row, dict)]


def _vote_item(index: int, row: dict[str, Any]) -> ScoredItem:
    votes = row.get("votes")
    tally = Counter(repr(v) for v in cast(list[Any], votes)) if isinstance(votes, list) else Counter[str]()
    shown = ", ".join(f"{n}x {value}" for value, n in tally.most_common(4))
    consensus = row.get("consensus")
    score = row.get("score")
    return ScoredItem(
        id=f"row {index}",
        name=clip(f"consensus {consensus!r}; votes {shown}", NAME_MAX),
        score=float(score) if isinstance(score, int | float) else None,
    )


def _hint(report: MetricsReport) -> str:
    if report.kind == "no_metrics":
        return f"Nothing scored yet: {names.WAIT_RUN}, then ask again."
    if report.kind == "stale_metrics":
        return f"Start a new run to score the current definition; {names.GET_RUN} still shows this run."
    if report.view == "summary" and report.lowest:
        return f"Fields of a document: view='by_document', document_id=<id>. Why it ended so: {names.TRIAGE}."
    if report.view == "by_document" and report.lowest:
        return "Documents of a field: view='by_target', target_path=<path>; votes: view='votes'."
    return "Other views: summary, by_document (document_id), by_target (target_path), votes."


def render_metrics(report: MetricsReport) -> str:
    head = [f"{report.run_id} metrics ({report.view})"]
    if report.subject:
        head.append(report.subject)
    head.append(score_text(report.score, report.prior_score, report.prior_run_id))
    if report.scored_documents is not None and report.total_documents is not None:
        head.append(f"{report.scored_documents}/{report.total_documents} docs scored")
    lines = [" · ".join(head)]
    if report.warning:
        lines.append(f"Warning: {report.warning}")
    if report.lowest:
        lines.append(f"Lowest {len(report.lowest)} of {report.item_count}:")
        lines.extend("- " + item_text(item) for item in report.lowest)
    lines.append(f"Next: {report.hint}")
    return "\n".join(lines)


def score_text(score: float | None, prior: float | None, prior_run_id: str | None = None) -> str:
    if score is None:
        return "no score"
    text = f"score {score:.3f}"
    if prior is not None:
        change = score - prior
        versus = f" ({prior_run_id})" if prior_run_id else ""
        text += f" vs prior {prior:.3f}{versus}, {'+' if change >= 0 else ''}{change:.3f}"
    return text


def item_text(item: ScoredItem) -> str:
    label = f"{item.name} ({item.id})" if item.name else item.id
    score = f"{item.score:.3f}" if item.score is not None else "unscored"
    change = f" ({'+' if item.delta >= 0 else ''}{item.delta:.3f})" if item.delta is not None else ""
    return f"{label} · {score}{change}"
