"""Start-up: spawn to `initialize` and `tools/list` answered over stdio, against a bare MCPServer with one
tool (the same SDK, the same Python) and the official reference server mcp-server-time."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from .support import KEY, Section, baseline_problem, median, table

HERE = Path(__file__).parent
SERVERS = {
    "retab-mcp": [sys.executable, "-m", "retab_mcp"],
    "bare MCPServer, one tool": [sys.executable, str(HERE / "hello_server.py")],
    "mcp-server-time": [sys.executable, "-m", "mcp_server_time"],
}
GOAL = 1.10


async def _spawn_to_tools_list(command: list[str]) -> float:
    env = {"PATH": os.environ["PATH"], "RETAB_API_KEY": KEY}
    started = time.perf_counter()
    async with Client(StdioServerParameters(command=command[0], args=command[1:], env=env), mode="legacy") as c:
        await c.list_tools()
        return time.perf_counter() - started


async def measure(repeats: int = 15) -> Section:
    section = Section(
        "Start-up",
        f"Wall time from spawning the server to `tools/list` answered (after the `initialize` handshake) "
        f"over stdio; {repeats} rounds, the three servers interleaved in each round, median.",
    )
    times: dict[str, list[float]] = {name: [] for name in SERVERS}
    for _ in range(repeats):
        for name, command in SERVERS.items():
            times[name].append(await _spawn_to_tools_list(command))
    bare = median(times["bare MCPServer, one tool"])
    rows = [
        (name, f"{median(v) * 1000:.0f} ms", f"{min(v) * 1000:.0f} ms", f"{median(v) / bare:.2f}")
        for name, v in times.items()
    ]
    section.add(*table(["server", "median", "best", "vs bare server"], rows))
    ratio = median(times["retab-mcp"]) / bare
    # The bare server imports the same SDK: it cannot start in under 100 ms, nor take seconds, nor be
    # slower than a server that does all it does and more.
    problem = baseline_problem(
        samples=repeats,
        min_samples=10,
        baseline=bare,
        measured=median(times["retab-mcp"]),
        plausible=(0.1, 5.0),
        unit=" s",
    )
    section.goal(f"start-up <= {GOAL:.2f}x the bare server", f"{ratio:.3f}x", ratio <= GOAL, baseline_problem=problem)
    return section
