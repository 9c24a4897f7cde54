from typing import Any

from retab_mcp.api.models import Metrics, Page, Run

CURRENT: dict[str, Any] = {
    "id": "exprun_2",
    "workflow_id": "workflow_a",
    "workflow_version_id": "wfv_1",
    "trigger": {"type": "manual"},
    "experiment_id": "exp_abc",
    "block_id": "block_1",
    "block_type": "extract",
    "n_consensus": 5,
    "lifecycle": {"status": "completed"},
    "timing": {
        "created_at": "2026-11-28T09:00:00Z",
        "started_at": "2026-11-28T09:00:04Z",
        "completed_at": "2026-11-28T09:04:22Z",
        "duration_ms": 258000,
    },
    "block_execution_fingerprint": "fp1",
    "documents_fingerprint": "fp2",
    "score": 0.87,
    "total_document_count": 12,
    "completed_document_count": 12,
}


def test_current_flat_shape_is_read() -> None:
    run = Run.model_validate(CURRENT)
    assert (run.id, run.status, run.workflow_id, run.block_type, run.score) == (
        "exprun_2",
        "completed",
        "workflow_a",
        "extract",
        0.87,
    )
    assert run.timing.duration_ms == 258000


def test_older_nested_shape_maps_onto_current_fields() -> None:
    older = {
        k: v
        for k, v in CURRENT.items()
        if k not in ("workflow_id", "workflow_version_id", "block_type", "block_execution_fingerprint")
    }
    older |= {
        "workflow": {"workflow_id": "workflow_a", "version_id": "wfv_1"},
        "block_kind": "extract",
        "definition_fingerprint": "fp1",
    }
    assert Run.model_validate(older) == Run.model_validate(CURRENT)


def test_unknown_lifecycle_status_is_kept_as_a_string() -> None:
    run = Run.model_validate(CURRENT | {"lifecycle": {"status": "paused_for_review", "eta": 3}})
    assert run.status == "paused_for_review"
    assert not run.lifecycle.is_terminal


def test_only_the_id_is_required() -> None:
    run = Run.model_validate({"id": "exprun_9"})
    assert run.status == "unknown"
    assert run.score is None and run.total_document_count == 0 and run.timing.started_at is None


def test_extra_fields_are_ignored() -> None:
    run = Run.model_validate(CURRENT | {"new_field": {"deep": [1, 2]}, "timing": CURRENT["timing"] | {"x": 1}})
    assert run.id == "exprun_2"


def test_error_lifecycle_carries_message_and_details() -> None:
    run = Run.model_validate(
        CURRENT
        | {
            "lifecycle": {
                "status": "error",
                "message": "boom",
                "details": {"stack_trace": "T", "error_code": "E1"},
            }
        }
    )
    assert run.lifecycle.message == "boom"
    assert run.lifecycle.details is not None and run.lifecycle.details.error_code == "E1"


def test_page_exposes_the_next_cursor() -> None:
    page = Page[Run].model_validate({"data": [CURRENT], "list_metadata": {"before": None, "after": "exprun_2"}})
    assert page.next_cursor == "exprun_2" and page.data[0].id == "exprun_2"


def test_metrics_of_any_kind_are_read() -> None:
    stale = Metrics.model_validate(
        {
            "kind": "stale_metrics",
            "experiment_id": "exp_abc",
            "message": "drifted",
            "stale_reasons": ["validity_changed"],
            "last_run": {"run_id": "r"},
        }
    )
    assert stale.kind == "stale_metrics" and stale.stale_reasons == ["validity_changed"]
    assert stale.model_extra == {"last_run": {"run_id": "r"}}
