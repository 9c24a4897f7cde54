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


def worst_world(sim: SimulatedRetab) -> dict[str, str]:
    """Runs built to make results as large as they can get: long names and messages, many failures."""
    errors = {i: (f"{'x' * 3000} distinct failure {i}", "E" * 300) for i in range(0, 100, 2)}
    failing = sim.add_run(
        documents=100,
        duration_s=10,
        queue_s=1,
        outcome="error",
        end_fraction=0.9,
        document_errors=errors,
        parent_run_id=sim.run_ids["latest"],
    )
    run = sim.world.run(failing)
    assert run is not None
    run.experiment.documents = [
        (d, "long-name-" * 30 + f"{i}.pdf") for i, (d, _) in enumerate(run.experiment.documents)
    ]
    run.error_message = "m" * 10_000
    run.stack_trace = "\n".join("y" * 500 for _ in range(2000))
    many = [sim.add_run(duration_s=30 + i, documents=5) for i in range(60)]
    sim.clock.advance(20)  # type: ignore[attr-defined]
    return {"failing": failing, "running": many[-1], **{f"run{i}": r for i, r in enumerate(many[:20])}}


async def bench_sizes() -> list[str]:
    """Every tool's result, typical (default arguments, the seeded scenario) and worst case."""
    clock = VirtualClock(1_000.0)
    sim = SimulatedRetab(clock=clock)
    server = build_server(SETTINGS, transport=httpx2.ASGITransport(app=sim), clock=clock)
    rows = [
        "| tool | case | text | structuredContent (compact JSON) | total | budget | raw API JSON | total / raw |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ids = sim.run_ids
    async with (
        Client(server) as client,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=sim),
            base_url="http://retab.bench",
            headers={"Authorization": "Bearer sk_test_bench"},
        ) as raw,
    ):
        worst = worst_world(sim)

        async def raw_size(*paths: str) -> int:
            return sum([len((await raw.get(f"/v1/workflows/experiments{p}")).content) for p in paths])

        latest, failed, failing = ids["latest"], ids["failed"], worst["failing"]
        cases: list[tuple[str, str, dict[str, object], int | None, list[str]]] = [
            ("get_experiment_run", "completed run", {"run_id": latest}, 900, [f"/runs/{latest}"]),
            ("get_experiment_run", "failed run, 50 KB trace", {"run_id": failed}, 3000, [f"/runs/{failed}"]),
            ("get_experiment_run", "worst: 1 MB trace, 10 KB message", {"run_id": failing}, 3000, [f"/runs/{failing}"]),
            (
                "wait_for_run",
                "unfinished (10 s)",
                {"run_id": ids["long"], "timeout_s": 10},
                700,
                [f"/runs/{ids['long']}"],
            ),
            ("wait_for_run", "finished", {"run_id": latest}, 900, [f"/runs/{latest}"]),
            (
                "wait_for_runs",
                "5 runs, 1 s",
                {"run_ids": [worst[f"run{i}"] for i in range(5)], "timeout_s": 1},
                2_500,
                [f"/runs/{worst[f'run{i}']}" for i in range(5)],
            ),
            (
                "wait_for_runs",
                "worst: 20 runs",
                {"run_ids": [worst[f"run{i}"] for i in range(19)] + [failing], "timeout_s": 1},
                5_200,
                [f"/runs/{worst[f'run{i}']}" for i in range(19)] + [f"/runs/{failing}"],
            ),
            ("list_experiment_runs", "10 rows", {}, 2600, ["/runs?limit=10"]),
            ("list_experiment_runs", "worst: 25 rows", {"limit": 25}, 6_000, ["/runs?limit=25"]),
            (
                "list_experiment_run_results",
                "20 rows",
                {"run_id": latest},
                3000,
                [f"/results?run_id={latest}&limit=20"],
            ),
            (
                "list_experiment_run_results",
                "worst: 50 rows asked, long names",
                {"run_id": failing, "limit": 50},
                8_000,
                [f"/results?run_id={failing}&limit=50"],
            ),
            ("get_experiment_run_metrics", "summary", {"run_id": latest}, 2_000, [f"/metrics?run_id={latest}"]),
            (
                "get_experiment_run_metrics",
                "worst: 90 documents, long names",
                {"run_id": failing},
                2_000,
                [f"/metrics?run_id={failing}"],
            ),
            (
                "triage_experiment_run",
                "completed, score dropped",
                {"run_id": latest},
                4096,
                [f"/runs/{latest}", f"/results?run_id={latest}&limit=1000", f"/metrics?run_id={latest}"],
            ),
            (
                "triage_experiment_run",
                "failed, 50 KB trace",
                {"run_id": failed},
                4096,
                [f"/runs/{failed}", f"/results?run_id={failed}&limit=1000", f"/metrics?run_id={failed}"],
            ),
            (
                "triage_experiment_run",
                "worst: 46 failures, long everything",
                {"run_id": failing},
                4096,
                [f"/runs/{failing}", f"/results?run_id={failing}&limit=1000", f"/metrics?run_id={failing}"],
            ),
        ]
        for tool, case, arguments, budget, raw_paths in cases:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, (tool, text_of(result))
            text, structured = size_of(result)
            body = await raw_size(*raw_paths)
            total = text + structured
            rows.append(
                f"| {tool} | {case} | {text} | {structured} | {total} | {budget or '-'} | {body} | {total / body:.2f} |"
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
