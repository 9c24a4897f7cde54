"""Coalescing and scale over streamable HTTP: one server process, many sessions.

Both use the real server process (`retab-mcp --transport http`) and the simulated API in a process of its
own, so the requests counted are the ones that crossed the network."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import psutil
from mcp import Client

from .support import KEY, Section, ready_port, simulated_api, simulator_stats, table

COALESCE_GOAL = 1.5


async def _server(api_url: str) -> tuple[anyio.abc.Process, str]:
    env = {**os.environ, "RETAB_API_KEY": KEY, "RETAB_API_BASE_URL": api_url}
    command = [sys.executable, "-m", "retab_mcp", "--transport", "http", "--port", "0"]
    process = await anyio.open_process(command, env=env, stdin=subprocess.DEVNULL)
    with anyio.fail_after(30):
        port = await ready_port(process.stderr, rb"serving on http://[^\s/]+:(\d+)/")
    return process, f"http://127.0.0.1:{port}/mcp"


async def _wait_until_finished(url: str, run_id: str, statuses: list[str]) -> None:
    async with Client(url) as client:
        while True:
            result = await client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 45})
            data = result.structured_content or {}
            if result.is_error or data.get("finished"):
                statuses.append("error" if result.is_error else str(data["status"]))
                return


async def coalescing(waiters: int = 20) -> Section:
    section = Section(
        "Coalescing",
        f"{waiters} sessions over streamable HTTP wait on one 10 s run while one more session waits alone on "
        "a twin run, in one server process; API requests per run as the simulated API counted them.",
    )
    async with simulated_api("--add-runs", "2", "--run-seconds", "10", "--documents", "10") as api:
        shared, alone = (await simulator_stats(api))["added_runs"]
        process, url = await _server(api)
        statuses: list[str] = []
        try:
            async with anyio.create_task_group() as group:
                for _ in range(waiters):
                    group.start_soon(_wait_until_finished, url, shared, statuses)
                group.start_soon(_wait_until_finished, url, alone, statuses)
        finally:
            process.terminate()
            await process.wait()
        per_run = (await simulator_stats(api))["per_run"]
    ratio = per_run[shared] / per_run[alone]
    section.add(
        *table(
            ["waiters", "API requests"],
            [(f"{waiters} sessions, one run", per_run[shared]), ("1 session, twin run", per_run[alone])],
        )
    )
    # One waiter on a 10 s run polls a handful of times: fewer than 3 requests means it did not wait.
    problem = None if per_run[alone] >= 3 else f"one waiter sent {per_run[alone]} requests for a 10 s run"
    section.goal(
        f"{waiters} waiters <= {COALESCE_GOAL}x one waiter's requests",
        f"{ratio:.2f}x",
        ratio <= COALESCE_GOAL and statuses == ["completed"] * (waiters + 1),
        baseline_problem=problem,
    )
    return section


async def scale(runs: int = 200) -> Section:
    section = Section(
        "Scale",
        f"{runs} sessions over streamable HTTP, each waiting on a different run (20 to 40 s long, started "
        "together) until it ends, against one server process. Peak resident memory and CPU time of that "
        "process, against its own idle footprint after start-up.",
    )
    async with simulated_api("--add-runs", str(runs), "--run-seconds", "20:40", "--documents", "10") as api:
        run_ids = (await simulator_stats(api))["added_runs"]
        process, url = await _server(api)
        server = psutil.Process(process.pid)
        idle_rss = server.memory_info().rss
        cpu_before = sum(server.cpu_times()[:2])
        statuses: list[str] = []
        started = time.perf_counter()
        try:
            async with anyio.create_task_group() as group:
                for run_id in run_ids:
                    group.start_soon(_wait_until_finished, url, run_id, statuses)
            elapsed = time.perf_counter() - started
            cpu = sum(server.cpu_times()[:2]) - cpu_before
            peak_kb = _peak_rss_kb(process.pid)
        finally:
            process.terminate()
            await process.wait()
        polls = (await simulator_stats(api))["requests"]
    completed = statuses.count("completed")
    rows = [
        ("waits that completed", f"{completed} of {runs}"),
        ("wall time", f"{elapsed:.0f} s"),
        ("API requests (polls)", polls),
        ("peak RSS", f"{peak_kb / 1024:.0f} MiB (idle after start-up: {idle_rss / 2**20:.0f} MiB)"),
        ("CPU time of the server process", f"{cpu:.1f} s"),
        ("CPU seconds per 1,000 polls", f"{cpu / polls * 1000:.2f} s (all work included: sessions, calls, polls)"),
    ]
    section.add(*table(["measure", "value"], rows, "lr"))
    section.goal(f"{runs} concurrent waits all complete", f"{completed} of {runs}", completed == runs)
    return section


def _peak_rss_kb(pid: int) -> int:
    """The kernel's high-water mark of the process's resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
