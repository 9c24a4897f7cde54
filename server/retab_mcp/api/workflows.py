"""Workflow runs as the API has them: the run, its steps (one per block execution) and its review gates.

Read tolerantly, as the experiment models are (models.py): only identity fields are required, statuses are
open strings, and the older nested `workflow: {workflow_id, version_id}` shape of Retab's docs example is
mapped onto today's flat fields.

A workflow run's lifecycle: pending, running, `awaiting_review` (a review gate holds it until a person
approves or rejects in Retab; `waiting_for_block_ids` names the gates), completed, error (with the failing
step), cancelled. `awaiting_review` is not terminal, but nothing moves until a person acts: a wait stops
there (`WAIT_STOPS`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pydantic import Field, model_validator

from .models import APIModel, Id, Lifecycle, Timing, Trigger, Word

AWAITING_REVIEW = "awaiting_review"
SKIPPED = "skipped"


class WorkflowLifecycle(Lifecycle):
    waiting_for_block_ids: list[Id] = Field(default_factory=list[str])  # awaiting_review
    failing_step_id: Id | None = None  # error
    stage: Word | None = None  # error
    category: Word | None = None  # error


class WorkflowRun(APIModel):
    id: Id
    workflow_id: Id | None = None
    workflow_version_id: Id | None = None
    trigger: Trigger = Field(default_factory=Trigger)
    lifecycle: WorkflowLifecycle = Field(default_factory=WorkflowLifecycle)
    timing: Timing = Field(default_factory=Timing)
    inputs: dict[str, Any] = Field(default_factory=dict[str, Any])
    metadata: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return self.lifecycle.status

    @property
    def document_count(self) -> int:
        """Documents the run was given (its inputs), whatever they are called."""
        documents = self.inputs.get("documents")
        return len(cast(dict[str, Any], documents)) if isinstance(documents, dict) else 0

    @model_validator(mode="before")
    @classmethod
    def _map_older_shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(cast(dict[str, Any], data))
        workflow = data.pop("workflow", None)
        if isinstance(workflow, dict):
            nested = cast(dict[str, Any], workflow)
            data.setdefault("workflow_id", nested.get("workflow_id") or nested.get("id"))
            data.setdefault("workflow_version_id", nested.get("version_id"))
        if "lifecycle" not in data and isinstance(data.get("status"), str):
            data["lifecycle"] = {"status": data["status"]}
        return data


class StepLifecycle(Lifecycle):
    stage: Word | None = None


class Step(APIModel):
    """One execution of one block of a run (a loop gives one per iteration)."""

    step_id: Id
    run_id: Id | None = None
    block_id: Id | None = None
    block_label: str | None = None
    block_type: Word | None = None
    lifecycle: StepLifecycle = Field(default_factory=StepLifecycle)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    artifact: dict[str, Any] | None = None
    retry_count: int = 0
    loop_containers: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]])

    @property
    def status(self) -> str:
        return self.lifecycle.status

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.completed_at:
            return max(0.0, (self.completed_at - self.started_at).total_seconds())
        return None


class Review(APIModel):
    """A review gate of a run: a step held until a person approves or rejects it in Retab."""

    id: Id
    run_id: Id | None = None
    workflow_id: Id | None = None
    block_id: Id | None = None
    step_id: Id | None = None
    block_type: Word | None = None
    iteration_key: str | None = None
    triggered_by: dict[str, Any] | None = None
    created_at: datetime | None = None
    decision: dict[str, Any] | None = None

    @property
    def trigger_kind(self) -> str | None:
        kind = (self.triggered_by or {}).get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def pending(self) -> bool:
        return self.decision is None


class CancelWorkflowResponse(APIModel):
    run: WorkflowRun
