"""`GET /v1/workflows/experiments/metrics`: one experiment run's agreement scores, in four views.

`summary` (per document), `by_document` (per field of one document), `by_target` (one field across the
documents) and `votes` (the passes' answers for one field of one document). A run whose metrics were made
for another block configuration answers `stale_metrics`; one with no scored document yet, `no_metrics`.
Neither is an HTTP error (NOTES.md). With a parent run, its scores come as `prior_score`.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from .envelopes import http_exception
from .scenario import TARGETS, SimRun, World, document_score

VIEWS = ("summary", "by_document", "by_target", "votes")


def metrics_answer(world: World, run: SimRun, q: Any, now: float) -> Response:
    """The metrics of `run` at clock time `now` in the view the query asks for (already checked)."""
    exp = run.experiment
    view = q.get("view", "summary")
    if run.metrics_stale:
        return JSONResponse(_stale(run))
    status, completed = run.state_at(now)
    scored = [(d, f) for i, (d, f) in enumerate(exp.documents[:completed]) if i not in run.document_errors]
    if not scored:
        return JSONResponse(
            {
                "kind": "no_metrics",
                "error": "no_metrics",
                "experiment_id": exp.id,
                "message": "No metrics yet: no document of this run has been scored.",
            }
        )
    parent = world.run(run.parent_run_id) if run.parent_run_id else None
    with_prior = q.get("include_prior", "true") != "false" and parent is not None
    prior = parent if with_prior else None
    docs: list[dict[str, Any]] = [
        {
            "id": d,
            "filename": f,
            "score": document_score(run, d),
            "prior_score": document_score(prior, d) if prior else None,
        }
        for d, f in scored
    ]
    if view == "summary":
        return JSONResponse(_summary(run, status, docs, prior))
    document_id = q.get("document_id") or (exp.documents[0][0] if exp.documents else "")
    filename = dict(exp.documents).get(document_id)
    if filename is None:
        return http_exception(404, f"Document not found in run: {document_id}")
    if view == "by_document":
        return JSONResponse(_by_document(run, document_id, filename))
    target = q.get("target_path") or TARGETS[0]
    if view == "by_target":
        return JSONResponse(_by_target(run, target, docs))
    return JSONResponse(_votes(run, document_id, filename, target))


def _stale(run: SimRun) -> dict[str, Any]:
    return {
        "kind": "stale_metrics",
        "error": "stale_metrics",
        "experiment_id": run.experiment.id,
        "stale_reasons": ["validity_changed"],
        "last_run": {
            "run_id": run.id,
            "score": run.final_score,
            "block_execution_fingerprint": None,
        },
        "current_block_execution_fingerprint": "0f3c9a1b7d2e4f60",
        "message": "The experiment's block changed since this run; its metrics no longer apply.",
    }


def _summary(run: SimRun, status: str, docs: list[dict[str, Any]], prior: SimRun | None) -> dict[str, Any]:
    exp = run.experiment
    return {
        "experiment_id": exp.id,
        "run_id": run.id,
        "kind": "summary",
        "view": "summary",
        "block_execution_fingerprint": None,
        "block_type": exp.block_type,
        "score": run.final_score if status == "completed" else None,
        "prior_score": prior.final_score if prior else None,
        "documents": docs,
        "scored_document_count": len(docs),
        "total_document_count": run.total,
        "aggregate": {"likelihoods": {t: round(0.7 + 0.05 * i, 3) for i, t in enumerate(TARGETS)}},
        "prior_run_id": prior.id if prior else None,
    }


def _by_document(run: SimRun, document_id: str, filename: str) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "kind": "by_document",
        "view": "by_document",
        "document": {"id": document_id, "filename": filename},
        "score": document_score(run, document_id),
        "prior_score": None,
        "confusion": None,
        "targets": [
            {
                "path": t,
                "score": document_score(run, document_id, t),
                "prior_score": None,
                "value": None,
            }
            for t in TARGETS
        ],
    }


def _by_target(run: SimRun, target: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "kind": "by_target",
        "view": "by_target",
        "target": target,
        "score": document_score(run, target),
        "prior_score": None,
        "confusion": None,
        "documents": [
            {
                "id": d["id"],
                "filename": d["filename"],
                "score": document_score(run, d["id"], target),
                "prior_score": None,
                "value": None,
            }
            for d in docs
        ],
    }


def _votes(run: SimRun, document_id: str, filename: str, target: str) -> dict[str, Any]:
    n_consensus = run.experiment.n_consensus
    return {
        "run_id": run.id,
        "kind": "votes",
        "view": "votes",
        "document": {"id": document_id, "filename": filename},
        "target": target,
        "score": document_score(run, document_id, target),
        "prior_score": None,
        "rows": [
            {
                "consensus": "1234.00",
                "votes": ["1234.00"] * (n_consensus - 1) + ["1.234,00"],
                "score": 0.8,
                "row_presence_score": 1.0,
                "present_voter_count": n_consensus,
                "total_voter_count": n_consensus,
            }
        ],
    }
