"""The run view over a whole run: `uv run python benchmarks/view.py [--minutes 10]`.

A real `retab-mcp --transport http` process over the simulated API on a loopback port, one run of 40
documents lasting `--minutes`, and the view of that run open in the test host (interop/apps/host.mjs:
headless Chromium, the official AppBridge, the TypeScript MCP client) from before the run starts until it
has explained the finished run. It counts the tool calls the view made through the host, by tool, and the
API requests the server made for that run, and states the view's size. It writes `benchmarks/view.md`,
which `benchmarks/run.py` puts in BENCHMARKS.md.

Needs what the browser test needs: `npm ci` in interop/apps and Debian's chromium.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import anyio

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support import KEY, drain, serving_port, table
from retab_mcp.simulator.app import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.ui import run_view_html

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "interop" / "apps" / "host.mjs"
DOCUMENTS = 40
VIEW_SIZE_GOAL = 32_000  # bytes, as tests/test_run_view_server.py holds it


async def follow_one_run(minutes: float) -> tuple[dict[str, object], int, float]:
    """The host's observations of the view, the API requests for the run, and the seconds it all took."""
    sim = SimulatedRetab()
    stderr = bytearray()
    run_id, took, done = "", 0.0, None
    async with anyio.create_task_group() as group:
        api = Loopback(sim, group)
        api.start()
        env = {**os.environ, "RETAB_API_KEY": KEY, "RETAB_API_BASE_URL": api.url}
        command = [sys.executable, "-m", "retab_mcp", "--transport", "http", "--port", "0"]
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=env) as server:
            port = await serving_port(server.stderr, stderr)
            group.start_soon(drain, server.stderr, stderr)
            run_id = sim.add_run(duration_s=minutes * 60, documents=DOCUMENTS, queue_s=2)
            plan = [
                {
                    "name": "follow",
                    "kind": "follow",
                    "tool": "get_experiment_run",
                    "args": {"run_id": run_id},
                    "timeout_s": minutes * 60 + 120,
                }
            ]
            with tempfile.TemporaryDirectory() as work:
                plan_file = Path(work) / "plan.json"
                plan_file.write_text(json.dumps(plan))
                started = time.perf_counter()
                host = ["node", str(HOST), "--mcp", f"http://127.0.0.1:{port}/mcp", "--plan", str(plan_file)]
                done = await anyio.run_process(host, check=False)
                took = time.perf_counter() - started
            group.cancel_scope.cancel()  # the stderr reader, and the API with it
            server.terminate()
    assert done is not None
    if done.returncode != 0:
        raise SystemExit(f"the test host failed:\n{done.stderr.decode()[-3000:]}")
    requests = sim.stats()["per_run"].get(run_id, 0)
    return json.loads(done.stdout)["follow"], requests, took


def report(seen: dict[str, object], requests: int, took: float, minutes: float) -> str:
    calls = seen["calls"]
    assert isinstance(calls, list)
    by_tool = Counter(str(call["name"]) for call in calls)
    waits = [call["arguments"]["timeout_s"] for call in calls if call["name"] == "wait_for_run"]
    html = run_view_html().encode()
    errors = seen["consoleErrors"]
    leaks = seen["viewRequests"]
    assert isinstance(errors, list) and isinstance(leaks, list)
    rows = [
        ("the view's size", f"{len(html):,} bytes ({len(gzip.compress(html)):,} gzipped)"),
        (f"goal: under {VIEW_SIZE_GOAL:,} bytes", "yes" if len(html) < VIEW_SIZE_GOAL else "no"),
        ("tool calls by the view, in all", sum(by_tool.values())),
        *((f"- {name}", count) for name, count in sorted(by_tool.items())),
        ("wait_for_run timeout_s asked", f"{min(waits):g} to {max(waits):g} s" if waits else "none"),
        ("API requests for the run (GET /runs/{id})", requests),
        ("bar updates seen by the host", len(seen["progress"]) if isinstance(seen["progress"], list) else "?"),
        ("console errors", len(errors)),
        ("requests leaving the view's frame", len(leaks)),
        ("wall time, view open to explained", f"{took:.0f} s"),
    ]
    return "\n".join(
        [
            f"## The run view over a {minutes:g}-minute run",
            "",
            f"`uv run python benchmarks/view.py --minutes {minutes:g}` on {datetime.now(UTC):%Y-%m-%d}: one run of "
            f"{DOCUMENTS} documents, its view open in headless Chromium from before it started until it had "
            "explained the result.",
            "",
            *table(["what", "measured"], rows, "lr"),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    minutes = parser.parse_args().minutes
    seen, requests, took = anyio.run(follow_one_run, minutes)
    text = report(seen, requests, took, minutes)
    print(text)
    (ROOT / "benchmarks" / "view.md").write_text(text)


if __name__ == "__main__":
    main()
