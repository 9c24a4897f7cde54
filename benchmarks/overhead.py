"""Per-call overhead: `get_experiment_run` over stdio against a direct GET of the same run with a keep-alive
httpx2 client. Both reach the simulated API, served by uvicorn in a process of its own on a loopback port.

The tool call goes through the real server process and a raw JSON-RPC client (newline-delimited messages
on its stdin and stdout), so what is timed is the server's work; the SDK's client, which also parses and
checks every result against the tool's output schema, is timed apart (no goal: that is the host's work).
Calls and GETs alternate, in turns that swap which goes first, so that a slow moment of the machine falls
on both. For reference (no goal), the SDK's floor: a bare MCPServer whose one tool makes the same GET
(benchmarks/bare_get_server.py), measured the same way in each run. Beside wall time, CPU time: the
server process's (kernel schedstat, Linux) against this process's for the GETs. The benchmark runs
twice in a row (`RUNS`); the goal holds only if it holds in both. Alone: `uv run python benchmarks/overhead.py`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.startup import INITIALIZED, schedstat
from benchmarks.support import (
    INITIALIZE,
    KEY,
    Section,
    Steal,
    baseline_problem,
    goal_in_every_run,
    median,
    percentile,
    simulated_api,
    table,
)
from retab_mcp.simulator.scenario import opaque_id

GOAL_MS = 1.0
CALLS = 2000
WARMUP = 100
SDK_CALLS = 500
RUNS = 2
BARE_CALLS = 1000
OURS = [sys.executable, "-m", "retab_mcp"]
BARE = [sys.executable, str(Path(__file__).parent / "bare_get_server.py")]
RUN_ID = opaque_id("exprun", "latest")
RUN_PATH = f"/v1/workflows/experiments/runs/{RUN_ID}"


@dataclass(frozen=True)
class Run:
    tool_ms: list[float]
    direct_ms: list[float]
    server_cpu_ms: float | None  # the server's CPU time per call
    direct_cpu_ms: float  # this process's CPU time per GET
    sdk_tool_ms: list[float]
    sdk_direct_ms: list[float]
    steal: float | None = None  # the share of the machine's CPU taken by the hypervisor meanwhile
    bare_overhead_ms: float | None = None  # the same for a bare MCPServer making the same GET (reference)
    bare_cpu_overhead_ms: float | None = None

    @property
    def overhead_ms(self) -> float:
        return median(self.tool_ms) - median(self.direct_ms)

    @property
    def paired_ms(self) -> float:
        return median([t - d for t, d in zip(self.tool_ms, self.direct_ms, strict=True)])

    @property
    def trimmed_ms(self) -> float:
        """The mean of the per-pair differences, the highest and lowest tenth left out."""
        pairs = sorted(t - d for t, d in zip(self.tool_ms, self.direct_ms, strict=True))
        cut = len(pairs) // 10
        return statistics.mean(pairs[cut : len(pairs) - cut])

    @property
    def cpu_overhead_ms(self) -> float | None:
        return self.server_cpu_ms - self.direct_cpu_ms if self.server_cpu_ms is not None else None

    @property
    def sdk_overhead_ms(self) -> float:
        return median(self.sdk_tool_ms) - median(self.sdk_direct_ms)


class RawClient:
    """A JSON-RPC client on a server process's stdin and stdout: one message a line."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process, self.lines, self.next_id = process, BufferedByteReceiveStream(process.stdout), 100

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}})
        while True:  # notifications may come first
            answer = json.loads(await self.lines.receive_until(b"\n", 1 << 22))
            if answer.get("id") == self.next_id:
                return answer


@dataclass(frozen=True)
class Calls:
    """One server's calls against the GETs alternating with them."""

    tool_ms: list[float]
    direct_ms: list[float]
    server_cpu_ms: float | None
    direct_cpu_ms: float
    steal: float | None


async def one_run(url: str, calls: int, warmup: int, sdk_calls: int) -> Run:
    ours = await raw_calls(url, OURS, calls, warmup)
    bare = await raw_calls(url, BARE, BARE_CALLS, warmup)
    sdk_tool, sdk_direct = await _through_the_sdk(url, sdk_calls, warmup)
    return Run(
        ours.tool_ms,
        ours.direct_ms,
        ours.server_cpu_ms,
        ours.direct_cpu_ms,
        sdk_tool,
        sdk_direct,
        ours.steal,
        bare_overhead_ms=median(bare.tool_ms) - median(bare.direct_ms),
        bare_cpu_overhead_ms=bare.server_cpu_ms - bare.direct_cpu_ms if bare.server_cpu_ms is not None else None,
    )


async def raw_calls(url: str, command: list[str], calls: int, warmup: int) -> Calls:
    env = {"PATH": os.environ["PATH"], "RETAB_API_KEY": KEY, "RETAB_API_BASE_URL": url}
    headers = {"Authorization": f"Bearer {KEY}"}
    tool: list[float] = []
    direct: list[float] = []
    direct_cpu = 0.0
    async with (
        await anyio.open_process(command, env=env, stderr=subprocess.DEVNULL) as process,
        httpx2.AsyncClient(base_url=url, headers=headers) as http,
    ):
        client = RawClient(process)
        await client.request("initialize", dict(INITIALIZE["params"]))
        await client.send(INITIALIZED)
        arguments = {"name": "get_experiment_run", "arguments": {"run_id": RUN_ID}}

        async def call() -> float:
            started = time.perf_counter()
            answer = await client.request("tools/call", arguments)
            assert not answer["result"].get("isError"), answer
            return (time.perf_counter() - started) * 1000

        async def get() -> tuple[float, float]:
            started, cpu = time.perf_counter(), time.process_time()
            response = await http.get(RUN_PATH)
            assert response.status_code == 200
            return (time.perf_counter() - started) * 1000, time.process_time() - cpu

        for _ in range(warmup):
            await call()
            await get()
        cpu_before, _ = schedstat(process.pid)
        steal = Steal()
        for i in range(calls):
            if i % 2:
                t = await call()
                d, c = await get()
            else:
                d, c = await get()
                t = await call()
            tool.append(t)
            direct.append(d)
            direct_cpu += c
        cpu_after, _ = schedstat(process.pid)
        steal.stop()
        await process.stdin.aclose()  # type: ignore[union-attr]
    server_cpu = (cpu_after - cpu_before) * 1000 / calls if cpu_before is not None and cpu_after is not None else None
    return Calls(tool, direct, server_cpu, direct_cpu * 1000 / calls, steal.share)


def _bare(run: Run) -> str:
    if run.bare_overhead_ms is None:
        return "-"
    cpu = f"{run.bare_cpu_overhead_ms:.2f} ms" if run.bare_cpu_overhead_ms is not None else "-"
    return f"{run.bare_overhead_ms:.2f} / {cpu}"


async def _through_the_sdk(url: str, calls: int, warmup: int) -> tuple[list[float], list[float]]:
    """The same calls through the SDK's stdio client (as a host may make them), with the GETs alternating."""
    env = {"PATH": os.environ["PATH"], "RETAB_API_KEY": KEY, "RETAB_API_BASE_URL": url}
    params = StdioServerParameters(command=sys.executable, args=["-m", "retab_mcp"], env=env)
    tool: list[float] = []
    direct: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    async with Client(params) as client, httpx2.AsyncClient(base_url=url, headers=headers) as http:
        for i in range(warmup + calls):
            started = time.perf_counter()
            result = await client.call_tool("get_experiment_run", {"run_id": RUN_ID})
            middle = time.perf_counter()
            response = await http.get(RUN_PATH)
            ended = time.perf_counter()
            assert not result.is_error and response.status_code == 200
            if i >= warmup:
                tool.append((middle - started) * 1000)
                direct.append((ended - middle) * 1000)
    return tool, direct


async def measure(calls: int = CALLS, warmup: int = WARMUP, runs: int = RUNS) -> Section:
    section = Section(
        "Per-call overhead",
        f"`get_experiment_run` over stdio (the real server process, a raw JSON-RPC client) against a direct "
        f"keep-alive `httpx2` GET of the same run; both reach the simulated API, served by uvicorn in a "
        f"process of its own on a loopback port. {runs} runs in a row, each of {warmup} warm-up calls and GETs, "
        f"then {calls} of each, alternating, which goes first swapping every turn. Overhead: p50 of the calls "
        "less p50 of the GETs (the goal's figure), the median and the trimmed mean (a tenth off each end) of "
        "the per-pair differences, and CPU: the server's per call less this process's per GET. Last column: "
        f"the same through the SDK's client ({SDK_CALLS} calls), which also checks each result against the "
        "tool's output schema (the host's work, no goal). 'Bare MCPServer, same GET': the overhead and CPU "
        f"overhead of the SDK's floor ({BARE_CALLS} calls to benchmarks/bare_get_server.py, a one-tool MCPServer "
        "making the same GET and returning its body; reference, no goal). Steal: the share of the machine's "
        "CPU a hypervisor gave its other guests meanwhile (load this machine's scheduler never sees).",
    )
    results: list[Run] = []
    async with simulated_api() as url:
        for _ in range(runs):
            results.append(await one_run(url, calls, warmup, SDK_CALLS))
    rows = []
    for number, run in enumerate(results, start=1):
        cpu = run.cpu_overhead_ms
        rows.append(
            (
                f"run {number}",
                f"{median(run.tool_ms):.2f} / {percentile(run.tool_ms, 99):.2f} ms",
                f"{median(run.direct_ms):.2f} / {percentile(run.direct_ms, 99):.2f} ms",
                f"**{run.overhead_ms:.2f} ms**",
                f"{run.paired_ms:.2f} / {run.trimmed_ms:.2f} ms",
                f"{cpu:.2f} ms ({run.server_cpu_ms:.2f} - {run.direct_cpu_ms:.2f})" if cpu is not None else "-",
                f"{run.sdk_overhead_ms:.2f} ms",
                _bare(run),
                f"{run.steal:.0%}" if run.steal is not None else "-",
            )
        )
    header = [
        "",
        "call p50 / p99",
        "GET p50 / p99",
        "overhead p50",
        "paired: median / trimmed mean",
        "CPU overhead (server - GET)",
        "through the SDK client",
        "bare MCPServer, same GET: p50 / CPU",
        "steal",
    ]
    section.add(*table(header, rows))
    overheads = [run.overhead_ms for run in results]
    bare = [o for run in results if (o := run.bare_overhead_ms) is not None]
    floor = f" A bare MCPServer making the same GET: {' and '.join(f'{o:.2f} ms' for o in bare)}." if bare else ""
    section.add(
        "",
        f"Between the runs: p50 overhead {' and '.join(f'{o:.2f} ms' for o in overheads)} "
        f"(spread {max(overheads) - min(overheads):.2f} ms).{floor}",
    )
    # A direct GET on loopback takes a millisecond or two; tens of ms mean a stall (Nagle and delayed
    # ACK), and then the difference says nothing about our overhead.
    problems = [
        baseline_problem(
            samples=len(run.direct_ms),
            min_samples=200,
            baseline=median(run.direct_ms),
            measured=median(run.tool_ms),
            plausible=(0.05, 10),
            unit=" ms",
        )
        for run in results
    ]
    goal_in_every_run(
        section,
        f"p50 overhead <= {GOAL_MS:.1f} ms, in each of {runs} runs in a row",
        overheads,
        GOAL_MS,
        "{:.2f} ms",
        beside="CPU " + " / ".join(f"{c:.2f} ms" for run in results if (c := run.cpu_overhead_ms) is not None),
        baseline_problem=next((p for p in problems if p), None),
    )
    return section


if __name__ == "__main__":

    async def _main() -> None:
        section = await measure()
        print(section.markdown())
        print("\n".join(table(["goal", "measured", "met"], section.goals, "llr")))

    anyio.run(_main)
