"""The Retab API's shapes, read tolerantly.

Only identity fields are required. Unknown fields are ignored, a lifecycle status the code does not know
is kept as a plain string, and the older nested run shape is mapped onto the current flat one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .statuses import TERMINAL_STATUSES


def _cut(limit: int) -> AfterValidator:
    """Cut an over-long string the API sent, so it cannot flood what a model reads; real ones are short."""
    return AfterValidator(lambda value: value if len(value) <= limit else value[: limit - 1] + "…")


# Strings that are echoed to the model as they are. Retab's ids are about 30 characters long.
Id = Annotated[str, _cut(128)]
Word = Annotated[str, _cut(64)]  # a status, a block type, a view name


MAX_COUNT = 10**12  # more units than any run has: a count past it is a broken answer, not progress


@dataclass(frozen=True)
class Progress:
    """How far a run is: `done` of `total` (None while the total is not known) `unit`s. A count no run can
    have (negative, or past MAX_COUNT) is not known: every later use of it (floats, forecasts) stays sound."""

    done: int
    total: int | None
    unit: str  # documents, steps, evals

    def __post_init__(self) -> None:
        if not 0 <= self.done <= MAX_COUNT:
            object.__setattr__(self, "done", 0)
        if self.total is not None and not 0 < self.total <= MAX_COUNT:
            object.__setattr__(self, "total", None)


class APIModel(BaseModel):
    # defer_build: a model's validator is built at its first use, not at import; a server's start imports
    # every model of the API and uses few (about 20 ms of CPU at start, BENCHMARKS.md 'Start-up').
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        """A null where a value was expected falls back to the field's default instead of failing."""
        if isinstance(data, dict):
            return {k: v for k, v in cast(dict[str, Any], data).items() if v is not None}
        return data


class ErrorDetails(APIModel):
    message: str | None = None
    stack_trace: str | None = None
    block_id: str | None = None
    block_name: str | None = None
    error_code: str | None = None
    context: dict[str, Any] | None = None


class Lifecycle(APIModel):
    """`status` is an open string: a status added by Retab later is shown as it is, never rejected."""

    status: Word = "unknown"
    message: str | None = None  # error
    details: ErrorDetails | None = None  # error
    reason: str | None = None  # cancelled

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def error_message(self) -> str | None:
        """The message of an error lifecycle: its own, else the one in its details."""
        return self.message or (self.details.message if self.details else None)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_status(cls, data: Any) -> Any:
        return {"status": data} if isinstance(data, str) else data


class Timing(APIModel):
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None


class Trigger(APIModel):
    type: str | None = None


class Run(APIModel):
    id: Id
    experiment_id: Id | None = None
    workflow_id: Id | None = None
    workflow_version_id: Id | None = None
    block_id: Id | None = None
    block_type: Word | None = None
    block_version_id: Id | None = None
    n_consensus: int | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    timing: Timing = Field(default_factory=Timing)
    trigger: Trigger = Field(default_factory=Trigger)
    parent_run_id: Id | None = None
    score: float | None = None
    total_document_count: int = 0
    completed_document_count: int = 0
    document_count: int = 0
    error_count: int = 0
    block_execution_fingerprint: str | None = None
    documents_fingerprint: str | None = None

    @property
    def status(self) -> str:
        return self.lifecycle.status

    # What the wait engine reads of a run of any kind (kinds/base.py's Snapshot)

    @property
    def finished(self) -> bool:
        return self.lifecycle.is_terminal

    @property
    def stops_wait(self) -> bool:
        return self.lifecycle.is_terminal

    @property
    def progress(self) -> Progress:
        return Progress(self.completed_document_count, self.total_document_count or None, "documents")

    @property
    def created_at(self) -> datetime | None:
        return self.timing.created_at

    @property
    def started_at(self) -> datetime | None:
        return self.timing.started_at

    @model_validator(mode="before")
    @classmethod
    def _map_older_shapes(cls, data: Any) -> Any:
        """Map the shape of Retab's docs example (and the one before it) onto today's fields."""
        if not isinstance(data, dict):
            return data
        data = dict(cast(dict[str, Any], data))
        workflow = data.pop("workflow", None)
        if isinstance(workflow, dict):
            nested = cast(dict[str, Any], workflow)
            data.setdefault("workflow_id", nested.get("workflow_id") or nested.get("id"))
            data.setdefault("workflow_version_id", nested.get("version_id"))
        if "block_kind" in data:
            data.setdefault("block_type", data.pop("block_kind"))
        if "definition_fingerprint" in data:
            data.setdefault("block_execution_fingerprint", data.pop("definition_fingerprint"))
        if "lifecycle" not in data and isinstance(data.get("status"), str):
            data["lifecycle"] = {"status": data["status"]}
        return data


class Result(APIModel):
    """One document's execution within a run."""

    id: Id
    experiment_run_id: Id | None = None
    experiment_id: Id | None = None
    document_id: Id | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    timing: Timing = Field(default_factory=Timing)
    block_type: str | None = None
    attempt: int = 0
    handle_inputs: dict[str, Any] = Field(default_factory=dict[str, Any])

    @property
    def status(self) -> str:
        return self.lifecycle.status

    @property
    def filename(self) -> str | None:
        """The name of the document's file, from its first file input."""
        for handle in self.handle_inputs.values():
            if isinstance(handle, dict):
                document = cast(dict[str, Any], handle).get("document")
                if isinstance(document, dict):
                    name = cast(dict[str, Any], document).get("filename")
                    if isinstance(name, str):
                        return name
        return None


class Freshness(APIModel):
    """Whether what was measured still applies: fresh, stale (and why), unknown."""

    status: Word | None = None
    reasons: list[Annotated[str, _cut(120)]] = Field(default_factory=list[str])
    baseline_run_id: Id | None = None


class Drift(APIModel):
    """Whether the thing measured (an experiment's or an eval's target) still fits its block's schema."""

    status: Word | None = None  # none, drifted, broken, unknown
    affected_targets: list[Annotated[str, _cut(256)]] = Field(default_factory=list[str])
    detail: Annotated[str, _cut(300)] | None = None


class Experiment(APIModel):
    id: str
    name: str | None = None
    workflow_id: str | None = None
    block_id: str | None = None
    block_type: str | None = None
    n_consensus: int | None = None
    document_count: int = 0
    last_run_id: str | None = None
    status: str | None = None
    score: float | None = None
    is_stale: bool = False
    freshness_state: Word | None = None  # fresh, stale, unknown
    freshness_reasons: list[Annotated[str, _cut(120)]] = Field(default_factory=list[str])
    freshness: Freshness | None = None  # the same, as one object (newer)
    run_plan_mode: Word | None = None  # what starting a run would do now: run, noop, conflict, unknown
    rerunnable_document_count: int | None = None
    schema_drift: Word | None = None  # none, partial, drifted, unknown
    schema_drift_detail: Annotated[str, _cut(300)] | None = None
    drift: Drift | None = None
    created_at: datetime | None = None

    @property
    def stale_reasons(self) -> list[str]:
        """Why its metrics no longer apply, from either of the shapes the API has for it."""
        reasons = list(self.freshness_reasons)
        if self.freshness is not None:
            reasons += [r for r in self.freshness.reasons if r not in reasons]
        return reasons

    @property
    def stale(self) -> bool:
        state = self.freshness.status if self.freshness is not None else None
        return self.is_stale or self.freshness_state == "stale" or state == "stale"


class MetricDocument(APIModel):
    id: Id
    filename: str | None = None
    score: float | None = None
    prior_score: float | None = None


class TargetMetric(APIModel):
    path: Annotated[str, _cut(256)]
    score: float | None = None
    prior_score: float | None = None
    value: Any = None


class Metrics(APIModel):
    """Any metrics view. `kind` says which: summary, by_document, by_target, votes, or the two answers
    that are not errors at the HTTP level, `stale_metrics` and `no_metrics`. View-specific fields that
    are not named here are kept in `model_extra`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Word = "unknown"
    run_id: Id | None = None
    experiment_id: Id | None = None
    score: float | None = None
    prior_score: float | None = None
    prior_run_id: Id | None = None
    scored_document_count: int | None = None
    total_document_count: int | None = None
    documents: list[MetricDocument] = Field(default_factory=list[MetricDocument])
    targets: list[TargetMetric] = Field(default_factory=list[TargetMetric])
    message: str | None = None
    stale_reasons: list[str] = Field(default_factory=list[str])


class CancelResponse(APIModel):
    id: str
    lifecycle: Lifecycle


class ListMetadata(APIModel):
    before: str | None = None
    after: str | None = None


ItemT = TypeVar("ItemT", bound=APIModel)


class Page(APIModel, Generic[ItemT]):
    data: list[ItemT] = Field(default_factory=list)  # pyright: ignore[reportUnknownVariableType]
    list_metadata: ListMetadata = Field(default_factory=ListMetadata)

    @property
    def next_cursor(self) -> str | None:
        return self.list_metadata.after
