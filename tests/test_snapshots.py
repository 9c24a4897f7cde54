"""Snapshots of what a model sees: every tool's schema, and the text for each lifecycle state.

A change to any of them shows up as a diff of a file under tests/snapshots/ (UPDATE_SNAPSHOTS=1 to accept).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock

from .helpers import text_of
from .snapshot import assert_snapshot

pytestmark = [pytest.mark.anyio, pytest.mark.eras]


async def test_tool_schemas(mcp_client: Client) -> None:
    tools = (await mcp_client.list_tools()).tools
    listing = [
        tool.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            include={"name", "title", "description", "input_schema", "output_schema", "annotations"},
        )
        for tool in sorted(tools, key=lambda t: t.name)
    ]
    assert_snapshot("tools.json", json.dumps(listing, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize(
    ("role", "advance_s", "state"),
    [
        ("young", 0.5, "pending"),
        ("young", 1.5, "queued"),
        ("young", 22, "running"),
        ("latest", 0, "completed"),
        ("failed", 0, "error"),
        ("cancelled", 0, "cancelled"),
    ],
)
@pytest.mark.slow
async def test_get_experiment_run_text(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock, role: str, advance_s: float, state: str
) -> None:
    clock.advance(advance_s)
    result = await mcp_client.call_tool("get_experiment_run", {"run_id": sim.run_ids[role]})
    assert (result.structured_content or {})["status"] == state
    assert_snapshot(f"get_{state}.txt", text_of(result) + "\n")


async def test_wait_for_run_text_when_unfinished_and_finished(mcp_client: Client, sim: SimulatedRetab) -> None:
    unfinished = await mcp_client.call_tool("wait_for_run", {"run_id": sim.run_ids["young"], "timeout_s": 20})
    finished = await mcp_client.call_tool("wait_for_run", {"run_id": sim.run_ids["young"], "timeout_s": 45})
    assert_snapshot("wait_unfinished.txt", text_of(unfinished) + "\n")
    assert_snapshot("wait_finished.txt", text_of(finished) + "\n")


async def test_error_texts(mcp_client: Client, sim: SimulatedRetab) -> None:
    unknown = await mcp_client.call_tool("get_experiment_run", {"run_id": "exprun_nope"})
    invalid = await mcp_client.call_tool("get_experiment_run", {"run_id": "exprun 2"})
    assert_snapshot("error_texts.txt", text_of(unknown) + "\n" + text_of(invalid) + "\n")


@pytest.mark.parametrize("role", ["latest", "failed", "stale"])
@pytest.mark.slow
async def test_triage_text(mcp_client: Client, sim: SimulatedRetab, role: str) -> None:
    result = await mcp_client.call_tool("triage_experiment_run", {"run_id": sim.run_ids[role]})
    assert_snapshot(f"triage_{role}.txt", text_of(result) + "\n")


@pytest.mark.slow
async def test_texts_of_workflow_and_eval_runs(mcp_client: Client, sim: SimulatedRetab) -> None:
    """What a model reads about the other kinds: a workflow run held at a review gate, a failed one triaged,
    an eval run triaged, and two eval runs compared."""
    gate = await mcp_client.call_tool("get_run", {"run_id": sim.workflow_run_ids["awaiting_review"]})
    failed = await mcp_client.call_tool("triage_run", {"run_id": sim.workflow_run_ids["failed"]})
    evals = await mcp_client.call_tool("triage_run", {"run_id": sim.eval_run_ids["candidate"]})
    compared = await mcp_client.call_tool("compare_eval_runs", {"candidate_run_id": sim.eval_run_ids["candidate"]})
    assert_snapshot("workflow_gate.txt", text_of(gate) + "\n")
    assert_snapshot("workflow_triage.txt", text_of(failed) + "\n")
    assert_snapshot("eval_triage.txt", text_of(evals) + "\n")
    assert_snapshot("eval_compare.txt", text_of(compared) + "\n")


async def test_list_and_metrics_texts(mcp_client: Client, sim: SimulatedRetab) -> None:
    runs = await mcp_client.call_tool("list_experiment_runs", {"limit": 4})
    results = await mcp_client.call_tool("list_experiment_run_results", {"run_id": sim.run_ids["latest"], "limit": 5})
    metrics = await mcp_client.call_tool("get_experiment_run_metrics", {"run_id": sim.run_ids["latest"]})
    batch = await mcp_client.call_tool(
        "wait_for_runs", {"run_ids": [sim.run_ids["latest"], sim.run_ids["long"]], "timeout_s": 2}
    )
    texts = [text_of(r) for r in (runs, results, metrics, batch)]
    assert_snapshot("lists_metrics_batch.txt", "\n\n".join(texts) + "\n")


def test_a_missing_snapshot_fails_unless_asked_to_write_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    with pytest.raises(AssertionError, match="missing"):
        assert_snapshot("new.txt", "text\n", directory=tmp_path)
    assert not (tmp_path / "new.txt").exists()
    monkeypatch.setenv("UPDATE_SNAPSHOTS", "1")
    assert_snapshot("new.txt", "text\n", directory=tmp_path)
    assert (tmp_path / "new.txt").read_text() == "text\n"


def test_a_changed_snapshot_fails_with_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    (tmp_path / "old.txt").write_text("before\n")
    with pytest.raises(AssertionError, match=r"-before\n\+after"):
        assert_snapshot("old.txt", "after\n", directory=tmp_path)
