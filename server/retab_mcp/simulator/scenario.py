"""The simulated world: experiments, and runs whose state follows a clock.

A run is defined by when it was created and how it unfolds (queue time, running time, outcome); its
state at any moment is computed from the clock, so the same definition serves a virtual clock in tests
and the real one in the demo.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ..base.clock import Clock

Outcome = Literal["completed", "error", "cancelled", "never"]
_ALPHABET = string.ascii_letters + string.digits + "_-"


def opaque_id(prefix: str, seed: str) -> str:
    """A prefix plus a 21-character nanoid-like string, stable for a given seed."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    return prefix + "_" + "".join(rng.choice(_ALPHABET) for _ in range(21))


@dataclass
class SimExperiment:
    id: str
    name: str
    workflow_id: str
    workflow_version_id: str
    block_id: str
    block_type: str
    n_consensus: int
    documents: list[tuple[str, str]]  # (document id, filename)
    created_at: datetime
    # The block's configuration: each edit (`SimulatedRetab.edit_block`) makes a new one, which moves
    # the agreement of chosen documents (and fields) by a fixed amount. Runs score the configuration
    # they were started with.
    config: int = 0
    edits: list[BlockEdit] = field(default_factory=list["BlockEdit"])

    def shift(self, config: int, document_id: str, target: str | None = None) -> float:
        """How far the edits up to `config` move a document's (or one of its fields') agreement."""
        total = 0.0
        for edit in self.edits[:config]:
            total += edit.documents.get(document_id, edit.everywhere)
            if target is not None:
                total += edit.fields.get(target, 0.0)
        return total


@dataclass(frozen=True)
class BlockEdit:
    everywhere: float = 0.0  # shift of every document not named below
    documents: dict[str, float] = field(default_factory=dict[str, float])
    fields: dict[str, float] = field(default_factory=dict[str, float])  # extra shift of a field, everywhere


@dataclass
class SimRun:
    id: str
    experiment: SimExperiment
    created_t: float
    queue_s: float = 2.0
    duration_s: float = 40.0
    outcome: Outcome = "completed"
    final_score: float | None = 0.87
    end_fraction: float = 1.0  # where an error or cancel strikes, as a fraction of the documents
    error_message: str = "Extraction failed"
    error_code: str | None = None
    stack_trace: str | None = None
    cancel_reason: str | None = None
    parent_run_id: str | None = None
    trigger_type: str = "manual"
    metrics_stale: bool = False
    cancel_requested_t: float | None = None
    # Scored by the consensus model (`consensus_score`) for this block configuration, or None for the
    # seeded scenario's fixed scores.
    config: int | None = None
    # Documents that fail on their own while the run goes on: index -> (message, error code).
    document_errors: dict[int, tuple[str, str | None]] = field(default_factory=dict[int, tuple[str, str | None]])

    @property
    def total(self) -> int:
        return len(self.experiment.documents)

    def _end_t(self) -> float:
        return self.created_t + self.queue_s + self.duration_s * self.end_fraction

    def state_at(self, t: float) -> tuple[str, int]:
        """(status, completed documents) at clock time `t`."""
        if self.cancel_requested_t is not None and t >= self.cancel_requested_t:
            return "cancelled", self._completed_at(self.cancel_requested_t)
        age = t - self.created_t
        if age < self.queue_s / 2:
            return "pending", 0
        if age < self.queue_s:
            return "queued", 0
        if self.outcome == "never" or t < self._end_t():
            return "running", self._completed_at(t)
        return self.outcome, self._completed_at(self._end_t())

    def _completed_at(self, t: float) -> int:
        running = max(0.0, t - self.created_t - self.queue_s)
        done = int(self.total * min(running / self.duration_s, self.end_fraction) + 1e-9)
        return min(done, self.total)

    def document_done_t(self, index: int) -> float:
        """Clock time at which document `index` finishes (with a result or an error)."""
        return self.created_t + self.queue_s + self.duration_s * (index + 1) / max(1, self.total)

    def failed_documents(self, completed: int) -> int:
        """How many of the first `completed` documents failed on their own."""
        return sum(1 for index in self.document_errors if index < completed)

    def ended_t(self, t: float) -> float | None:
        status, _ = self.state_at(t)
        if status == "cancelled" and self.cancel_requested_t is not None:
            return min(self.cancel_requested_t, self._end_t())
        return self._end_t() if status in ("completed", "error", "cancelled") else None


# The consensus model: a document's agreement is its difficulty (fixed per experiment and document), plus
# the shift of the block configuration the run used, plus run-to-run noise (each pass is a model call).
DOCUMENT_BASE_MEAN, DOCUMENT_BASE_SD = 0.86, 0.05
NOISE_SD = 0.03  # per document and run: the run-to-run noise a comparison must see through
FIELD_SD = 0.04  # how far one field's agreement sits from its document's


def consensus_score(run: SimRun, document_id: str, target: str | None = None) -> float:
    """Agreement of `document_id` (or of one of its fields) in a run of the consensus model."""
    exp = run.experiment
    config = run.config or 0
    base = random.Random(f"{exp.id}/{document_id}").gauss(DOCUMENT_BASE_MEAN, DOCUMENT_BASE_SD)
    noise = random.Random(f"{run.id}/{document_id}").gauss(0.0, NOISE_SD)
    score = base + exp.shift(config, document_id, target) + noise
    if target is not None:
        score += random.Random(f"{run.id}/{document_id}/{target}").gauss(0.0, FIELD_SD)
    return round(min(1.0, max(0.0, score)), 4)


def document_score(run: SimRun, document_id: str, target: str | None = None) -> float:
    """A per-document (or per-field) score, stable per (run, doc). Runs of the consensus model follow it;
    the seeded scenario's runs have a mean close to their final score."""
    if run.config is not None:
        return consensus_score(run, document_id, target)
    rng = random.Random(f"{run.id}/{document_id}{target or ''}")
    base = run.final_score if run.final_score is not None else 0.8
    return round(min(1.0, max(0.0, rng.gauss(base, 0.06))), 4)


TOTAL_NOT_A_NUMBER = "invoice.total: expected number, got string '1.234,00'"

TARGETS = ["invoice.number", "invoice.date", "invoice.total", "vendor.name", "vendor.vat_id", "lines"]


def long_stack_trace(document: str, consensus_pass: int, n_consensus: int, approx_bytes: int = 50_000) -> str:
    """A Python traceback of about `approx_bytes`, with the cause at the end as in real ones: the document
    and the consensus pass it failed on."""
    frames: list[str] = ["Traceback (most recent call last):"]
    modules = [
        "retab/workflows/engine.py",
        "retab/blocks/extract.py",
        "retab/consensus/vote.py",
        "retab/llm/client.py",
        "retab/schemas/validate.py",
        "retab/workflows/runner.py",
    ]
    i = 0
    while sum(len(f) + 1 for f in frames) < approx_bytes - 400:
        mod = modules[i % len(modules)]
        frames.append(f'  File "/srv/app/{mod}", line {100 + (i * 37) % 900}, in step_{i}')
        frames.append(f"    result = await self._dispatch(context, payload, attempt={i % 3})")
        i += 1
    frames.append('  File "/srv/app/retab/schemas/validate.py", line 212, in coerce_number')
    frames.append("    raise SchemaValidationError(path, expected, value)")
    frames.append(
        "retab.errors.SchemaValidationError: invoice.total: expected number, got string '1.234,00' "
        f"(document {document}, consensus pass {consensus_pass} of {n_consensus})"
    )
    return "\n".join(frames)


@dataclass
class World:
    experiments: list[SimExperiment]
    runs: list[SimRun]
    clock: Clock

    def wall(self, t: float) -> datetime:
        return self.clock.wall_at(t)

    def run(self, run_id: str) -> SimRun | None:
        return next((r for r in self.runs if r.id == run_id), None)

    def experiment(self, experiment_id: str) -> SimExperiment | None:
        return next((e for e in self.experiments if e.id == experiment_id), None)


def block_fingerprint(run: SimRun) -> str:
    """Equal for runs of one block configuration (consensus model); distinct per run otherwise."""
    seed = f"{run.experiment.id}/config/{run.config}" if run.config is not None else run.id
    return hashlib.sha1(seed.encode()).hexdigest()[:16]


def consensus_final_score(run: SimRun) -> float:
    scores = [consensus_score(run, d) for d, _ in run.experiment.documents]
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def start_consensus_run(world: World, experiment: SimExperiment, *, now: float, duration_s: float) -> SimRun:
    """A run of the experiment's current block configuration, scored by the consensus model, created at
    clock time `now`."""
    run = SimRun(
        id=opaque_id("exprun", f"created-{len(world.runs)}"),
        experiment=experiment,
        created_t=now,
        duration_s=duration_s,
        config=experiment.config,
    )
    run.final_score = consensus_final_score(run)
    world.runs.append(run)
    return run


def make_experiment(
    name: str,
    *,
    documents: int = 12,
    n_consensus: int = 5,
    block_type: str = "extract",
    workflow_id: str | None = None,
    epoch: datetime,
) -> SimExperiment:
    workflow_id = workflow_id or opaque_id("workflow", "wf-" + name)
    return SimExperiment(
        id=opaque_id("exp", name),
        name=name,
        workflow_id=workflow_id,
        workflow_version_id=opaque_id("wfv", workflow_id),
        block_id=opaque_id("block", name),
        block_type=block_type,
        n_consensus=n_consensus,
        documents=[(opaque_id("doc", f"{name}-{i}"), f"inv_{i + 1:04d}.pdf") for i in range(documents)],
        created_at=epoch - timedelta(days=3),
    )


def seed_world(clock: Clock, *, demo: bool = False) -> World:
    """The standard scenario: a finished history plus runs still going.

    Named runs (ids are opaque, as Retab's are):
    - two completed runs of the invoice experiment, the newer one scoring lower than its parent;
    - a failed run with a 50 KB stack trace, a cancelled run;
    - a run that started at `now_t` and takes 40 s, and one that takes 10 minutes.
    In demo mode the young run takes 12 s so a walkthrough finishes quickly.
    """
    now_t = clock.now()
    epoch = clock.wall_at(now_t)
    invoices = make_experiment("invoices-v2", documents=12, n_consensus=5, epoch=epoch)
    receipts = make_experiment("receipts", documents=40, n_consensus=3, workflow_id=invoices.workflow_id, epoch=epoch)
    contracts = make_experiment(
        "contracts-classifier", documents=25, n_consensus=7, block_type="classifier", epoch=epoch
    )
    day = 86_400.0
    older = SimRun(
        id=opaque_id("exprun", "older"),
        experiment=invoices,
        created_t=now_t - 2 * day,
        queue_s=6,
        duration_s=243,
        final_score=0.91,
    )
    latest = SimRun(
        id=opaque_id("exprun", "latest"),
        experiment=invoices,
        created_t=now_t - day,
        queue_s=4,
        duration_s=254,
        final_score=0.8734,
        parent_run_id=older.id,
        document_errors={
            3: (TOTAL_NOT_A_NUMBER, "SCHEMA_VALIDATION_ERROR"),
            7: (TOTAL_NOT_A_NUMBER, "SCHEMA_VALIDATION_ERROR"),
            10: ("Model call timed out after 120 s (consensus pass 4 of 5)", "MODEL_TIMEOUT"),
        },
    )
    failed = SimRun(
        id=opaque_id("exprun", "failed"),
        experiment=receipts,
        created_t=now_t - 0.5 * day,
        queue_s=3,
        duration_s=120,
        outcome="error",
        end_fraction=0.45,
        final_score=None,
        error_message="Block 'Extract invoice' failed on 1 document",
        error_code="SCHEMA_VALIDATION_ERROR",
        # It stops on the document in flight when 45 % are done: the 19th of 40, in its second pass of 3.
        stack_trace=long_stack_trace(receipts.documents[18][1], 2, receipts.n_consensus),
        document_errors={
            5: ("vendor.vat_id: 'FR 12 345' does not match ^[A-Z]{2}[0-9A-Z]{8,12}$", "SCHEMA_VALIDATION_ERROR"),
            11: ("vendor.vat_id: 'n/a' does not match ^[A-Z]{2}[0-9A-Z]{8,12}$", "SCHEMA_VALIDATION_ERROR"),
        },
    )
    cancelled = SimRun(
        id=opaque_id("exprun", "cancelled"),
        experiment=contracts,
        created_t=now_t - 0.3 * day,
        queue_s=2,
        duration_s=300,
        outcome="cancelled",
        end_fraction=0.3,
        final_score=None,
        cancel_reason="Cancelled by user from the dashboard",
    )
    stale = SimRun(
        id=opaque_id("exprun", "stale"),
        experiment=contracts,
        created_t=now_t - 3 * day,
        queue_s=2,
        duration_s=200,
        final_score=0.78,
        metrics_stale=True,
    )
    young = SimRun(
        id=opaque_id("exprun", "young"),
        experiment=invoices,
        created_t=now_t,
        queue_s=2,
        duration_s=12 if demo else 40,
        final_score=0.8912,
        parent_run_id=latest.id,
    )
    long_run = SimRun(
        id=opaque_id("exprun", "long"),
        experiment=receipts,
        created_t=now_t - 65,  # a minute of running after 5 s in the queue: 4 of 40 documents done
        queue_s=5,
        duration_s=600,
        final_score=0.7,
        trigger_type="api",
    )
    return World(
        experiments=[invoices, receipts, contracts],
        runs=[older, latest, failed, cancelled, stale, young, long_run],
        clock=clock,
    )


def run_body(world: World, run: SimRun, t: float) -> dict[str, Any]:
    """The run as the API sends it (flat shape of the spec)."""
    status, completed = run.state_at(t)
    # A run that fails stops on the document in flight (`result_body` gives that one the run's error).
    documents = run.experiment.documents
    failed_on = documents[completed][1] if completed < len(documents) else None
    exp = run.experiment
    lifecycle: dict[str, Any] = {"status": status}
    if status == "error":
        lifecycle |= {
            "message": run.error_message,
            "details": {
                "message": run.error_message,
                "stack_trace": run.stack_trace,
                "block_id": exp.block_id,
                "block_name": "Extract invoice",
                "error_code": run.error_code,
                "context": {"document": failed_on},
            },
        }
    elif status == "cancelled":
        lifecycle["reason"] = run.cancel_reason
    started = run.created_t + run.queue_s if status not in ("pending", "queued") else None
    ended = run.ended_t(t)
    return {
        "id": run.id,
        "workflow_id": exp.workflow_id,
        "workflow_version_id": exp.workflow_version_id,
        "trigger": {"type": run.trigger_type},
        "experiment_id": exp.id,
        "block_id": exp.block_id,
        "block_type": exp.block_type,
        "n_consensus": exp.n_consensus,
        "lifecycle": lifecycle,
        "timing": {
            "created_at": iso(world.wall(run.created_t)),
            "started_at": iso(world.wall(started)) if started is not None else None,
            "completed_at": iso(world.wall(ended)) if ended is not None else None,
            "duration_ms": round((ended - started) * 1000) if ended is not None and started is not None else None,
        },
        "parent_run_id": run.parent_run_id,
        "block_version_id": opaque_id("blockv", exp.block_id),
        "metrics_validity_fingerprint": hashlib.sha1(exp.id.encode()).hexdigest()[:16],
        "metrics_validity_fingerprint_version": 2,
        "block_execution_fingerprint": block_fingerprint(run),
        "documents_fingerprint": hashlib.sha1(str(exp.documents).encode()).hexdigest()[:16],
        "score": run.final_score if status == "completed" else None,
        "total_document_count": run.total,
        "completed_document_count": completed,
        "document_count": run.total,
        "error_count": run.failed_documents(completed) + (1 if status == "error" else 0),
    }


def iso(value: datetime) -> str:
    """A timestamp as the API writes it: ISO 8601 with a Z."""
    return value.isoformat().replace("+00:00", "Z")


def result_body(world: World, run: SimRun, index: int, status: str, completed: int) -> dict[str, Any]:
    """Document `index` of `run` as a result row, given the run's status and completed count."""
    doc_id, filename = run.experiment.documents[index]
    done_t = run.document_done_t(index)
    per_document_s = run.duration_s / max(1, run.total)
    lifecycle: dict[str, Any]
    finished = index < completed
    if finished and index in run.document_errors:
        message, code = run.document_errors[index]
        lifecycle = {"status": "error", "message": message, "details": {"message": message, "error_code": code}}
    elif finished:
        lifecycle = {"status": "completed"}
    elif status == "error" and index == completed:
        finished = True
        lifecycle = {
            "status": "error",
            "message": run.error_message,
            "details": {"message": run.error_message, "error_code": run.error_code},
        }
    elif status in ("cancelled", "error"):
        lifecycle = {"status": "cancelled"}
    elif status == "running" and index < completed + 2:
        lifecycle = {"status": "running"}
    else:
        lifecycle = {"status": "queued" if status != "pending" else "pending"}
    # Each document takes between 0.5 and 1.5 times the mean, so durations differ as real ones do.
    spent_s = per_document_s * (0.5 + random.Random(f"{run.id}/{doc_id}/t").random())
    started_t = max(run.created_t + run.queue_s, done_t - spent_s)
    running = lifecycle["status"] != "pending" and lifecycle["status"] != "queued"
    return {
        "id": opaque_id("expres", f"{run.id}-{doc_id}"),
        "experiment_run_id": run.id,
        "experiment_id": run.experiment.id,
        "document_id": doc_id,
        "lifecycle": lifecycle,
        "timing": {
            "created_at": iso(world.wall(run.created_t)),
            "started_at": iso(world.wall(started_t)) if running else None,
            "completed_at": iso(world.wall(done_t)) if finished else None,
            "duration_ms": round((done_t - started_t) * 1000) if finished else None,
        },
        "block_type": run.experiment.block_type,
        "handle_inputs": {
            "document": {
                "type": "file",
                "document": {"id": opaque_id("file", doc_id), "filename": filename, "mime_type": "application/pdf"},
            }
        },
        "artifact": {"operation": "extraction", "id": opaque_id("extr", f"{run.id}-{doc_id}")}
        if finished and lifecycle["status"] == "completed"
        else None,
        "attempt": 0,
    }
