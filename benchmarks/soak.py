"""The soak: `uv run python benchmarks/soak.py [--minutes 15]`.

A real `retab-mcp --transport http` process, with a token, against the simulated API on a loopback port,
under mixed traffic for the whole time: agents waiting on runs, agents reading (get, list, metrics,
triage), bad input (unknown tools, bad ids, malformed posts, a wrong token or Host, half-sent requests),
session churn (sessions opened and closed, and sessions opened and abandoned), and the API failing (503s
for 10 s of every 60 s) and recovering. It samples the server's RSS every 10 s and checks: RSS at the end
within 20 % of RSS after the warm-up (the first 2 minutes), no traceback on stderr, neither secret in any
answer or log line, and every call answered within its bound (a wait within timeout_s + 5 s, any other
call within the call deadline + 2 s). It writes `benchmarks/soak.md`, which `benchmarks/run.py` puts in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support import INITIALIZE, MCP_ACCEPT, drain, rss_kib, serving_port, table
from retab_mcp.simulator.app import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk_live_soak_6f1d0c9e2b7a4f33"
TOKEN = "soak-token-5b8e1a7c3d9f40aa"
CALL_DEADLINE_S = 20
WAIT_TIMEOUT_S = 15
WARM_UP_S = 120
OUTAGE_EVERY_S, OUTAGE_FOR_S = 60, 10


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter[str])
    errors: Counter[str] = field(default_factory=Counter[str])  # isError answers: expected during outages
    late: list[str] = field(default_factory=list[str])  # calls not answered within their bound
    failed: list[str] = field(default_factory=list[str])  # calls that raised instead of answering
    leaks: int = 0
    slowest: dict[str, float] = field(default_factory=dict[str, float])
    rss: list[tuple[float, int]] = field(default_factory=list[tuple[float, int]])

    def seen(self, text: str) -> None:
        if KEY in text or TOKEN in text or KEY[-12:] in text:
            self.leaks += 1


async def call(client: Client, tally: Tally, tool: str, arguments: dict[str, Any], bound_s: float) -> None:
    started = time.perf_counter()
    try:
        with anyio.fail_after(bound_s):
            result = await client.call_tool(tool, arguments)
    except TimeoutError:
        tally.late.append(tool)
        return
    except Exception as error:  # an answer that is not a result: the bound's other half
        tally.failed.append(f"{tool}: {type(error).__name__}: {error}"[:200])
        return
    took = time.perf_counter() - started
    tally.calls[tool] += 1
    tally.slowest[tool] = max(tally.slowest.get(tool, 0.0), took)
    tally.errors[tool] += bool(result.is_error)
    tally.seen(json.dumps(result.model_dump(mode="json", by_alias=True)))


async def soak(minutes: float) -> tuple[Tally, str, float]:
    sim = SimulatedRetab()
    tally = Tally()
    stderr = bytearray()
    duration_s = minutes * 60
    started = time.monotonic()
    async with anyio.create_task_group() as outer:
        api = Loopback(sim, outer)
        api.start()
        env = {
            **os.environ,
            "RETAB_API_KEY": KEY,
            "RETAB_API_BASE_URL": api.url,
            "RETAB_MCP_AUTH_TOKEN": TOKEN,
            "RETAB_MCP_CALL_DEADLINE_S": str(CALL_DEADLINE_S),
            "RETAB_MCP_UNUSED_SESSION_IDLE_S": "20",
        }
        command = [sys.executable, "-m", "retab_mcp", "--transport", "http", "--port", "0"]
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=env) as process:
            port = await serving_port(process.stderr, stderr)
            outer.start_soon(drain, process.stderr, stderr)
            url = f"http://127.0.0.1:{port}/mcp"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            started = time.monotonic()
            end = started + duration_s

            def running() -> bool:
                return time.monotonic() < end

            @asynccontextmanager
            async def client(mode: str = "auto") -> AsyncIterator[Client]:
                timeout = httpx2.Timeout(30, read=WAIT_TIMEOUT_S + 30)
                async with (
                    httpx2.AsyncClient(headers=auth, timeout=timeout) as http,
                    Client(streamable_http_client(url, http_client=http), mode=mode) as agent,  # type: ignore[arg-type]
                ):
                    yield agent

            async def waiter(index: int) -> None:
                async with client("legacy" if index % 2 else "auto") as agent:
                    while running():
                        run_id = sim.add_run(duration_s=random.uniform(20, 90), documents=random.choice([5, 20]))
                        for _ in range(8):
                            await call(
                                agent,
                                tally,
                                "wait_for_run",
                                {"run_id": run_id, "timeout_s": WAIT_TIMEOUT_S},
                                WAIT_TIMEOUT_S + 5,
                            )
                            if not running():
                                break

            async def reader(index: int) -> None:
                ids = list(sim.run_ids.values())
                async with client("legacy" if index % 2 else "auto") as agent:
                    while running():
                        run_id = random.choice(ids)
                        tool, arguments = random.choice(
                            [
                                ("get_experiment_run", {"run_id": run_id}),
                                ("list_experiment_runs", {"limit": 5}),
                                ("get_experiment_run_metrics", {"run_id": run_id}),
                                ("triage_experiment_run", {"run_id": run_id}),
                                ("wait_for_runs", {"run_ids": ids[:3], "timeout_s": 5}),
                            ]
                        )
                        await call(agent, tally, tool, arguments, CALL_DEADLINE_S + 2)

            async def bad_input() -> None:
                async with client() as agent, httpx2.AsyncClient(timeout=10) as http:
                    while running():
                        await call(agent, tally, "get_experiment_run", {"run_id": "../../etc/passwd"}, 5)
                        await call(agent, tally, "no_such_tool", {}, 5)
                        await call(agent, tally, "wait_for_run", {"run_id": "x", "timeout_s": -3}, 5)
                        for headers, body in (
                            ({**auth, "Content-Type": "application/json"}, b"{not json"),
                            ({"Authorization": "Bearer wrong", "Content-Type": "application/json"}, b"{}"),
                            ({**auth, "Host": "127.0.0.1:1.evil.com", "Content-Type": "application/json"}, b"{}"),
                        ):
                            answer = await http.post(url, content=body, headers=headers)
                            tally.calls[f"bad post ({answer.status_code})"] += 1
                            tally.seen(answer.text)
                        async with await anyio.connect_tcp("127.0.0.1", port) as half_sent:
                            await half_sent.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                            tally.calls["half-sent request"] += 1
                        await anyio.sleep(1)  # the pace of this task's traffic

            async def churn() -> None:
                async with httpx2.AsyncClient(timeout=10, headers=auth) as http:
                    while running():
                        async with client("legacy") as agent:
                            await call(agent, tally, "list_experiment_runs", {"limit": 1}, CALL_DEADLINE_S + 2)
                        for _ in range(20):  # opened and abandoned: closed by the server after 20 s idle
                            answer = await http.post(url, json=INITIALIZE, headers=MCP_ACCEPT)
                            tally.calls[f"abandoned session ({answer.status_code})"] += 1
                        await anyio.sleep(0.5)  # the pace of this task's traffic

            async def outages() -> None:
                while running():
                    await anyio.sleep(OUTAGE_EVERY_S - OUTAGE_FOR_S)
                    sim.inject("status", status=503, times=1_000_000)
                    tally.calls["API outage (10 s)"] += 1
                    await anyio.sleep(OUTAGE_FOR_S)
                    sim.faults.clear()

            async def sample() -> None:
                while running():
                    tally.rss.append((time.monotonic() - started, rss_kib(process.pid)))
                    await anyio.sleep(10)

            async with anyio.create_task_group() as traffic:
                for index in range(6):
                    traffic.start_soon(waiter, index)
                for index in range(4):
                    traffic.start_soon(reader, index)
                for task in (bad_input, churn, outages, sample):
                    traffic.start_soon(task)
                await anyio.sleep(duration_s)  # the soak's length; calls still in flight are cut, not counted
                traffic.cancel_scope.cancel()
            tally.rss.append((time.monotonic() - started, rss_kib(process.pid)))
            process.terminate()
            await process.wait()
        await api.stop()
        outer.cancel_scope.cancel()
    log = stderr.decode(errors="replace")
    tally.seen(log)
    return tally, log, time.monotonic() - started


def report(tally: Tally, log: str, elapsed_s: float, minutes: float) -> str:
    warm = next((kib for t, kib in tally.rss if t >= WARM_UP_S), tally.rss[0][1])
    final = tally.rss[-1][1]
    peak = max(kib for _, kib in tally.rss)
    tracebacks = log.count("Traceback")
    growth = (final - warm) / warm
    answered = sum(v for k, v in tally.calls.items() if not k[0].isupper() and "(" not in k)
    rows = [
        (
            "RSS after warm-up (2 min) / at the end / peak",
            f"{warm / 1024:.1f} / {final / 1024:.1f} / {peak / 1024:.1f} MiB",
        ),
        ("RSS at the end against after warm-up (goal: within 20 %)", f"{growth:+.1%}"),
        (
            "tool calls answered (isError among them: API outages, bad input)",
            f"{answered} ({sum(tally.errors.values())})",
        ),
        ("calls not answered within their bound", str(len(tally.late))),
        ("calls that raised instead of answering", str(len(tally.failed))),
        ("tracebacks on the server's stderr", str(tracebacks)),
        ("secrets seen in answers or logs", str(tally.leaks)),
        ("server stderr lines", str(len(log.splitlines()))),
    ]
    met = abs(growth) <= 0.20 and not tally.late and not tally.failed and not tracebacks and not tally.leaks
    traffic = [
        (name, count, f"{tally.slowest[name]:.2f} s" if name in tally.slowest else "")
        for name, count in sorted(tally.calls.items())
    ]
    lines = [
        "## Soak",
        "",
        f"`uv run python benchmarks/soak.py --minutes {minutes:g}`, last run {datetime.now(UTC):%Y-%m-%d}, "
        f"{elapsed_s / 60:.1f} min: a `--transport http` process with a token against the simulated API on "
        f"loopback; 6 agents waiting (`timeout_s` {WAIT_TIMEOUT_S}), 4 reading, one sending bad input and "
        "half-sent requests, one churning sessions (20 abandoned a second or so, closed by the server after "
        f"20 s idle); the API answering 503 for {OUTAGE_FOR_S} s of every {OUTAGE_EVERY_S} s. Call deadline "
        f"{CALL_DEADLINE_S} s. Goal met: **{'yes' if met else 'no'}**.",
        "",
        *table(["measure", "value"], rows, "lr"),
        "",
        *table(["traffic", "count", "slowest answer"], traffic, "lrr"),
        "",
    ]
    if tally.late or tally.failed:
        lines += [
            "Calls past their bound or raising:",
            "",
            *(f"- {item}" for item in (tally.late + tally.failed)[:20]),
            "",
        ]
    return "\n".join(lines)


def main(minutes: float) -> None:
    tally, log, elapsed = anyio.run(soak, minutes)
    Path(tempfile.gettempdir(), "retab-mcp-soak-stderr.log").write_text(log)  # to read what was logged
    text = report(tally, log, elapsed, minutes)
    print(text)
    (ROOT / "benchmarks" / "soak.md").write_text(text)
    print("wrote benchmarks/soak.md", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0)
    main(parser.parse_args().minutes)
