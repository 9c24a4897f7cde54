"""Evals, eval runs and eval results as the API sends them (the spec's shapes), at a moment.

The pieces agree: a run's `counts` are its results' lifecycles and verdicts counted, `total_evals` is
its number of results, an eval's latest-run summaries are its latest results, an eval is stale when its
block changed since the run its latest verdict came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .eval_world import EvalSuite, EvalVerdict, SimEval, SimEvalRun
from .scenario import iso, opaque_id

Wall = Callable[[float], datetime]  # clock time -> wall time
LIFECYCLES = ("pending", "queued", "running", "completed", "error", "cancelled")
OUTCOMES = ("passed", "failed", "blocked")


def fingerprint(*parts: object) -> str:
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()[:16]


def result_id(run: SimEvalRun, e: SimEval) -> str:
    return opaque_id("wfevalres", f"{run.id}/{e.id}")


def artifact_id(run: SimEvalRun, e: SimEval) -> str:
    prefix = "clss" if e.block.type == "classifier" else "extr"
    return opaque_id(prefix, f"{run.id}/{e.id}")


# Results


def result_lifecycle(run: SimEvalRun, index: int, t: float) -> str:
    status, done = run.state_at(t)
    if index < done:
        return "completed"
    if status == "error" and index == done:
        return "error"
    if status in ("error", "cancelled"):
        return "cancelled"
    if status == "running" and run.eval_span(index)[0] <= t:
        return "running"
    return "queued" if status != "pending" else "pending"


def result_body(run: SimEvalRun, index: int, wall: Wall, t: float) -> dict[str, Any]:
    e = run.evals[index]
    status = result_lifecycle(run, index, t)
    start_t, end_t = run.eval_span(index)
    if status == "cancelled" and run.cancel_requested_t is not None:
        end_t = run.cancel_requested_t
    started = status not in ("pending", "queued") and not (status == "cancelled" and start_t > end_t)
    finished = status in ("completed", "error", "cancelled")
    lifecycle: dict[str, Any] = {"status": status}
    if status == "error":
        lifecycle |= {"message": run.error_message, "details": _error_details(run, e)}
    elif status == "cancelled":
        lifecycle["reason"] = run.cancel_reason or "The eval run stopped before this eval ran"
    verdict = run.verdict(e) if status == "completed" else None
    suite, version = run.suite, run.version
    return {
        "id": result_id(run, e),
        "workflow_eval_run_id": run.id,
        "eval_id": e.id,
        "lifecycle": lifecycle,
        "timing": {
            "created_at": iso(wall(run.created_t)),
            "started_at": iso(wall(start_t)) if started else None,
            "completed_at": iso(wall(end_t)) if finished and started else None,
            "duration_ms": round((end_t - start_t) * 1000) if finished and started else None,
        },
        "verdict": verdict,
        "workflow_id": suite.workflow.id,
        "block_id": e.block.id,
        "block_type": e.block.type,
        "execution_fingerprint": fingerprint(run.id, e.id) if started else None,
        "handle_inputs_fingerprint": fingerprint(e.id, "inputs"),
        "workflow_draft_fingerprint": fingerprint(suite.workflow.id, version),
        "block_execution_fingerprint": fingerprint(e.block.id, suite.block_config(e.block.id, version)),
        "artifact": {"operation": _operation(e), "id": artifact_id(run, e)} if verdict else None,
        "handle_inputs": _handle_inputs(e),
        "handle_outputs": {e.output_handle_id: {"type": "json", "data": _output(e, verdict)}} if verdict else None,
        "routing_decisions": None,
        "warnings": [],
        "assertion_result": assertion_result(run, e, verdict) if verdict else None,
        "verdict_summary": _verdict_summary(e, verdict) if verdict else None,
    }


def _operation(e: SimEval) -> str:
    return "classification" if e.block.type == "classifier" else "extraction"


def _handle_inputs(e: SimEval) -> dict[str, Any]:
    if e.input_file is not None:
        file_id, filename = e.input_file
        return {
            "input": {"type": "file", "document": {"id": file_id, "filename": filename, "mime_type": "application/pdf"}}
        }
    return {name: dict(value) for name, value in e.source.get("handle_inputs", {}).items()}


def _actual(e: SimEval, verdict: EvalVerdict) -> Any:
    return e.expectation.passing if verdict == "passed" else e.expectation.failing if verdict == "failed" else None


def _output(e: SimEval, verdict: EvalVerdict) -> Any:
    """The block's output as far as the assertion reads it: the value at its path (absent when blocked)."""
    if e.path is None:
        return _actual(e, verdict)
    return {} if verdict == "blocked" else {e.path: _actual(e, verdict)}


def assertion_result(run: SimEvalRun, e: SimEval, verdict: EvalVerdict) -> dict[str, Any]:
    x = e.expectation
    scored = x.threshold is not None and verdict != "blocked"
    score = (x.passing_score if verdict == "passed" else x.failing_score) if scored else None
    failure: dict[str, Any] | None = None
    if verdict == "failed":
        failure = {
            "code": "assertion_failed",
            "message": f"{x.kind}: expected {x.expected!r}, got {_actual(e, verdict)!r}",
            "details": {"path": e.path},
        }
    elif verdict == "blocked":
        drift = run.suite.drift(e, run.version)
        failure = {
            "code": "target_unresolved",
            "message": f"Path {e.path!r} did not resolve in output {e.output_handle_id!r}",
            "details": {"path": e.path, "output_handle_id": e.output_handle_id} | ({"drift": drift} if drift else {}),
        }
    return {
        "assertion_id": e.assertion_id,
        "condition_kind": x.kind,
        "outcome": verdict,
        "actual_value": _actual(e, verdict),
        "expected_value": x.expected,
        "score": score,
        "threshold": x.threshold,
        "metric_kind": x.metric_kind,
        "assertion_label": e.name,
        "failure": failure,
    }


def _verdict_summary(e: SimEval, verdict: EvalVerdict) -> dict[str, Any]:
    return {
        "passed": verdict == "passed",
        "assertions_passed": int(verdict == "passed"),
        "assertions_failed": int(verdict == "failed"),
        "blocked_assertions": int(verdict == "blocked"),
        "failed_assertion_ids": [e.assertion_id] if verdict == "failed" else [],
    }


def _error_details(run: SimEvalRun, e: SimEval) -> dict[str, Any]:
    return {
        "message": run.error_message,
        "stack_trace": None,
        "block_id": e.block.id,
        "block_name": e.block.label,
        "error_code": run.error_code,
        "context": {"eval_id": e.id},
    }


# Runs


def run_body(run: SimEvalRun, wall: Wall, t: float, previous: SimEvalRun | None) -> dict[str, Any]:
    """The run at `t`; `previous` is the workflow's completed run before it, its baseline."""
    status, _ = run.state_at(t)
    lifecycle: dict[str, Any] = {"status": status}
    if status == "error":
        _, done = run.state_at(t)
        lifecycle |= {"message": run.error_message, "details": _error_details(run, run.evals[min(done, run.total - 1)])}
    elif status == "cancelled":
        lifecycle["reason"] = run.cancel_reason
    started = run.created_t + run.queue_s if status not in ("pending", "queued") else None
    ended = run.ended_t(t)
    if status == "cancelled" and started is not None and ended is not None and ended < started:
        started = None  # cancelled before it began
    statuses = [result_lifecycle(run, i, t) for i in range(run.total)]
    verdicts = [run.verdict(e) for e, s in zip(run.evals, statuses, strict=True) if s == "completed"]
    scope = run.scope
    single = scope.get("type") == "single" and run.evals
    block_id = scope.get("block_id") if scope.get("type") == "block" else run.evals[0].block.id if single else None
    return {
        "id": run.id,
        "workflow_id": run.suite.workflow.id,
        "workflow_version_id": run.suite.workflow.version_id(run.version),
        "trigger": {"type": run.trigger_type},
        "lifecycle": lifecycle,
        "timing": {
            "created_at": iso(wall(run.created_t)),
            "started_at": iso(wall(started)) if started is not None else None,
            "completed_at": iso(wall(ended)) if ended is not None else None,
            "duration_ms": round((ended - started) * 1000) if ended is not None and started is not None else None,
        },
        "target": {"type": "block", "block_id": block_id} if block_id else None,
        "eval_id": scope.get("eval_id") if single else None,
        "total_evals": run.total,
        "counts": {
            "lifecycle_counts": {name: statuses.count(name) for name in LIFECYCLES},
            "outcome": {name: verdicts.count(name) for name in OUTCOMES},
        },
        "freshness": _run_freshness(run, previous),
    }


def _run_freshness(run: SimEvalRun, previous: SimEvalRun | None) -> dict[str, Any]:
    suite = run.suite
    current = suite.workflow.version
    changed = any(suite.validity(e, run.version) != suite.validity(e, current) for e in run.evals)
    reasons = ["validity_changed"] if changed else []
    return {
        "status": "stale" if changed else "fresh",
        "reasons": reasons,
        "validity_fingerprint": fingerprint(suite.workflow.id, run.version, "validity"),
        "input_fingerprint": fingerprint(*(e.id for e in run.evals)),
        "baseline_run_id": previous.id if previous else None,
    }


# Evals


def eval_body(e: SimEval, suite: EvalSuite, runs: Sequence[SimEvalRun], wall: Wall, t: float) -> dict[str, Any]:
    """The saved eval at `t`; `runs` are the eval runs that exist by then, oldest first."""
    current = suite.workflow.version
    records = [(run, result_body(run, i, wall, t)) for run in runs for i, x in enumerate(run.evals) if x is e]
    # Summaries are written when an eval's execution ends: those that started and ended.
    ended = [(run, body) for run, body in records if body["timing"]["completed_at"] is not None]
    latest = ended[-1] if ended else None
    passing = [(run, body) for run, body in ended if body["verdict"] == "passed"]
    failing = [(run, body) for run, body in ended if body["verdict"] == "failed"]
    judged = [run for run, body in ended if body["verdict"] is not None]
    baseline = judged[-1] if judged else None
    drift = suite.drift(e, current)
    if baseline is None:
        freshness_status, reasons = "unknown", ["no_baseline"]
    elif suite.validity(e, baseline.version) != suite.validity(e, current):
        freshness_status, reasons = "stale", ["validity_changed"]
    else:
        freshness_status, reasons = "fresh", []
    x = e.expectation
    created = iso(e.created_at)
    return {
        "id": e.id,
        "workflow_id": suite.workflow.id,
        "target": {"type": "block", "block_id": e.block.id},
        "source": e.source,
        "name": e.name,
        "assertion": {
            "id": e.assertion_id,
            "target": {"output_handle_id": e.output_handle_id, "path": e.path},
            "condition": x.condition,
            "label": e.name,
        },
        "assertion_schema_dep": {
            "output_handle_id": e.output_handle_id,
            "schema_path": f"properties.{e.path}" if e.path else "",
            "subtree_hash": fingerprint(e.block.id, e.path),
            "depends_on_root": e.path is None,
        },
        "assertion_drift_status": "drifted" if drift else "valid",
        "schema_drift": "drifted" if drift else "none",
        "schema_drift_detail": drift,
        "freshness": {
            "status": freshness_status,
            "reasons": reasons,
            "validity_fingerprint": fingerprint(e.id, suite.validity(e, current)),
            "input_fingerprint": fingerprint(e.id, "inputs"),
            "baseline_run_id": baseline.id if baseline else None,
        },
        "drift": {
            "status": "drifted" if drift else "none",
            "affected_targets": [e.path] if drift else [],
            "detail": drift,
        },
        "validation_status": "valid",
        "validation_issues": [],
        "latest_run_summary": _summary(latest) if latest else None,
        "latest_passing_run_summary": _summary(passing[-1]) if passing else None,
        "latest_failing_run_summary": _summary(failing[-1]) if failing else None,
        "created_at": created,
        "updated_at": created,
    }


def _summary(at: tuple[SimEvalRun, dict[str, Any]]) -> dict[str, Any]:
    """One eval's result in one run, as an eval's latest-run summaries give it."""
    run, body = at
    e = next(x for x in run.evals if x.id == body["eval_id"])
    verdict = body["verdict"]
    return {
        "run_record_id": body["id"],
        "status": body["lifecycle"]["status"],
        "outcome": verdict,
        "started_at": body["timing"]["started_at"],
        "completed_at": body["timing"]["completed_at"],
        "duration_ms": body["timing"]["duration_ms"],
        "workflow_draft_fingerprint": body["workflow_draft_fingerprint"],
        "block_execution_fingerprint": body["block_execution_fingerprint"],
        "validity_fingerprint": fingerprint(e.id, run.suite.validity(e, run.version)),
        "handle_inputs_fingerprint": body["handle_inputs_fingerprint"],
        "assertions_passed": int(verdict == "passed"),
        "assertions_failed": int(verdict == "failed"),
        "blocked_assertions": int(verdict == "blocked"),
    }


# Artifacts of eval executions


def artifact_body(run: SimEvalRun, index: int, wall: Wall) -> dict[str, Any]:
    e = run.evals[index]
    verdict = run.verdict(e)
    file_id, filename = e.input_file or (opaque_id("file", e.id), f"{e.role}.json")
    common = {
        "id": artifact_id(run, e),
        "file": {
            "id": file_id,
            "filename": filename,
            "mime_type": "application/pdf" if e.input_file else "application/json",
        },
        "model": e.block.model or "retab-small",
        "n_consensus": 1,
        "instructions": None,
        "status": "completed",
        "error": None,
        "usage": {"credits": 0.5},
        "created_at": iso(wall(run.eval_span(index)[1])),
        "operation": _operation(e),
    }
    if e.block.type == "classifier":
        decision = {"reasoning": "A supplier's bill with line items and a total due.", "category": "invoice"}
        return common | {
            "categories": [{"name": "invoice"}, {"name": "credit_note"}, {"name": "other"}],
            "output": decision,
        }
    output = _output(e, verdict)
    return common | {
        "json_schema": {"type": "object"},
        "output": output if isinstance(output, dict) else {"value": output},
    }
