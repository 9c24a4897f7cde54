"""The experiment-loop tools against their promise (tests/data/interface-loop.json), in both protocol eras:
names, argument names, read-only annotations, and every promised key present in a real result."""

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

pytestmark = pytest.mark.anyio

PROMISE: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "interface-loop.json").read_text())["tools"]


async def test_every_loop_tool_keeps_its_promise(sim: SimulatedRetab, clock: VirtualClock, mode: str) -> None:
    experiment = sim.add_experiment("promise", documents=12)
    base = sim.add_consensus_run(experiment)
    sim.edit_block(experiment, everywhere=0.05)
    candidate = sim.add_consensus_run(experiment)
    workflow = sim.world.experiments[-1].workflow_id
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    calls = {
        "list_experiments": {"workflow_id": workflow},
        "get_experiment": {"experiment_id": experiment},
        "compare_experiment_runs": {"base_run_id": base, "candidate_run_id": candidate},
        "start_experiment_run": {"experiment_id": experiment},
    }
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        for name, promise in PROMISE.items():
            assert_listed_as_promised(tools[name], promise)
            data = data_of(await client.call_tool(name, calls[name]))
            assert set(promise["keys"]) <= set(data), (name, set(promise["keys"]) - set(data))
            for row in data.get("experiments", []):
                assert set(promise["row_keys"]) <= set(row), name
