"""A session flood: `uv run python benchmarks/flood.py [--bound 40] [--sessions 1500]`.

One client opens sessions on a real `--transport http` process and closes none, 10 at a time. It prints
the server's RSS growth over the flood and the HTTP statuses it got. Run it with the bound (sessions per
client and in total) and with the bound lifted (`--bound 100000`) to see what the bound saves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support import INITIALIZE, rss_kib
from benchmarks.support import MCP_ACCEPT as ACCEPT


async def flood(bound: int, sessions: int) -> None:
    env = {**os.environ, "RETAB_MCP_MAX_SESSIONS": str(bound), "RETAB_MCP_MAX_SESSIONS_PER_CLIENT": str(bound)}
    command = [sys.executable, "-m", "retab_mcp", "--demo", "--transport", "http", "--port", "0"]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=env) as process:
        assert process.stderr is not None
        seen = b""
        while b"/mcp (" not in seen:
            seen += await process.stderr.receive()
        port = int(seen.split(b"/mcp (")[0].rsplit(b":", 1)[1])
        url = f"http://127.0.0.1:{port}/mcp"
        statuses: list[int] = []
        async with httpx2.AsyncClient(timeout=30) as http:
            for _ in range(60):  # warm-up: the first sessions load what every session needs
                await http.post(url, json=INITIALIZE, headers=ACCEPT)
            before = rss_kib(process.pid)

            async def one_client(count: int) -> None:
                for _ in range(count):
                    statuses.append((await http.post(url, json=INITIALIZE, headers=ACCEPT)).status_code)

            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(one_client, sessions // 10)
            after = rss_kib(process.pid)
        process.terminate()
        await process.wait()
    print(
        f"bound {bound}: {len(statuses)} sessions opened, RSS growth {(after - before) / 1024:.1f} MiB, "
        f"statuses {sorted(set(statuses))}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bound", type=int, default=40)
    parser.add_argument("--sessions", type=int, default=1500)
    args = parser.parse_args()
    anyio.run(flood, args.bound, args.sessions)
