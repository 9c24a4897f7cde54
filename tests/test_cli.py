"""The command line as a person uses it: real subprocesses, demo mode."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from retab_mcp.cli import EXIT_TIMED_OUT
from retab_mcp.config import Settings
from retab_mcp.server import build_server

from .processes import read_until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[1]


async def test_get_shows_a_failed_run_to_a_person() -> None:
    done = await anyio.run_process([sys.executable, "-m", "retab_mcp", "get", "failed", "--demo"], check=False)
    out = done.stdout.decode()
    assert done.returncode == 0
    assert re.match(r"exprun_\S+ · error · \d+/40 docs · 3 errors", out)
    assert "SchemaValidationError" in out


async def test_wait_times_out_with_its_own_exit_code() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "wait", "long", "--demo", "--timeout", "1"], check=False
        )
    assert done.returncode == EXIT_TIMED_OUT
    assert "Not finished: run the same command again" in done.stdout.decode()
    assert "docs" in done.stderr.decode()  # the progress bar


async def test_a_missing_key_is_explained_without_a_traceback() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "get", "exprun_1"], check=False, env={"PATH": "/usr/bin:/bin"}
        )
    assert done.returncode == 1
    assert "RETAB_API_KEY" in done.stderr.decode() and "Traceback" not in done.stderr.decode()


async def test_a_bad_setting_is_explained_without_a_traceback() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "get", "x"],
            check=False,
            env={"PATH": "/usr/bin:/bin", "RETAB_MCP_MAX_WAIT_S": "soon"},
        )
    assert done.returncode != 0
    assert "RETAB_MCP_MAX_WAIT_S" in done.stderr.decode() and "Traceback" not in done.stderr.decode()


async def test_the_readme_documents_every_tool_and_both_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    async with Client(build_server(Settings())) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        parameters = ", ".join(tool.input_schema["properties"])
        documented = re.search(rf"`{tool.name}\(([^)]*)\)`", readme)
        assert documented, f"README's tool table lacks {tool.name}"
        assert re.sub(r"=[^,]*", "", documented.group(1)) == parameters
    first_screen = readme.split("## Tools")[0]
    assert "uv run retab-mcp demo" in first_screen and "uv run pytest" in first_screen


async def test_the_demo_walks_through_the_tools_within_a_minute() -> None:
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "retab_mcp", "demo"], check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "tools/list: 7 tools" in out
    assert "completed · 12/12 docs" in out  # the wait saw the young run to its end
    assert out.count("structuredContent:") == 4 and "Verdict: Completed" in out and "isError=True" in out


async def test_the_simulator_serves_on_a_port_with_added_runs_and_stats() -> None:
    import subprocess

    import httpx2

    from .test_transports import free_port

    port = free_port()
    command = [sys.executable, "-m", "retab_mcp.simulator", "--port", str(port), "--add-runs", "2"]
    with anyio.fail_after(30):
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
            await read_until(process.stderr, b"simulated Retab API on")
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                added = (await http.get("/_simulator/stats")).json()["added_runs"]
                run = await http.get(
                    f"/v1/workflows/experiments/runs/{added[0]}", headers={"Authorization": "Bearer k"}
                )
                stats = (await http.get("/_simulator/stats")).json()
            process.terminate()
            await process.wait()
    assert len(added) == 2 and run.status_code == 200 and run.json()["id"] == added[0]
    assert stats["requests"] == 1 and stats["per_run"] == {added[0]: 1}
