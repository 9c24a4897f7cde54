"""Waits as MCP tasks with clients this project did not write (interop/tasks.mjs), on three-minute runs of a
real-clock simulated API on a loopback port: the TypeScript SDK 1.32's 2025-11-25 tasks client over stdio and
streamable HTTP, and the official @modelcontextprotocol/ext-tasks client (2026-07-28 extension) over HTTP.
Each waits out a run as one task with status updates, and cancels another task while its run goes on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab

from .helpers import TEST_KEY, LoopbackAPI

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INTEROP = Path(__file__).resolve().parent.parent / "interop"
NODE = INTEROP / "node_modules" / ".bin" / "node"
RUN_S = float(os.environ.get("RETAB_MCP_TASK_RUN_S", "180"))  # the three-minute run


@pytest.mark.skipif(not NODE.exists() and shutil.which("node") is None, reason="interop: run `npm ci` in interop/")
async def test_real_task_clients_of_both_eras_wait_out_three_minute_runs_and_cancel_another() -> None:
    sim = SimulatedRetab(clock=RealClock())
    runs = {
        transport: [sim.add_run(duration_s=RUN_S, queue_s=1.0), sim.add_run(duration_s=3 * RUN_S)]
        for transport in ("stdio", "http", "modern")
    }
    done: subprocess.CompletedProcess[bytes] | None = None
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        env = {
            **os.environ,
            "RETAB_MCP_PYTHON": sys.executable,
            "RETAB_API_BASE_URL": api.url,
            "RETAB_API_KEY": TEST_KEY,
            "TASK_RUNS": json.dumps(runs),
        }
        node = str(NODE) if NODE.exists() else "node"
        with anyio.fail_after(RUN_S + 120):
            done = await anyio.run_process(
                [node, "tasks.mjs"], cwd=INTEROP, env=env, check=False, stderr=subprocess.STDOUT
            )
        await api.stop()
        group.cancel_scope.cancel()
    assert done is not None
    output = done.stdout.decode()
    assert done.returncode == 0, output
    assert output.count("ok 20") == 3, output
    for other in (pair[1] for pair in runs.values()):
        assert not any(r.method == "POST" and other in r.path for r in sim.requests), "no run was cancelled"
