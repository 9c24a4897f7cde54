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

import json
import random
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

from benchmarks.support import KEY, simulated_api, simulator_stats, table
from retab_mcp.watch.sharing import LEASE_MARGIN_S

ROOT = Path(__file__).resolve().parents[1]
RUNS = 100
AGENTS_PER_RUN = 10
RUN_S = 40.0
WAIT_S = 20.0
PROBES = 300
ARRIVALS_S = 5.0  # agents arrive spread over this long
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


@dataclass
class Phase:
    name: str
    runs: list[str] = field(default_factory=list[str])
    attempts: list[tuple[float, str, float]] = field(
        default_factory=list[tuple[float, str, float]]
    )  # s, outcome, start
    next_poll_due: dict[str, float] = field(default_factory=dict[str, float])  # at the kill: when each lease ends
    probes: list[float] = field(default_factory=list[float])
    polls: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    peak_rss_mib: list[float] = field(default_factory=list[float])
    redis_commands: int = 0
    event_t: float | None = None  # when the replica was killed, or Redis stopped (the API's clock)
    event_perf: float = 0.0  # the same moment, by this process's perf_counter
    server_waits: list[float] = field(default_factory=list[float])  # wait_for_run durations, as replicas log them

    @property
    def per_run(self) -> float:
        return statistics.mean(len(self.polls.get(r, [])) for r in self.runs)

    def outcomes(self) -> Counter[str]:
        return Counter(outcome for _, outcome, _ in self.attempts)


def _json_line(line: str) -> dict[str, Any]:
    try:
        parsed = json.loads(line) if line.startswith("{") else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def call(name: str, arguments: dict[str, Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    ).encode()


def answer_of(body: str) -> dict[str, Any]:
    for line in body.splitlines():
        if line.startswith("data: "):
            return json.loads(line[6:])
    return json.loads(body)


async def agent(http: httpx2.AsyncClient, run_id: str, phase: Phase, start_in_s: float) -> None:
    """Wait until the run ends; on a connection error (a replica gone), try the call once more. Agents
    arrive over the first seconds, as sessions do, not all in one millisecond."""
    await anyio.sleep(start_in_s)
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
                outcome = "retried" if attempt == 0 else type(error).__name__
                phase.attempts.append((time.perf_counter() - started, outcome, started))
                continue
            outcome = "tool error" if result.get("isError") else "ok"
            phase.attempts.append((time.perf_counter() - started, outcome, started))
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
    flags = ["--add-runs", str(RUNS), "--run-seconds", f"{RUN_S:g}", "--documents", "20"]
    # The API in a process of its own, as Retab is: this one is busy enough being a thousand agents.
    async with simulated_api(*flags) as api_url:
        phase.runs = list((await simulator_stats(api_url))["added_runs"])
        with tempfile.TemporaryDirectory() as work:
            async with deployment(Path(work), api_url, KEY, replicas, env={"RETAB_MCP_CALL_LOG": "1"}) as deployed:
                before = await redis_commands(deployed)
                limits = httpx2.Limits(max_connections=RUNS * AGENTS_PER_RUN + 50, max_keepalive_connections=200)
                async with (
                    deployed.http(timeout=WAIT_S + 30, headers=HEADERS, limits=limits) as http,
                    anyio.create_task_group() as agents,
                ):
                    arrivals = random.Random(name)
                    for run_id in phase.runs:
                        for _ in range(AGENTS_PER_RUN):
                            agents.start_soon(agent, http, run_id, phase, arrivals.uniform(0, ARRIVALS_S))
                    agents.start_soon(probe, http, phase.runs[0], phase)
                    if event is not None:
                        await anyio.sleep(RUN_S / 2)
                        now = float((await simulator_stats(api_url))["now"])
                        victim = await busiest(deployed) if event == "kill" else None
                        if victim is not None:
                            phase.next_poll_due = await leases_of(deployed, victim, phase.runs, now)
                        phase.event_t, phase.event_perf = now, time.perf_counter()
                        if victim is not None:
                            deployed.kill(victim)
                        else:
                            await deployed.stop_redis()
                phase.redis_commands = max(0, await redis_commands(deployed) - before)
                phase.peak_rss_mib = [
                    peak_rss_mib(r.process.pid) for r in deployed.replicas if r.process.returncode is None
                ]
                phase.server_waits = [
                    line["duration_ms"] / 1000
                    for r in deployed.replicas
                    for line in map(_json_line, r.stderr.decode(errors="replace").splitlines())
                    if line.get("tool") == "wait_for_run"
                ]
        phase.polls = {k: list(v) for k, v in (await simulator_stats(api_url))["poll_times"].items()}
    return phase


async def leases_of(deployed: Deployment, victim: Any, runs: list[str], now: float) -> dict[str, float]:
    """For each run whose poll the victim holds, when its lease ends (when its next poll was due)."""
    from redis.asyncio import Redis

    redis: Any = Redis(unix_socket_path=str(deployed.directory / "redis.sock"), decode_responses=True)
    due: dict[str, float] = {}
    try:
        for key in await redis.keys("retab-mcp:lease:*"):
            run_id = key.rsplit(":", 1)[1]
            if run_id in runs and await redis.get(key) == f"replica-{victim.index}":
                due[run_id] = now + max(0, await redis.pttl(key)) / 1000
    finally:
        await redis.aclose()
    return due


async def busiest(deployed: Deployment) -> Any:
    """The replica that took the most leases: killing it strands the most runs."""
    counts = [(r.counter(await r.metrics(), "retab_mcp_lease_changes_total"), r) for r in deployed.replicas]
    return max(counts, key=lambda pair: pair[0])[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def resumed(phase: Phase) -> tuple[int, int, float]:
    """Of the runs the killed replica was polling, how many another replica polled within LEASE_MARGIN_S + 1 s
    of when the dead one's next poll was due (the end of its lease: within one poll interval); how many it
    held; the latest takeover past that moment."""
    assert phase.event_t is not None
    within, held, latest = 0, 0, 0.0
    for run_id, due in phase.next_poll_due.items():
        after = [t for t in phase.polls.get(run_id, []) if t >= phase.event_t]
        if not after:
            continue  # ended before its next poll was due
        held += 1
        late = after[0] - due
        latest = max(latest, late)
        within += late <= LEASE_MARGIN_S + 1.0
    return within, held, latest


def report(alone: Phase, shared: Phase, killed: Phase, no_redis: Phase, took_s: float) -> str:
    baseline_ok = 2 <= alone.per_run <= RUN_S * 2  # at least start and end; at most twice a second
    ratio = shared.per_run / alone.per_run
    polls = sum(len(v) for v in shared.polls.values())
    within, going, longest = resumed(killed)  # longest: the latest takeover
    slowest_killed = max(t for t, _, _ in killed.attempts)
    slowest = max(killed.attempts)
    slowest_said = f"{slowest[1]}, started {slowest[2] - killed.event_perf:+.1f} s from the kill"
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
            f"{slowest_killed:.1f} s ({slowest_said})",
            f"<= {WAIT_S + 2:g} s",
            goal(slowest_killed <= WAIT_S + 2),
        ),
        (
            "runs of the killed replica polled again within one interval",
            f"{within} of {going} (at most {longest:+.1f} s past the poll it missed)",
            f"all, within {LEASE_MARGIN_S + 1:g} s of that poll",
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
        ("agents (waiting sessions) per phase", f"{RUNS * AGENTS_PER_RUN}, arriving over {ARRIVALS_S:g} s"),
        ("runs per phase, each", f"{RUNS}, {RUN_S:g} s, 20 documents"),
        (
            "get_experiment_run through nginx under load, p50 / p99",
            f"{pct(shared.probes, 0.5) * 1000:.0f} / {pct(shared.probes, 0.99) * 1000:.0f} ms",
        ),
        ("same, one replica alone", f"{pct(alone.probes, 0.5) * 1000:.0f} / {pct(alone.probes, 0.99) * 1000:.0f} ms"),
        ("wait_for_run calls: 1 alone / 3 replicas", f"{len(alone.attempts)} / {len(shared.attempts)}"),
        ("peak RSS per replica (3 replicas)", ", ".join(f"{m:.0f} MiB" for m in shared.peak_rss_mib)),
        ("peak RSS, one replica alone", ", ".join(f"{m:.0f} MiB" for m in alone.peak_rss_mib)),
        (
            "slowest wait_for_run as the replicas timed it (killed / 3 replicas / alone)",
            " / ".join(f"{max(p.server_waits, default=float('nan')):.1f} s" for p in (killed, shared, alone)),
        ),
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
