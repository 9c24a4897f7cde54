"""Capacity of one replica: `uv run python benchmarks/capacity.py` (about 6 minutes).

How many agents can wait at once on one replica, with every `wait_for_run` call answered within its
`timeout_s` + 1 s, and what CPU the replica spends on them. The replica runs as a team runs it
(tests/deployment.py: `--transport http --stateless`, sharing through Debian's redis-server), over the
simulated API in a process of its own. The load comes from `GENERATORS` processes of their own (this
file, run with `--generate`), never from the replica's process nor from one process alone.

Each level holds N agents, each waiting on a run of its own (no coalescing: the most work per agent), run
after run of `wait_for_run(timeout_s=20)` on a ten-minute run for `LEVEL_S` seconds; the runs are younger
than a minute while the replica's CPU is measured, so each is polled every 1.9 s (the most a run is).
Levels double until one misses, then one level halfway between the last held and the first missed; the
capacity is the largest level with no call late and no error ("at least" when no level missed). The
replica's CPU time and its time ready to run but without a CPU (the machine's load: everything here
shares its cores) come from the kernel's schedstat; CPU per 1,000 waits is the replica's cores used per
1,000 agents waiting at once.

Writes `benchmarks/capacity.md`, which `benchmarks/run.py` puts in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deployment import deployment, missing_parts

from benchmarks.startup import schedstat
from benchmarks.support import KEY, simulated_api_process, simulator_stats, table

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
TIMEOUT_S = 20.0
LATE_S = 1.0  # a call answered later than timeout_s + this is late
LEVEL_S = 50.0  # agents start calls for this long (the runs, created with the API, stay under a minute)
ARRIVALS_S = 5.0  # agents arrive spread over this long
LEVELS = (250, 500, 1000, 2000, 4000)  # then one between the last held and the first missed
GENERATORS = 3
RUN_S = 600  # the runs outlast every level
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


# The load generator: one process of GENERATORS, its agents' calls written to stdout as JSON lines.


async def generate(url: str, runs: list[str], start_at: float, level_s: float) -> None:
    calls: list[dict[str, Any]] = []
    limits = httpx2.Limits(max_connections=len(runs) + 10, max_keepalive_connections=len(runs) + 10)
    arrivals = random.Random(os.getpid())
    async with httpx2.AsyncClient(base_url=url, headers=HEADERS, timeout=TIMEOUT_S + 60, limits=limits) as http:
        await anyio.sleep(max(0.0, start_at - time.time()))
        ends_at = start_at + level_s

        async def agent(run_id: str) -> None:
            await anyio.sleep(arrivals.uniform(0, ARRIVALS_S))
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "wait_for_run", "arguments": {"run_id": run_id, "timeout_s": TIMEOUT_S}},
                }
            ).encode()
            while time.time() < ends_at:
                started = time.time()
                try:
                    reply = await http.post("/mcp", content=body)
                    outcome = "ok" if reply.status_code == 200 and '"isError":true' not in reply.text else "error"
                    if outcome == "error":
                        outcome = f"HTTP {reply.status_code}" if reply.status_code != 200 else "tool error"
                except httpx2.HTTPError as error:
                    outcome = type(error).__name__
                calls.append({"started": started, "took": time.time() - started, "outcome": outcome})
                if outcome != "ok":
                    await anyio.sleep(1.0)  # as a host would, not in a tight loop

        async with anyio.create_task_group() as group:
            for run_id in runs:
                group.start_soon(agent, run_id)
    sys.stdout.write("\n".join(json.dumps(c) for c in calls) + "\n")


# The levels


@dataclass
class Level:
    agents: int
    calls: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    replica_cpu: float = 0.0  # cores, over the steady part of the level
    replica_waiting: float = 0.0  # cores' worth of time ready but without a CPU
    others_cpu: dict[str, float] = field(default_factory=dict[str, float])  # cores: API, Redis, generators
    polls_per_s: float = 0.0
    peak_rss_mib: float = 0.0

    @property
    def late(self) -> int:
        return sum(1 for c in self.calls if c["took"] > TIMEOUT_S + LATE_S)

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if c["outcome"] != "ok")

    @property
    def held(self) -> bool:
        return self.late == 0 and self.errors == 0 and len(self.calls) >= self.agents

    @property
    def cpu_per_1000(self) -> float:
        return self.replica_cpu / (self.agents / 1000)


def _cpu(pids: list[int]) -> tuple[float, float]:
    total_run = total_wait = 0.0
    for pid in pids:
        on_cpu, waited = schedstat(pid)
        total_run += on_cpu or 0.0
        total_wait += waited or 0.0
    return total_run, total_wait


async def run_level(agents: int) -> Level:
    level = Level(agents)
    flags = ["--plain", "--add-runs", str(agents), "--run-seconds", str(RUN_S), "--documents", "100"]
    async with simulated_api_process(*flags) as (api_url, api):
        runs: list[str] = list((await simulator_stats(api_url))["added_runs"])
        api_pid = api.pid
        with tempfile.TemporaryDirectory() as work:
            async with deployment(Path(work), api_url, KEY, 1) as deployed:
                replica = deployed.replicas[0]
                url = f"http://127.0.0.1:{replica.port}"
                start_at = time.time() + 3.0  # the generators are up by then
                shares = [runs[i::GENERATORS] for i in range(GENERATORS)]
                outputs: list[bytes] = [b""] * GENERATORS
                generators: list[Any] = []

                async def one(index: int) -> None:
                    command = [sys.executable, str(HERE), "--generate", url, str(start_at)]
                    process = await anyio.open_process(command, stderr=subprocess.DEVNULL)
                    generators.append(process)
                    assert process.stdin is not None and process.stdout is not None
                    await process.stdin.send("\n".join(shares[index]).encode() + b"\n")
                    await process.stdin.aclose()
                    chunks = [chunk async for chunk in process.stdout]
                    outputs[index] = b"".join(chunks)
                    await process.wait()

                async with anyio.create_task_group() as group:
                    for index in range(GENERATORS):
                        group.start_soon(one, index)
                    # Steady part: from the last arrival to the level's end.
                    await anyio.sleep(max(0.0, start_at + ARRIVALS_S + 2 - time.time()))
                    before = _cpu([replica.process.pid]), time.perf_counter()
                    others = {"API": [api_pid], "Redis": [deployed.redis.pid] if deployed.redis else []}
                    others_before = {name: _cpu(pids)[0] for name, pids in others.items()}
                    gen_before = _cpu([p.pid for p in generators])[0]
                    requests_before = int((await simulator_stats(api_url))["requests"])
                    await anyio.sleep(max(1.0, start_at + LEVEL_S - time.time()))
                    (run_after, wait_after), ended = _cpu([replica.process.pid]), time.perf_counter()
                    (run_before, wait_before), began = before
                    span = ended - began
                    level.replica_cpu = (run_after - run_before) / span
                    level.replica_waiting = (wait_after - wait_before) / span
                    level.others_cpu = {
                        name: (_cpu(pids)[0] - others_before[name]) / span for name, pids in others.items()
                    }
                    level.others_cpu["generators"] = (_cpu([p.pid for p in generators])[0] - gen_before) / span
                    level.polls_per_s = (int((await simulator_stats(api_url))["requests"]) - requests_before) / span
                    level.peak_rss_mib = _peak_rss_mib(replica.process.pid)
                for output in outputs:
                    level.calls += [json.loads(line) for line in output.decode().splitlines() if line.strip()]
    return level


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(levels: list[Level], took_s: float) -> str:
    held = [level for level in levels if level.held]
    capacity = max((level.agents for level in held), default=0)
    bound = "" if any(not level.held and level.agents > capacity for level in levels) else "at least "
    rows = []
    for level in levels:
        took = [c["took"] for c in level.calls]
        rows.append(
            (
                level.agents,
                len(level.calls),
                f"{statistics.median(took):.2f} / {max(took):.2f} s" if took else "-",
                level.late,
                level.errors,
                f"{level.replica_cpu:.2f}",
                f"{level.cpu_per_1000:.2f}",
                f"{level.replica_waiting:.2f}",
                f"{level.polls_per_s:.0f}",
                " / ".join(f"{v:.2f}" for v in level.others_cpu.values()),
                f"{level.peak_rss_mib:.0f} MiB",
            )
        )
    # CPU per wait, from the levels held with the most agents (fixed costs weigh least there)
    steady = sorted(held, key=lambda level: level.agents)[-2:]
    per_1000 = statistics.median(level.cpu_per_1000 for level in steady) if steady else float("nan")
    missed = min((level for level in levels if not level.held), key=lambda level: level.agents, default=None)
    # Where the replica fell behind: its CPU then, and whether it lacked a CPU (the machine) or not (itself)
    limit = (
        f"{missed.agents} waits: {missed.replica_cpu:.2f} cores, {missed.replica_waiting:.2f} without a CPU"
        if missed is not None
        else "-"
    )
    goal = (
        "One replica holds "
        + (f"{bound}{capacity} waits at once" if capacity else "none of the levels")
        + f" with every call answered within timeout_s + {LATE_S:g} s"
    )
    facts = [
        ("capacity: agents waiting at once on one replica, every call within timeout_s + 1 s", f"{bound}{capacity}"),
        (
            "replica CPU per 1,000 waits (cores; median of the two largest levels held: "
            + ", ".join(str(level.agents) for level in steady)
            + ")",
            f"{per_1000:.2f}",
        ),
        ("the replica where it first fell behind (one process: one core at most)", limit),
        ("CPU per 1,000 wait_for_run calls of 20 s (CPU seconds)", f"{per_1000 * TIMEOUT_S:.1f}"),
        ("machine", f"{os.cpu_count()} CPUs, shared by the replica, the API, Redis and the generators"),
    ]
    return "\n".join(
        [
            "## Capacity of one replica",
            "",
            f"`uv run python benchmarks/capacity.py` on {datetime.now(UTC):%Y-%m-%d}, in {took_s:.0f} s: one "
            "`--stateless` replica sharing through Redis, over the simulated API in a process of its own; "
            f"the load from {GENERATORS} processes of its own. Each agent waits on a run of its own "
            f"(`wait_for_run(timeout_s={TIMEOUT_S:g})`, again and again for {LEVEL_S:g} s), each run younger "
            "than a minute (polled every 1.9 s). Late: answered after timeout_s + 1 s. CPU and 'without "
            "CPU' (ready to run, no core free: the machine's load) are the replica's, in cores, over the "
            "steady part of the level; 'others' are the API, Redis and the generators. "
            f"{goal}.",
            "",
            *table(
                [
                    "agents",
                    "calls",
                    "call median / max",
                    "late",
                    "errors",
                    "replica CPU",
                    "per 1,000 waits",
                    "without CPU",
                    "API polls/s",
                    "others: API / Redis / generators",
                    "peak RSS",
                ],
                rows,
            ),
            "",
            *table(["what", "measured"], facts, "lr"),
            "",
        ]
    )


async def main(levels: tuple[int, ...]) -> None:
    missing = missing_parts()
    if missing:
        raise SystemExit(missing)
    started = time.perf_counter()
    done: list[Level] = []
    queue, halfway = list(levels), False
    while queue:
        agents = queue.pop(0)
        print(f"--- {agents} agents", file=sys.stderr, flush=True)
        level = await run_level(agents)
        done.append(level)
        print(
            f"    calls {len(level.calls)}, late {level.late}, errors {level.errors}, "
            f"replica {level.replica_cpu:.2f} cores (waiting {level.replica_waiting:.2f})",
            file=sys.stderr,
            flush=True,
        )
        if not level.held:
            held = [d.agents for d in done if d.held]
            if halfway or not held:
                break
            queue, halfway = [(max(held) + agents) // 2], True
    text = report(done, time.perf_counter() - started)
    print(text)
    (ROOT / "benchmarks" / "capacity.md").write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="agents at each level, in order")
    parser.add_argument("--generate", nargs=2, metavar=("URL", "START_AT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        url, start_at = args.generate
        run_ids = [line.strip() for line in sys.stdin if line.strip()]
        anyio.run(generate, url, run_ids, float(start_at), LEVEL_S)
    else:
        anyio.run(main, tuple(int(n) for n in args.levels.split(",")))
