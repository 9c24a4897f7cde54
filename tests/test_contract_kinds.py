"""The tools for every kind of run against their promise (tests/data/interface-kinds.json): names, argument
names, read-only annotations, and every promised key present in real results of each kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY, assert_listed_as_promised, data_of

pytestmark = [pytest.mark.anyio, pytest.mark.eras]

INTERFACE: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "interface-kinds.json").read_text())
PROMISE: dict[str, Any] = INTERFACE["tools"]
RUN_KEYS = set(INTERFACE["run_keys"])


async def test_every_tool_for_every_kind_keeps_its_promise(sim: SimulatedRetab, clock: VirtualClock, mode: str) -> None:
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    gated, failed = sim.workflow_run_ids["awaiting_review"], sim.workflow_run_ids["failed"]
    candidate = sim.eval_run_ids["candidate"]
    runs = [sim.run_ids["latest"], gated, candidate]
    calls: dict[str, list[dict[str, Any]]] = {
        "get_run": [{"run_id": run_id} for run_id in runs],
        "wait_for_run": [{"run_id": run_id, "timeout_s": 1} for run_id in [*runs, sim.run_ids["long"]]],
        "wait_for_runs": [{"run_ids": runs, "timeout_s": 1}],
        "list_runs": [{"kind": "workflow"}, {"kind": "eval"}],
        "triage_run": [{"run_id": run_id} for run_id in [sim.run_ids["failed"], failed, candidate]],
        "list_eval_results": [{"run_id": candidate}],
        "compare_eval_runs": [{"candidate_run_id": candidate}],
        "start_eval_run": [{"workflow_id": sim.workflow_ids["support"]}],
    }
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        for name, promise in PROMISE.items():
            assert_listed_as_promised(tools[name], promise)
            for arguments in calls[name]:
                data = data_of(await client.call_tool(name, arguments))
                promised = set(promise["keys"]) | (RUN_KEYS if promise.get("run") else set())
                if name == "wait_for_run" and data["kind"] == "workflow":
                    promised |= set(promise["workflow_keys"])
                assert promised <= set(data), (name, arguments, promised - set(data))
                for row in data.get("runs", []) + data.get("rows", []):
                    assert set(promise.get("row_keys", [])) <= set(row), (name, set(promise["row_keys"]) - set(row))
                if name == "wait_for_runs":
                    assert all(set(row) >= RUN_KEYS for row in data["runs"]), name
