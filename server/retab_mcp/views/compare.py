"""Did a change help? Two runs compared document by document, with a paired test of the difference.

The documents present in both runs are paired; each document's change in agreement is one observation,
and views/paired.py says whether their mean differs from 0 by more than run-to-run noise. The documents
that moved most are read field by field, to say which fields moved. What could mislead (different
documents, an unfinished run, failed documents, stale metrics) is a warning.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio
from pydantic import BaseModel, Field

from ..api import statuses
from ..api.errors import RetabError
from ..tools import names
from .paired import EXACT_MAX_N, MIN_DOCUMENTS, RESAMPLES, paired_test
from .text import clip

if TYPE_CHECKING:
    from ..api.client import RetabClient
    from ..api.models import Metrics, Run

T = TypeVar("T")
MOVERS_SHOWN = 3
FIELD_SOURCE_DOCUMENTS = 2  # documents that moved most, read field by field in both runs
FIELDS_SHOWN = 5
IDS_SHOWN = 5
NAME_MAX = 60
BUDGET_BYTES = 4_096
RULE = (
    "improved: the 95% bootstrap interval of the mean per-document delta is above 0 and the sign-flip "
    "p < 0.05; regressed: below 0 and p < 0.05; otherwise no detectable change"
)


class DocumentDelta(BaseModel):
    document_id: str
    filename: str | None = None
    base: float
    candidate: float
    delta: float


class FieldDelta(BaseModel):
    path: str
    document_id: str
    filename: str | None = None
    base: float
    candidate: float
    delta: float


class DeltaSpread(BaseModel):
    mean: float
    median: float
    min: float
    max: float
    sd: float = Field(description="Standard deviation of the per-document deltas.")


class ComparisonReport(BaseModel):
    """Whether the candidate run agrees more or less than the base, and whether that is more than noise."""

    base_run_id: str
    candidate_run_id: str
    verdict: str = Field(description="'improved', 'regressed' or 'no detectable change'; the rule is in `rule`.")
    paired_documents: int = Field(description="Documents scored in both runs: the n of the test.")
    base_score: float | None = None
    candidate_score: float | None = None
    score_delta: float | None = Field(default=None, description="candidate_score - base_score.")
    mean_delta: float | None = Field(default=None, description="Mean of the per-document deltas.")
    ci_low: float | None = Field(default=None, description="95% bootstrap interval of mean_delta, low end.")
    ci_high: float | None = Field(default=None, description="95% bootstrap interval of mean_delta, high end.")
    p_value: float | None = Field(default=None, description="Two-sided sign-flip test of mean_delta.")
    deltas: DeltaSpread | None = None
    same_configuration: bool | None = Field(
        default=None, description="Both runs used the same block configuration (block_execution_fingerprint)."
    )
    same_documents: bool | None = Field(default=None, description="Both runs had the same documents_fingerprint.")
    noise_sd: float | None = Field(
        default=None, description="With the same configuration and documents: the sd of deltas, run-to-run noise."
    )
    only_in_base: list[str] = Field(default_factory=list[str])
    only_in_candidate: list[str] = Field(default_factory=list[str])
    regressed: list[DocumentDelta] = Field(default_factory=list[DocumentDelta])
    improved: list[DocumentDelta] = Field(default_factory=list[DocumentDelta])
    fields_moved: list[FieldDelta] = Field(default_factory=list[FieldDelta])
    rule: str = RULE
    method: str = Field(description="How the interval and the p-value were computed.")
    warnings: list[str] = Field(default_factory=list[str])
    hint: str


class UnreadableRun(Exception):
    """One of the two runs could not be read: which one, and why."""

    def __init__(self, run_id: str, error: RetabError) -> None:
        super().__init__(str(error))
        self.run_id, self.error = run_id, error


@dataclass
class Comparison:
    """What was read for a comparison."""

    base: Run
    candidate: Run
    base_metrics: Metrics | None = None
    candidate_metrics: Metrics | None = None
    fields: dict[str, tuple[Metrics | None, Metrics | None]] = field(
        default_factory=dict[str, tuple["Metrics | None", "Metrics | None"]]
    )
    warnings: list[str] = field(default_factory=list[str])


async def gather_comparison(client: RetabClient, base_id: str, candidate_id: str) -> Comparison:
    """Read both runs and their per-document scores, then the fields of the documents that moved most.
    Raises UnreadableRun only if a run itself cannot be read."""
    runs: dict[str, Run] = {}
    metrics: dict[str, Metrics] = {}
    warnings: list[str] = []
    failure: list[UnreadableRun] = []

    async def read_run(run_id: str) -> None:
        try:
            runs[run_id] = await client.get_run(run_id)
        except RetabError as error:
            failure.append(UnreadableRun(run_id, error))
            group.cancel_scope.cancel()

    async def read_metrics(run_id: str) -> None:
        found = await _optional(
            f"scores of {run_id}", client.get_metrics(run_id, "summary", include_prior=False), warnings
        )
        if found is not None:
            metrics[run_id] = found

    async with anyio.create_task_group() as group:
        for run_id in (base_id, candidate_id):
            group.start_soon(read_run, run_id)
            group.start_soon(read_metrics, run_id)
    if failure:
        raise failure[0]
    found = Comparison(runs[base_id], runs[candidate_id], metrics.get(base_id), metrics.get(candidate_id))
    found.warnings = warnings
    pairs = _pairs(found)
    movers = sorted(pairs, key=lambda pair: -abs(pair.delta))[:FIELD_SOURCE_DOCUMENTS]

    async def read_fields(document_id: str) -> None:
        both = [
            await _optional(
                f"fields of {document_id}",
                client.get_metrics(run_id, "by_document", document_id=document_id, include_prior=False),
                warnings,
            )
            for run_id in (base_id, candidate_id)
        ]
        found.fields[document_id] = (both[0], both[1])

    async with anyio.create_task_group() as group:
        for mover in movers:
            group.start_soon(read_fields, mover.document_id)
    return found


async def _optional(what: str, request: Awaitable[T], warnings: list[str]) -> T | None:
    try:
        return await request
    except RetabError as error:
        warnings.append(clip(f"{what} not read: {error}", 200))
        return None


def _scores(metrics: Metrics | None) -> dict[str, tuple[str | None, float]]:
    if metrics is None or metrics.kind != "summary":
        return {}
    return {d.id: (d.filename, d.score) for d in metrics.documents if d.score is not None}


def _pairs(found: Comparison) -> list[DocumentDelta]:
    base, candidate = _scores(found.base_metrics), _scores(found.candidate_metrics)
    return [
        DocumentDelta(
            document_id=doc,
            filename=clip(name, NAME_MAX) if name else None,
            base=score,
            candidate=candidate[doc][1],
            delta=round(candidate[doc][1] - score, 4),
        )
        for doc, (name, score) in base.items()
        if doc in candidate
    ]


def build_comparison(found: Comparison) -> ComparisonReport:
    pairs = _pairs(found)
    base_scores, candidate_scores = _scores(found.base_metrics), _scores(found.candidate_metrics)
    deltas = [pair.delta for pair in pairs]
    test = paired_test(deltas)
    same_config = _same(found.base.block_execution_fingerprint, found.candidate.block_execution_fingerprint)
    same_docs = _same(found.base.documents_fingerprint, found.candidate.documents_fingerprint)
    warnings = [*_run_warnings(found), *found.warnings]
    only_base = sorted(set(base_scores) - set(candidate_scores))
    only_candidate = sorted(set(candidate_scores) - set(base_scores))
    if only_base or only_candidate or same_docs is False:
        warnings.append(
            f"The runs' documents differ ({len(only_base)} only in the base, {len(only_candidate)} only in the "
            "candidate): the test pairs the shared ones only."
        )
    if 0 < test.n < MIN_DOCUMENTS:
        warnings.append(f"Only {test.n} shared documents: too few for any change to be detectable.")
    by_delta = sorted(pairs, key=lambda pair: pair.delta)
    base_score, candidate_score = _run_score(found.base), _run_score(found.candidate)
    report = ComparisonReport(
        base_run_id=found.base.id,
        candidate_run_id=found.candidate.id,
        verdict=test.verdict,
        paired_documents=test.n,
        base_score=base_score,
        candidate_score=candidate_score,
        score_delta=round(candidate_score - base_score, 4)
        if base_score is not None and candidate_score is not None
        else None,
        mean_delta=round(test.mean_delta, 4) if test.n else None,
        ci_low=round(test.ci_low, 4) if test.n else None,
        ci_high=round(test.ci_high, 4) if test.n else None,
        p_value=round(test.p_value, 4) if test.n else None,
        deltas=DeltaSpread(
            mean=round(test.mean_delta, 4),
            median=round(statistics.median(deltas), 4),
            min=min(deltas),
            max=max(deltas),
            sd=round(test.sd, 4),
        )
        if deltas
        else None,
        same_configuration=same_config,
        same_documents=same_docs,
        noise_sd=round(test.sd, 4) if same_config and same_docs and test.n > 1 else None,
        only_in_base=only_base[:IDS_SHOWN],
        only_in_candidate=only_candidate[:IDS_SHOWN],
        regressed=[pair for pair in by_delta if pair.delta < 0][:MOVERS_SHOWN],
        improved=[pair for pair in reversed(by_delta) if pair.delta > 0][:MOVERS_SHOWN],
        fields_moved=_fields_moved(found, pairs),
        method=(
            f"paired over {test.n} documents: percentile bootstrap ({RESAMPLES:,} resamples, fixed seed); "
            + ("exact sign-flip test" if test.n <= EXACT_MAX_N else "sign-flip test (20,000 random flips)")
        ),
        warnings=warnings,
        hint="",
    )
    return report.model_copy(update={"hint": _hint(report)})


def _same(a: str | None, b: str | None) -> bool | None:
    return None if a is None or b is None else a == b


def _run_score(run: Run) -> float | None:
    return run.score if run.status == statuses.COMPLETED else None


def _run_warnings(found: Comparison) -> list[str]:
    warnings: list[str] = []
    for role, run, metrics in (
        ("base", found.base, found.base_metrics),
        ("candidate", found.candidate, found.candidate_metrics),
    ):
        if not run.lifecycle.is_terminal:
            warnings.append(f"The {role} run is {run.status}: its scores so far cover documents done only.")
        elif run.status != statuses.COMPLETED:
            warnings.append(f"The {role} run ended {run.status}: its scores cover the documents it scored.")
        if run.error_count:
            warnings.append(f"The {role} run has {run.error_count} failed documents, left out of the pairing.")
        if metrics is not None and metrics.kind in ("stale_metrics", "no_metrics"):
            what = "stale (the block changed since)" if metrics.kind == "stale_metrics" else "not there yet"
            warnings.append(f"The {role} run's metrics are {what}.")
    return warnings


def _fields_moved(found: Comparison, pairs: list[DocumentDelta]) -> list[FieldDelta]:
    names_of = {pair.document_id: pair.filename for pair in pairs}
    moved: list[FieldDelta] = []
    for document_id, (base, candidate) in found.fields.items():
        if base is None or candidate is None:
            continue
        before = {t.path: t.score for t in base.targets if t.score is not None}
        for target in candidate.targets:
            if target.score is not None and target.path in before:
                delta = round(target.score - before[target.path], 4)
                moved.append(
                    FieldDelta(
                        path=clip(target.path, NAME_MAX),
                        document_id=document_id,
                        filename=names_of.get(document_id),
                        base=before[target.path],
                        candidate=target.score,
                        delta=delta,
                    )
                )
    return sorted(moved, key=lambda f: -abs(f.delta))[:FIELDS_SHOWN]


def _hint(report: ComparisonReport) -> str:
    if report.paired_documents == 0:
        return f"No document is scored in both runs: wait for them ({names.WAIT_RUNS}), then compare again."
    if report.same_configuration and report.same_documents:
        return (
            "Same block configuration and documents: the difference is run-to-run noise; its sd is the noise "
            "level a real change must beat."
        )
    if report.verdict == "regressed" and report.regressed:
        return f"Why documents got worse: {names.TRIAGE}(run_id='{report.candidate_run_id}'), fields above."
    if report.verdict == "improved":
        return "The change helped beyond noise; keep it, and look at the documents that still score lowest."
    return (
        "No change beyond run-to-run noise: with this many documents, only a larger effect would show; "
        "more documents or another run narrow the interval."
    )


# Text rendering


def render_comparison(report: ComparisonReport) -> str:
    lines = [f"Verdict: {report.verdict} (n={report.paired_documents} paired documents)."]
    if report.base_score is not None or report.candidate_score is not None:
        lines.append(
            f"Score {_num(report.base_score)} → {_num(report.candidate_score)} ({_signed(report.score_delta)}); "
            f"base {report.base_run_id}, candidate {report.candidate_run_id}."
        )
    if report.mean_delta is not None:
        lines.append(
            f"Mean per-document delta {_signed(report.mean_delta)}, 95% CI [{_signed(report.ci_low)}, "
            f"{_signed(report.ci_high)}], sign-flip p={report.p_value:.3g}."
        )
    if report.deltas is not None:
        spread = report.deltas
        lines.append(
            f"Deltas: median {_signed(spread.median)}, min {_signed(spread.min)}, max {_signed(spread.max)}, "
            f"sd {spread.sd:.3f}."
        )
    if report.noise_sd is not None:
        lines.append(f"Same configuration and documents: this is run-to-run noise, sd {report.noise_sd:.3f}.")
    for title, movers in (("Regressed most", report.regressed), ("Improved most", report.improved)):
        if movers:
            shown = "; ".join(
                f"{m.filename or m.document_id} {m.base:.3f}→{m.candidate:.3f} ({_signed(m.delta)})" for m in movers
            )
            lines.append(f"{title}: {shown}.")
    if report.fields_moved:
        shown = "; ".join(f"{f.path} {_signed(f.delta)} in {f.filename or f.document_id}" for f in report.fields_moved)
        lines.append(f"Fields that moved most: {shown}.")
    if report.only_in_base or report.only_in_candidate:
        lines.append(
            f"Only in base: {', '.join(report.only_in_base) or '-'}; only in candidate: "
            f"{', '.join(report.only_in_candidate) or '-'}."
        )
    lines.extend(f"Warning: {w}" for w in report.warnings)
    lines.append(f"Rule: {report.rule}.")
    lines.append(f"Next: {report.hint}")
    return "\n".join(lines)


def comparison_result(report: ComparisonReport) -> tuple[str, dict[str, object]]:
    """Text and structured content (every key, null when there is nothing to say) within BUDGET_BYTES:
    movers and fields are cut first, then warnings."""
    for keep in (MOVERS_SHOWN, 2, 1, 0):
        trimmed = report.model_copy(
            update={
                "regressed": report.regressed[:keep],
                "improved": report.improved[:keep],
                "fields_moved": report.fields_moved[: keep + 2 if keep else 0],
                "warnings": report.warnings if keep else report.warnings[:2],
            }
        )
        text, data = render_comparison(trimmed), trimmed.model_dump(mode="json")
        if len(text.encode()) + len(json.dumps(data, separators=(",", ":")).encode()) <= BUDGET_BYTES:
            break
    return text, data


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return "?" if value is None else f"{value:+.3f}"
