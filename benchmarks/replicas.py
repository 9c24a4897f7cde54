"""Replicas behind nginx sharing one poller per run: `uv run python benchmarks/replicas.py` (about 5 minutes).

Debian's redis-server and nginx and `--stateless` replicas (tests/deployment.py), over the simulated API
on a loopback port. 1,000 agents wait on 100 runs (10 on each, `wait_for_run` with timeout_s 20, called
again until the run ends), all through nginx, in four phases, each with runs of its own:
- one replica alone: the baseline, Retab API requests per run;
- three replicas: requests per run against the baseline (goal <= 1.2x), p50/p99 of `get_experiment_run`
  through nginx while the waits go on, peak RSS per replica, Redis commands per poll;
- three replicas, the one holding the most leases killed halfway: each call's time against timeout_s + 2 s
  (an agent retries once on a connection error, as hosts do), and how soon each run was polled again;
- three replicas, Redis stopped halfway: tool errors (goal: none) and requests per run (at most one
  poller per replica: 3x the baseline).
It writes `benchmarks/replicas.md`, which `benchmarks/run.py` puts in BENCHMARKS.md.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deployment import Deployment, deployment, missing_parts

from benchmarks.support import KEY, table
from retab_mcp.clock import RealClock
from retab_mcp.simulator.app import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.watch.sharing import LEASE_MARGIN_S

ROOT = Path(__file__).resolve().parents[1]
RUNS = 100
AGENTS_PER_RUN = 10
RUN_S = 40.0
WAIT_S = 20.0
PROBES = 300
RUN_PATH = "/v1/workflows/experiments/runs/"
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


@dataclass
class Phase:
    name: str
    runs: list[str] = field(default_factory=list[str])
    attempts: list[tuple[float, str]] = field(default_factory=list[tuple[float, str]])  # seconds, outcome
    probes: list[float] = field(default_factory=list[float])
    polls: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    peak_rss_mib: list[float] = field(default_factory=list[float])
    redis_commands: int = 0
    event_t: float | None = None  # when the replica was killed, or Redis stopped

    @property
    def per_run(self) -> float:
        return statistics.mean(len(self.polls.get(r, [])) for r in self.runs)

    def outcomes(self) -> Counter[str]:
        return Counter(outcome for _, outcome in self.attempts)


def call(name: str, arguments: dict[str, Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    ).encode()


def answer_of(body: str) -> dict[str, Any]:
    for line in body.splitlines():
        if line.startswith("data: "):
            return json.loads(line[6:])
    return json.loads(body)


async def agent(http: httpx2.AsyncClient, run_id: str, phase: Phase) -> None:
    """Wait until the run ends; on a connection error (a replica gone), try the call once more."""
    finished = False
    while not finished:
        for attempt in range(2):
            started = time.perf_counter()
            try:
                reply = await http.post("/mcp", content=call("wait_for_run", {"run_id": run_id, "timeout_s": WAIT_S}))
                if reply.status_code >= 500:
                    raise httpx2.RemoteProtocolError(f"HTTP {reply.status_code}")
                result = answer_of(reply.text)["result"]
            except (httpx2.TransportError, ValueError, KeyError) as error:
                phase.attempts.append(
                    (time.perf_counter() - started, "retried" if attempt == 0 else type(error).__name__)
                )
                continue
            outcome = "tool error" if result.get("isError") else "ok"
            phase.attempts.append((time.perf_counter() - started, outcome))
            finished = outcome != "ok" or bool((result.get("structuredContent") or {}).get("finished"))
            break
        else:
            return  # both attempts failed: counted, and this agent stops


async def probe(http: httpx2.AsyncClient, run_id: str, phase: Phase) -> None:
    for _ in range(PROBES):
        started = time.perf_counter()
        await http.post("/mcp", content=call("get_experiment_run", {"run_id": run_id}))
        phase.probes.append(time.perf_counter() - started)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def redis_commands(deployed: Deployment) -> int:
    from redis.asyncio import Redis

    redis: Any = Redis(unix_socket_path=str(deployed.directory / "redis.sock"))
    try:
        return int((await redis.info("stats"))["total_commands_processed"])
    except Exception:  # Redis stopped in this phase: its count ends with it
        return 0
    finally:
        await redis.aclose()


async def run_phase(name: str, replicas: int, event: str | None = None) -> Phase:
    phase = Phase(name)
    sim = SimulatedRetab(clock=RealClock())
    with tempfile.TemporaryDirectory() as work:
        async with anyio.create_task_group() as group:
            api = Loopback(sim, group)
            api.start()
            async with deployment(Path(work), api.url, KEY, replicas) as deployed:
                phase.runs = [sim.add_run(duration_s=RUN_S, documents=20, queue_s=1) for _ in range(RUNS)]
                before = await redis_commands(deployed)
                limits = httpx2.Limits(max_connections=RUNS * AGENTS_PER_RUN + 50, max_keepalive_connections=200)
                async with (
                    deployed.http(timeout=WAIT_S + 30, headers=HEADERS, limits=limits) as http,
                    anyio.create_task_group() as agents,
                ):
                    for run_id in phase.runs:
                        for _ in range(AGENTS_PER_RUN):
                            agents.start_soon(agent, http, run_id, phase)
                    agents.start_soon(probe, http, phase.runs[0], phase)
                    if event is not None:
                        await anyio.sleep(RUN_S / 2)
                        phase.event_t = sim.clock.now()
                        if event == "kill":
                            deployed.kill(await busiest(deployed))
                        else:
                            await deployed.stop_redis()
                phase.redis_commands = max(0, await redis_commands(deployed) - before)
                phase.peak_rss_mib = [
                    peak_rss_mib(r.process.pid) for r in deployed.replicas if r.process.returncode is None
                ]
            await api.stop()
            group.cancel_scope.cancel()
    for request in sim.requests:
        if request.method == "GET" and request.path.startswith(RUN_PATH):
            phase.polls.setdefault(request.path[len(RUN_PATH) :], []).append(request.t)
    return phase


async def busiest(deployed: Deployment) -> Any:
    """The replica that took the most leases: killing it strands the most runs."""
    counts = [(r.counter(await r.metrics(), "retab_mcp_lease_changes_total"), r) for r in deployed.replicas]
    return max(counts, key=lambda pair: pair[0])[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def resumed(phase: Phase) -> tuple[int, int, float]:
    """Runs still going at the kill that were polled again within their widest gap before it plus the lease
    margin (one poll interval); how many such runs; the longest silence after the kill."""
    assert phase.event_t is not None
    within, going, longest = 0, 0, 0.0
    for run_id in phase.runs:
        polls = phase.polls.get(run_id, [])
        before = [t for t in polls if t < phase.event_t]
        after = [t for t in polls if t >= phase.event_t]
        if len(before) < 2 or not after:
            continue
        going += 1
        widest = max(b - a for a, b in itertools.pairwise(before))
        silence = after[0] - before[-1]
        longest = max(longest, silence)
        within += silence <= widest + LEASE_MARGIN_S
    return within, going, longest


def report(alone: Phase, shared: Phase, killed: Phase, no_redis: Phase, took_s: float) -> str:
    baseline_ok = 2 <= alone.per_run <= RUN_S * 2  # at least start and end; at most twice a second
    ratio = shared.per_run / alone.per_run
    polls = sum(len(v) for v in shared.polls.values())
    within, going, longest = resumed(killed)
    slowest_killed = max(t for t, _ in killed.attempts)
    no_redis_ratio = no_redis.per_run / alone.per_run
    errors = no_redis.outcomes().get("tool error", 0) + sum(
        n for k, n in no_redis.outcomes().items() if k not in ("ok", "tool error")
    )

    def goal(met: bool) -> str:
        return "invalid (baseline)" if not baseline_ok else ("yes" if met else "no")

    goals = [
        (
            "API requests per run, 3 replicas / 1 alone",
            f"{ratio:.2f}x ({shared.per_run:.1f} / {alone.per_run:.1f})",
            "<= 1.2x",
            goal(ratio <= 1.2),
        ),
        (
            "slowest call when a replica is killed",
            f"{slowest_killed:.1f} s",
            f"<= {WAIT_S + 2:g} s",
            goal(slowest_killed <= WAIT_S + 2),
        ),
        (
            "runs polled again within one interval of the kill",
            f"{within} of {going} (longest silence {longest:.1f} s)",
            "all",
            goal(within == going and going > 0),
        ),
        ("tool errors with Redis stopped", str(errors), "0", goal(errors == 0)),
        (
            "API requests per run with Redis stopped / 1 alone",
            f"{no_redis_ratio:.2f}x",
            "<= 3x (one poller per replica)",
            goal(no_redis_ratio <= 3.0),
        ),
    ]
    facts = [
        ("agents (waiting sessions) per phase", RUNS * AGENTS_PER_RUN),
        ("runs per phase, each", f"{RUNS}, {RUN_S:g} s, 20 documents"),
        (
            "get_experiment_run through nginx under load, p50 / p99",
            f"{pct(shared.probes, 0.5) * 1000:.0f} / {pct(shared.probes, 0.99) * 1000:.0f} ms",
        ),
        ("same, one replica alone", f"{pct(alone.probes, 0.5) * 1000:.0f} / {pct(alone.probes, 0.99) * 1000:.0f} ms"),
        ("wait_for_run calls: 1 alone / 3 replicas", f"{len(alone.attempts)} / {len(shared.attempts)}"),
        ("peak RSS per replica (3 replicas)", ", ".join(f"{m:.0f} MiB" for m in shared.peak_rss_mib)),
        ("peak RSS, one replica alone", ", ".join(f"{m:.0f} MiB" for m in alone.peak_rss_mib)),
        ("Redis commands per API poll (3 replicas)", f"{shared.redis_commands / max(polls, 1):.2f}"),
        ("calls cut by the kill, then retried", killed.outcomes().get("retried", 0)),
        ("outcomes with a replica killed", dict(killed.outcomes())),
        ("outcomes with Redis stopped", dict(no_redis.outcomes())),
    ]
    return "\n".join(
        [
            "## Replicas behind nginx, sharing one poller per run",
            "",
            f"`uv run python benchmarks/replicas.py` on {datetime.now(UTC):%Y-%m-%d}, in {took_s:.0f} s: Debian's "
            "nginx and redis-server and `--stateless` replicas on this machine, over the simulated API on loopback. "
            "The "
            f"baseline (one replica alone, same load) is {'plausible' if baseline_ok else 'IMPLAUSIBLE'}: "
            f"{alone.per_run:.1f} API requests per {RUN_S:g}-second run.",
            "",
            *table(["goal", "measured", "target", "met"], goals, "lllr"),
            "",
            *table(["what", "measured"], facts, "lr"),
            "",
        ]
    )


async def main() -> None:
    missing = missing_parts()
    if missing:
        raise SystemExit(missing)
    started = time.perf_counter()
    alone = await run_phase("one replica alone", 1)
    shared = await run_phase("three replicas", 3)
    killed = await run_phase("three replicas, one killed", 3, event="kill")
    no_redis = await run_phase("three replicas, Redis stopped", 3, event="redis")
    text = report(alone, shared, killed, no_redis, time.perf_counter() - started)
    print(text)
    (ROOT / "benchmarks" / "replicas.md").write_text(text)


if __name__ == "__main__":
    anyio.run(main)
