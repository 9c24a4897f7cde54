"""Benchmarks of retab-mcp: wait efficiency, result sizes, start-up. Numbers go to BENCHMARKS.md.

    uv run python benchmarks/bench.py          # virtual-clock runs, sizes, start-up (about 15 s)
    uv run python benchmarks/bench.py --real   # also one 40 s run in real time (about 45 s more)

Each speed figure is compared with a baseline measured in the same run:
- waiting: Retab's CLI schedule (a poll every 2 s) over the same simulated runs, through the same code;
- sizes: the raw API JSON of the same run, which a server that dumps the API would send;
- start-up: importing the MCP SDK alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from retab_mcp.clock import Clock, RealClock, VirtualClock
from retab_mcp.config import Settings
from retab_mcp.server import build_server
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.scenario import Outcome
from retab_mcp.waiting import PollSchedule

SETTINGS = Settings(api_key="sk_test_bench", base_url="http://retab.bench")
CLI_SCHEDULE = PollSchedule(young_delay_s=2.0, max_delay_s=2.0, min_delay_s=2.0)  # every 2 s, whatever happens
OURS = PollSchedule()
PHASES = (0.0, 0.5, 1.0, 1.5)  # when the agent starts waiting, seconds after the run was created


@dataclass(frozen=True)
class Scenario:
    name: str
    duration_s: float
    documents: int
    outcome: Outcome = "completed"
    end_fraction: float = 1.0


SCENARIOS = [
    Scenario("20 s, 5 docs, completes", 20, 5),
    Scenario("40 s, 12 docs, completes", 40, 12),
    Scenario("40 s, 12 docs, fails at 5 %", 40, 12, "error", 0.05),
    Scenario("40 s, 12 docs, fails at 45 %", 40, 12, "error", 0.45),
    Scenario("2 min, 40 docs, completes", 120, 40),
    Scenario("2 min, 40 docs, cancelled at 30 %", 120, 40, "cancelled", 0.3),
    Scenario("10 min, 100 docs, completes", 600, 100),
    Scenario("10 min, 100 docs, fails at 60 %", 600, 100, "error", 0.6),
]


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def size_of(result: CallToolResult) -> tuple[int, int]:
    structured = json.dumps(result.structured_content, separators=(",", ":"))
    return len(text_of(result).encode()), len(structured.encode())


async def wait_like_an_agent(
    scenario: Scenario, schedule: PollSchedule, phase: float, clock: Clock, sim: SimulatedRetab | None = None
) -> tuple[int, float, int]:
    """Create a run, then call wait_for_run (45 s) until it finishes. Returns requests, reaction, calls."""
    sim = sim or SimulatedRetab(clock=clock)
    run_id = sim.add_run(
        duration_s=scenario.duration_s,
        documents=scenario.documents,
        outcome=scenario.outcome,
        end_fraction=scenario.end_fraction,
    )
    if isinstance(clock, VirtualClock):
        clock.advance(phase)
    before = len(sim.requests)
    server = build_server(SETTINGS, transport=httpx2.ASGITransport(app=sim), clock=clock, schedule=schedule)
    calls = 0
    async with Client(server) as client:
        while True:
            calls += 1
            result = await client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 45})
            if (result.structured_content or {}).get("finished"):
                break
    run = sim.world.run(run_id)
    assert run is not None
    ended = run.ended_t(clock.now())
    assert ended is not None
    return len(sim.requests) - before, clock.now() - ended, calls


async def bench_waiting() -> list[str]:
    rows = [
        "| run | CLI: requests | ours: requests | ratio | CLI: reaction mean / max | ours: reaction mean / max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = {"cli": 0, "ours": 0}
    for scenario in SCENARIOS:
        results: dict[str, list[tuple[int, float, int]]] = {"cli": [], "ours": []}
        for phase in PHASES:
            for name, schedule in (("cli", CLI_SCHEDULE), ("ours", OURS)):
                results[name].append(await wait_like_an_agent(scenario, schedule, phase, VirtualClock(1_000.0)))
        cli_req = statistics.mean(r[0] for r in results["cli"])
        our_req = statistics.mean(r[0] for r in results["ours"])
        totals["cli"] += sum(r[0] for r in results["cli"])
        totals["ours"] += sum(r[0] for r in results["ours"])

        def reaction(name: str, results: dict[str, list[tuple[int, float, int]]] = results) -> str:
            values = [r[1] for r in results[name]]
            return f"{statistics.mean(values):.2f} s / {max(values):.2f} s"

        rows.append(
            f"| {scenario.name} | {cli_req:.1f} | {our_req:.1f} | {our_req / cli_req:.2f} | "
            f"{reaction('cli')} | {reaction('ours')} |"
        )
    rows.append(f"| **all runs** | {totals['cli']} | {totals['ours']} | **{totals['ours'] / totals['cli']:.2f}** | | |")
    return rows


async def bench_real_40s() -> list[str]:
    clock = RealClock()
    rows = ["| schedule | requests | reaction (wall clock) | wait calls |", "|---|---:|---:|---:|"]
    for name, schedule in (("CLI (2 s)", CLI_SCHEDULE), ("ours", OURS)):
        sim = SimulatedRetab(clock=clock)
        requests, reaction, calls = await wait_like_an_agent(SCENARIOS[1], schedule, 0.0, clock, sim)
        rows.append(f"| {name} | {requests} | {reaction:.2f} s | {calls} |")
    return rows


async def bench_sizes() -> list[str]:
    clock = VirtualClock(1_000.0)
    sim = SimulatedRetab(clock=clock)
    server = build_server(SETTINGS, transport=httpx2.ASGITransport(app=sim), clock=clock)
    rows = [
        "| result | text | structuredContent (compact JSON) | total | budget | raw API JSON of the run | total / raw |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    async with (
        Client(server) as client,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=sim),
            base_url="http://retab.bench",
            headers={"Authorization": "Bearer sk_test_bench"},
        ) as raw,
    ):
        cases = [
            ("completed run (get_experiment_run)", "get_experiment_run", "latest", {}, 900),
            ("failed run, 50 KB trace (get_experiment_run)", "get_experiment_run", "failed", {}, 3000),
            ("unfinished wait (wait_for_run, 10 s)", "wait_for_run", "long", {"timeout_s": 10}, 700),
            ("finished wait (wait_for_run)", "wait_for_run", "latest", {}, None),
        ]
        for label, tool, role, extra, budget in cases:
            result = await client.call_tool(tool, {"run_id": sim.run_ids[role], **extra})
            text, structured = size_of(result)
            body = (await raw.get(f"/v1/workflows/experiments/runs/{sim.run_ids[role]}")).content
            total = text + structured
            rows.append(
                f"| {label} | {text} | {structured} | {total} | {budget or '-'} | {len(body)} | "
                f"{total / len(body):.2f} |"
            )
    return rows


async def bench_startup(repeats: int = 5) -> list[str]:
    async def spawn_and_list() -> float:
        started = time.perf_counter()
        params = StdioServerParameters(command=sys.executable, args=["-m", "retab_mcp", "--demo"])
        async with Client(params, mode="legacy") as client:
            await client.list_tools()
            return time.perf_counter() - started

    async def import_sdk() -> float:
        started = time.perf_counter()
        await anyio.run_process([sys.executable, "-c", "import mcp.server.mcpserver"])
        return time.perf_counter() - started

    ours = statistics.median([await spawn_and_list() for _ in range(repeats)])
    base = statistics.median([await import_sdk() for _ in range(repeats)])
    return [
        "| measure | median of 5 |",
        "|---|---:|",
        f"| spawn `retab-mcp --demo` over stdio → tools/list answered | {ours * 1000:.0f} ms |",
        f"| baseline: `python -c 'import mcp.server.mcpserver'` | {base * 1000:.0f} ms |",
        f"| ratio | {ours / base:.2f} |",
    ]


async def main(real: bool) -> None:
    sections: list[tuple[str, list[str]]] = [
        (
            "Waiting: requests and reaction time (virtual clock; mean over 4 start phases)",
            await bench_waiting(),
        ),
        ("Result sizes (bytes)", await bench_sizes()),
        ("Start-up", await bench_startup()),
    ]
    if real:
        sections.append(("One 40 s run in real time", await bench_real_40s()))
    for title, rows in sections:
        print(f"\n### {title}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="also wait on one 40 s run in real time")
    anyio.run(main, parser.parse_args().real)
