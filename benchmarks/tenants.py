"""A thousand tenants on one server: `uv run python benchmarks/tenants.py` (about a minute).

A real `retab-mcp --transport http --stateless --per-user-keys` process (call log on) over the simulated
API in a process of its own. 1,000 callers, each with a key of its own, make one call that reads from the
API (so each opens a partition and uses it), 20 at a time; meanwhile a prober asks /healthz every 10 ms.
Baselines from the same run: /healthz when the server is idle, the RSS after a warm-up of 20 keys, and one
tenant's call before the thousand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support import MCP_ACCEPT as ACCEPT
from benchmarks.support import (
    Section,
    baseline_problem,
    drain,
    median,
    percentile,
    rss_kib,
    serving_port,
    simulated_api,
    table,
)

TENANTS = 1_000
AT_ONCE = 4  # a steady load: what grows with the number of keys shows, not the saturation of two cores
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "list_experiment_runs", "arguments": {"limit": 1}},
}


async def measure(tenants: int = TENANTS) -> Section:
    section = Section(
        "A thousand tenants on one server",
        f"{tenants} callers with a Retab key each, one call apiece that reads from the API, {AT_ONCE} at a time, "
        "against `--per-user-keys --stateless` with the call log on; /healthz probed every 10 ms throughout. "
        "Baselines from the same run: /healthz with the server idle, RSS after 20 keys, one tenant's call "
        "before the thousand (median of 20).",
    )
    rss_before = rss_after = 0
    idle: list[float] = []
    quarters: list[list[float]] = [[] for _ in range(4)]
    before_calls: list[float] = []
    after_calls: list[float] = []
    took = 0.0
    async with simulated_api() as api_url:
        env = {**os.environ, "RETAB_API_BASE_URL": api_url, "RETAB_API_KEY": "", "RETAB_MCP_CALL_LOG": "1"}
        command = [
            sys.executable,
            "-m",
            "retab_mcp",
            "--transport",
            "http",
            "--stateless",
            "--per-user-keys",
            "--port",
            "0",
        ]
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=env) as process:
            stderr = bytearray()
            port = await serving_port(process.stderr, stderr)
            url = f"http://127.0.0.1:{port}"
            async with anyio.create_task_group() as group, httpx2.AsyncClient(timeout=30) as http:
                group.start_soon(drain, process.stderr, stderr)

                async def call(key: str) -> float:
                    started = time.perf_counter()
                    answer = await http.post(f"{url}/mcp", json=CALL, headers={**ACCEPT, "X-Retab-Api-Key": key})
                    assert answer.status_code == 200 and '"isError":false' in answer.text, answer.text[:200]
                    return time.perf_counter() - started

                async def probe(into: list[float], until: anyio.Event) -> None:
                    async with httpx2.AsyncClient(timeout=30) as prober:
                        while not until.is_set():
                            started = time.perf_counter()
                            assert (await prober.get(f"{url}/healthz")).status_code == 200
                            into.append(time.perf_counter() - started)
                            await anyio.sleep(0.01)

                for i in range(20):
                    await call(f"sk_live_{i:06d}_warm_up_key_random_part")
                regular = "sk_live_regular_tenant_0123456789abcdef"
                before_calls = [await call(regular) for _ in range(20)]
                idle_done = anyio.Event()
                async with anyio.create_task_group() as probing:
                    probing.start_soon(probe, idle, idle_done)
                    await anyio.sleep(2.0)
                    idle_done.set()
                rss_before = rss_kib(process.pid)
                started = time.perf_counter()
                for quarter in range(4):
                    load_done = anyio.Event()
                    async with anyio.create_task_group() as probing:
                        probing.start_soon(probe, quarters[quarter], load_done)
                        first, last = quarter * tenants // 4, (quarter + 1) * tenants // 4
                        for batch in range(first, last, AT_ONCE):
                            async with anyio.create_task_group() as crowd:
                                for i in range(batch, min(last, batch + AT_ONCE)):
                                    crowd.start_soon(call, f"sk_live_{i:06d}_tenant_key_random_part")
                        load_done.set()
                took = time.perf_counter() - started
                rss_after = rss_kib(process.pid)
                after_calls = [await call(regular) for _ in range(20)]
                group.cancel_scope.cancel()
            process.terminate()
            await process.wait()
    loaded = [t for quarter in quarters for t in quarter]
    grown_mb = (rss_after - rss_before) / 1024
    idle_p99, loaded_p99 = percentile(idle, 99) * 1000, percentile(loaded, 99) * 1000
    before_ms, after_ms = median(before_calls) * 1000, median(after_calls) * 1000
    section.add(
        *table(
            ["measure", "baseline", "with the tenants"],
            [
                ["server RSS", f"{rss_before / 1024:.0f} MB", f"{rss_after / 1024:.0f} MB (+{grown_mb:.1f} MB)"],
                ["/healthz p50", f"{median(idle) * 1000:.1f} ms", f"{median(loaded) * 1000:.1f} ms"],
                [
                    "/healthz p99",
                    f"{idle_p99:.1f} ms ({len(idle)} probes)",
                    f"{loaded_p99:.1f} ms ({len(loaded)} probes)",
                ],
                ["a tenant's call, median", f"{before_ms:.1f} ms", f"{after_ms:.1f} ms"],
            ],
        ),
        "",
        "/healthz p99 while the keys went in, by quarter: "
        + ", ".join(
            f"keys {i * tenants // 4 + 1}-{(i + 1) * tenants // 4}: {percentile(q, 99) * 1000:.1f} ms"
            for i, q in enumerate(quarters)
        )
        + ".",
        "",
        f"{tenants} tenants served in {took:.1f} s ({tenants / took:.0f} calls/s, {AT_ONCE} at a time).",
    )
    section.goal(f"{tenants} tenant keys: RSS growth <= 50 MB", f"+{grown_mb:.1f} MB", grown_mb <= 50)
    section.goal(
        f"{tenants} tenant keys: /healthz p99 <= 50 ms throughout",
        f"{loaded_p99:.1f} ms (idle {idle_p99:.1f} ms)",
        loaded_p99 <= 50,
        baseline_problem=baseline_problem(
            samples=len(idle),
            min_samples=50,
            baseline=idle_p99,
            measured=max(loaded_p99, idle_p99),
            plausible=(0.1, 50),
        ),
    )
    section.goal(
        f"after {tenants} tenant keys: a tenant's call <= 1.5x before",
        f"{after_ms / before_ms:.2f}x ({before_ms:.1f} -> {after_ms:.1f} ms)",
        after_ms <= 1.5 * before_ms,
        baseline_problem=baseline_problem(
            samples=len(before_calls),
            min_samples=10,
            baseline=before_ms,
            measured=max(after_ms, before_ms),
            plausible=(0.5, 200),
            unit=" ms",
        ),
    )
    return section


if __name__ == "__main__":
    result = anyio.run(measure)
    print(result.markdown())
    print("\n".join(table(["goal", "measured", "met"], result.goals, "llr")))
