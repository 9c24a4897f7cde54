"""The published interface (tests/data/interface.json, a copy of ../shared/contract/interface.json) held
through the in-memory client in both protocol eras, for every state a run can be in and every tool that
shows a run: get, wait (finished and not), cancel, and each row of wait_for_runs, unreadable rows too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from retab_mcp.simulator import SimulatedRetab

from .helpers import call, data_of

pytestmark = pytest.mark.anyio

INTERFACE_PATH = Path(__file__).parent / "data" / "interface.json"
INTERFACE: dict[str, Any] = json.loads(INTERFACE_PATH.read_text())
SHARED_INTERFACE = Path(__file__).parents[2] / "shared" / "contract" / "interface.json"
RUN_KEYS = set(INTERFACE["run_keys"])
WAIT_KEYS = RUN_KEYS | set(INTERFACE["wait_keys"])
STATES = ["latest", "failed", "cancelled", "stale", "young", "long"]  # completed, error, cancelled, unfinished


def missing(data: dict[str, Any], keys: set[str]) -> set[str]:
    return keys - set(data)


def test_the_vendored_interface_matches_the_shared_one_when_present() -> None:
    if not SHARED_INTERFACE.exists():
        pytest.skip("no shared/ checkout beside this repository")
    assert json.loads(SHARED_INTERFACE.read_text()) == INTERFACE


async def test_every_promised_tool_takes_its_arguments_and_publishes_its_keys(writer: Client) -> None:
    tools = {tool.name: tool for tool in (await writer.list_tools()).tools}
    for name, spec in INTERFACE["tools"].items():
        tool = tools[name]
        assert set(spec["args"]) <= set(tool.input_schema["properties"]), name
        assert set(tool.input_schema.get("required", [])) == set(spec["required"]), name
        assert tool.annotations is not None and bool(tool.annotations.read_only_hint) == spec["read_only"]
        promised = {"run": RUN_KEYS, "wait": WAIT_KEYS}.get(spec.get("output"), set())
        assert promised <= set((tool.output_schema or {}).get("properties", {})), name
    cancel = tools["cancel_experiment_run"].output_schema or {}
    assert set(cancel["properties"]) >= RUN_KEYS


@pytest.mark.parametrize("state", STATES)
@pytest.mark.slow
async def test_get_and_wait_carry_every_promised_key(writer: Client, sim: SimulatedRetab, state: str) -> None:
    run_id = sim.run_ids[state]
    got = data_of(await call(writer, "get_experiment_run", run_id=run_id))
    waited = data_of(await call(writer, "wait_for_run", run_id=run_id, timeout_s=1))
    assert not missing(got, RUN_KEYS) and not missing(waited, WAIT_KEYS)
    assert got["run_id"] == waited["run_id"] == run_id
    assert waited["timed_out"] is (not waited["finished"])
    assert (got["error"] is not None) == (got["status"] == "error")
    assert isinstance(got["error_count"], int) and isinstance(got["completed_documents"], int)


@pytest.mark.parametrize("state", ["latest", "cancelled", "long"])
@pytest.mark.slow
async def test_cancel_carries_every_promised_run_key(writer: Client, sim: SimulatedRetab, state: str) -> None:
    data = data_of(await call(writer, "cancel_experiment_run", run_id=sim.run_ids[state]))
    assert not missing(data, RUN_KEYS) and data["run_id"] == sim.run_ids[state]


async def test_each_wait_for_runs_row_carries_every_promised_run_key(writer: Client, sim: SimulatedRetab) -> None:
    run_ids = [sim.run_ids[state] for state in STATES] + ["exprun_nope", "not an id"]
    data = data_of(await call(writer, "wait_for_runs", run_ids=run_ids, timeout_s=5))
    rows = data["runs"]
    assert [row["run_id"] for row in rows] == run_ids
    assert all(not missing(row, RUN_KEYS) for row in rows)
    assert [row["status"] for row in rows[-2:]] == ["not_found", "invalid_id"]
