"""Workflow runs, steps, reviews and artifacts as the API sends them (the spec's shapes), at a moment.

Everything a body says is derived from the run's definition and the clock time asked for, so the pieces
agree with each other: the run's status with its steps', the extraction's likelihood with the review gate
that fired on it, the totals check's error with the invoice's line items.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .scenario import iso, opaque_id
from .workflow_world import ARTIFACT_OF_BLOCK, ARTIFACT_PREFIXES, SimWorkflowRun, StepSpan

Wall = Callable[[float], datetime]  # clock time -> wall time
REVIEWER = {"kind": "human", "id": opaque_id("user", "reviewer"), "display_name": "Dana Moreau"}
CURRENCY = "EUR"


@dataclass(frozen=True)
class LineItem:
    description: str
    quantity: int
    unit_price: float

    @property
    def amount(self) -> float:
        return round(self.quantity * self.unit_price, 2)


@dataclass(frozen=True)
class Invoice:
    number: str
    vendor: str
    lines: list[LineItem]
    total: float

    @property
    def lines_total(self) -> float:
        return round(sum(line.amount for line in self.lines), 2)

    def as_output(self) -> dict[str, Any]:
        return {
            "invoice_number": self.number,
            "date": "2026-11-20",
            "vendor": {"name": self.vendor, "vat_id": "FR12345678901"},
            "total": self.total,
            "currency": CURRENCY,
            "line_items": [
                {"description": x.description, "quantity": x.quantity, "unit_price": x.unit_price, "amount": x.amount}
                for x in self.lines
            ],
        }


def invoice_of(run: SimWorkflowRun) -> Invoice:
    """What the extraction finds in `run`'s document, stable per run. Its line items add up to its total,
    except in a run whose totals check fails."""
    rng = random.Random(f"{run.id}/invoice")
    products = ["Consulting", "Licence", "Support", "Hosting", "Training"]
    lines = [
        LineItem(f"{rng.choice(products)} ({i + 1})", rng.randint(1, 5), rng.choice([120.0, 80.5, 249.0, 35.25]))
        for i in range(run.line_items)
    ]
    lines_total = round(sum(line.amount for line in lines), 2)
    total = round(lines_total + 54.5, 2) if run.fails else lines_total
    return Invoice(f"INV-2026-{rng.randint(1000, 9999)}", "ACME Corporation", lines, total)


def consensus_likelihood(run: SimWorkflowRun) -> float:
    """The extraction's agreement between passes: below the gate's threshold exactly when the gate fires."""
    if any(step.gated for step in run.plan):
        return 0.72
    return round(random.Random(f"{run.id}/likelihood").uniform(0.86, 0.97), 3)


def file_ref(run: SimWorkflowRun) -> dict[str, Any]:
    file_id, filename = run.document
    return {"id": file_id, "filename": filename, "mime_type": "application/pdf"}


# Runs


def run_body(run: SimWorkflowRun, wall: Wall, t: float) -> dict[str, Any]:
    status, ended = run.status_at(t)
    lifecycle: dict[str, Any] = {"status": status}
    if status == "awaiting_review":
        lifecycle["waiting_for_block_ids"] = [block.id for block in run.waiting_for(t)]
    elif status == "error":
        failing = run.spans(t)[-1]
        lifecycle |= {
            "message": f"Block '{failing.step.block.label}' failed: {failure_message(run)}",
            "stage": "execution",
            "category": "permanent",
            "details": error_details(run, failing),
            "failing_step_id": step_id(run, failing.index),
        }
    elif status == "cancelled":
        lifecycle["reason"] = run.cancel_reason
    started = run.start_t if status != "pending" else None
    start_block = run.workflow.blocks[0]
    return {
        "id": run.id,
        "workflow_id": run.workflow.id,
        "workflow_version_id": run.workflow.version_id(run.version),
        "trigger": {"type": run.trigger_type},
        "lifecycle": lifecycle,
        "timing": {
            "created_at": iso(wall(run.created_t)),
            "started_at": iso(wall(started)) if started is not None else None,
            "completed_at": iso(wall(ended)) if ended is not None else None,
        },
        "inputs": {"documents": {start_block.id: file_ref(run)}, "json_data": {}},
        "metadata": run.metadata,
    }


def failure_message(run: SimWorkflowRun) -> str:
    found = invoice_of(run)
    return (
        f"ValueError: line items add up to {found.lines_total:.2f} {CURRENCY}, "
        f"the invoice total is {found.total:.2f} {CURRENCY}"
    )


def error_details(run: SimWorkflowRun, failing: StepSpan) -> dict[str, Any]:
    block = failing.step.block
    return {
        "message": failure_message(run),
        "stack_trace": (
            "Traceback (most recent call last):\n"
            '  File "/srv/functions/check_totals.py", line 18, in main\n'
            '    raise ValueError(f"line items add up to {lines_total:.2f} {currency}, "\n'
            f"{failure_message(run)}"
        ),
        "block_id": block.id,
        "block_name": block.label,
        "error_code": "FUNCTION_ERROR",
        "context": {"step_id": step_id(run, failing.index), "document": run.document[1]},
    }


# Steps


def step_id(run: SimWorkflowRun, index: int) -> str:
    """The id of the step that runs planned step `index` of `run`."""
    return opaque_id("step", f"{run.id}/{index}")


def artifact_id(run: SimWorkflowRun, span: StepSpan) -> str | None:
    operation = ARTIFACT_OF_BLOCK.get(span.step.block.type)
    return opaque_id(ARTIFACT_PREFIXES[operation], f"{run.id}/{span.index}") if operation else None


def step_body(run: SimWorkflowRun, span: StepSpan, wall: Wall, t: float) -> dict[str, Any]:
    block, status = span.step.block, run.step_status_at(span, t)
    lifecycle: dict[str, Any] = {"status": status}
    if status == "error":
        lifecycle |= {
            "message": failure_message(run),
            "stage": "execution",
            "category": "permanent",
            "details": error_details(run, span),
        }
    elif status == "cancelled":
        lifecycle["reason"] = run.cancel_reason or "Run cancelled"
    elif status == "skipped":
        lifecycle["reason"] = "An earlier review was rejected"
    executed = t >= span.executed_t and status != "cancelled"
    finished = status in ("completed", "error", "skipped", "cancelled")
    ended = _step_end(run, span) if finished else None
    operation = ARTIFACT_OF_BLOCK.get(block.type)
    artifact = artifact_id(run, span)
    iteration = span.step.iteration
    return {
        "block_id": block.id,
        "step_id": step_id(run, span.index),
        "block_type": block.type,
        "block_label": block.label,
        "lifecycle": lifecycle,
        "started_at": iso(wall(span.start_t)),
        "completed_at": iso(wall(ended)) if ended is not None else None,
        "model": block.model,
        "loop_containers": [] if iteration is None else [{"container_id": block.inside, "iteration": iteration}],
        "run_id": run.id,
        "created_at": iso(wall(span.start_t)),
        "handle_inputs": _handle_inputs(run, span),
        "handle_outputs": _handle_outputs(run, span) if executed and status in ("completed", "awaiting_review") else {},
        "artifact": {"operation": operation, "id": artifact} if artifact and executed and status != "skipped" else None,
        "retry_count": 0,
    }


def _step_end(run: SimWorkflowRun, span: StepSpan) -> float:
    cancel_t = run.cancel_requested_t
    if cancel_t is not None and (span.done_t is None or span.done_t > cancel_t):
        return cancel_t
    assert span.done_t is not None
    return span.done_t


def _handle_inputs(run: SimWorkflowRun, span: StepSpan) -> dict[str, Any]:
    block = span.step.block
    if block.type == "start_document":
        return {}
    if block.type in ("parse", "classifier", "extract"):
        return {"input": {"type": "file", "document": file_ref(run)}}
    found = invoice_of(run)
    if span.step.iteration is not None:
        line = found.as_output()["line_items"][span.step.iteration]
        return {"input": {"type": "json", "data": line}}
    if block.type == "for_each":
        return {"input": {"type": "json", "data": found.as_output()["line_items"]}}
    return {"input": {"type": "json", "data": {"total": found.total, "line_items": len(found.lines)}}}


def _handle_outputs(run: SimWorkflowRun, span: StepSpan) -> dict[str, Any]:
    block = span.step.block
    found = invoice_of(run)
    if block.type == "start_document":
        return {"output": {"type": "file", "document": file_ref(run)}}
    if block.type == "parse":
        return {"output": {"type": "json", "data": {"pages": 2, "characters": 2481}}}
    if block.type == "classifier":
        return {"invoice": {"type": "file", "document": file_ref(run)}}  # routed to its category's handle
    if block.type == "extract":
        return {"output": {"type": "json", "data": found.as_output()}}
    if block.type == "for_each":
        return {"item": {"type": "json", "data": {"items": len(found.lines)}}}
    if span.step.iteration is not None:
        line = found.lines[span.step.iteration]
        return {"output": {"type": "json", "data": {"description": line.description, "amount": line.amount}}}
    return {"output": {"type": "json", "data": {"ok": True, "total": found.total}}}


# Reviews


def review_id(run: SimWorkflowRun, index: int) -> str:
    """The id of the review the gate of planned step `index` of `run` opens."""
    return opaque_id("rev", f"{run.id}/{index}")


def review_body(run: SimWorkflowRun, span: StepSpan, wall: Wall, t: float) -> dict[str, Any]:
    block = span.step.block
    decision = run.decisions.get(span.index)
    decided = decision is not None and decision.t <= t
    return {
        "id": review_id(run, span.index),
        "workflow_id": run.workflow.id,
        "workflow_version_id": run.workflow.version_id(run.version),
        "run_id": run.id,
        "block_id": block.id,
        "step_id": step_id(run, span.index),
        "parent_step_id": None,
        "iteration_key": None,
        "block_type": block.type,
        "triggered_by": {"kind": "confidence_lt", "threshold": block.review_threshold},
        "created_at": iso(wall(span.executed_t)),
        "decision": {
            "verdict": decision.verdict,
            "version_id": _review_version_id(review_id(run, span.index)),
            "author": REVIEWER | {"display_name": decision.reviewer},
            "created_at": iso(wall(decision.t)),
            "reason": decision.reason,
        }
        if decided and decision is not None
        else None,
    }


def _review_version_id(review: str) -> str:
    """The content-addressed id of the version a decision was made on: `rvr_` and 26 base32 characters."""
    return "rvr_" + base64.b32encode(hashlib.sha256(review.encode()).digest()).decode()[:26]


# Artifacts


def artifact_body(run: SimWorkflowRun, span: StepSpan, wall: Wall) -> dict[str, Any]:
    """The artifact of a step that has executed (the caller checks it has)."""
    block = span.step.block
    operation = ARTIFACT_OF_BLOCK[block.type]
    common = {"id": artifact_id(run, span), "created_at": iso(wall(span.executed_t)), "operation": operation}
    usage = {"credits": round(span.step.duration_s * 0.05, 3)}
    found = invoice_of(run)
    if operation == "parse":
        pages = [f"ACME Corporation\nInvoice {found.number}", f"Total due: {found.total:.2f} {CURRENCY}"]
        return common | {
            "file": file_ref(run),
            "model": block.model,
            "table_parsing_format": "markdown",
            "instructions": None,
            "output": {"pages": pages, "text": "\n\n".join(pages)},
            "status": "completed",
            "error": None,
            "usage": usage,
        }
    if operation == "classification":
        decision = {"reasoning": "A supplier's bill with line items, VAT and a total due.", "category": "invoice"}
        return common | {
            "file": file_ref(run),
            "model": block.model,
            "categories": [
                {"name": "invoice", "handle_key": "invoice", "description": "A supplier's invoice"},
                {"name": "credit_note", "handle_key": "credit_note", "description": "A credit note"},
                {"name": "other", "handle_key": "other", "description": "Anything else"},
            ],
            "n_consensus": 3,
            "instructions": None,
            "output": decision,
            "status": "completed",
            "error": None,
            "consensus": {"choices": [decision] * 3, "likelihoods": 1.0},
            "usage": usage,
        }
    if operation == "extraction":
        likelihood = consensus_likelihood(run)
        return common | {
            "file": file_ref(run),
            "model": block.model,
            "json_schema": INVOICE_SCHEMA,
            "n_consensus": 3,
            "instructions": None,
            "output": found.as_output(),
            "status": "completed",
            "error": None,
            "consensus": {
                "choices": [],
                "likelihoods": {"invoice_number": 1.0, "total": likelihood, "vendor": {"name": 1.0, "vat_id": 0.94}},
            },
            "metadata": None,
            "usage": usage,
        }
    failed = span.status == "error"
    return common | {
        "run_id": run.id,
        "step_id": step_id(run, span.index),
        "inputs": _handle_inputs(run, span)["input"]["data"],
        "output": None if failed else _handle_outputs(run, span)["output"]["data"],
        "duration_ms": round(span.step.duration_s * 1000),
        "error": error_details(run, span) if failed else None,
    }


INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["invoice_number", "total", "currency"],
    "properties": {
        "invoice_number": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "vendor": {"type": "object", "properties": {"name": {"type": "string"}, "vat_id": {"type": "string"}}},
        "total": {"type": "number"},
        "currency": {"type": "string"},
        "line_items": {"type": "array", "items": {"type": "object"}},
    },
}
