"""The command line as a person uses it: real subprocesses, demo mode."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from retab_mcp.base.config import Settings
from retab_mcp.entry.cli import (
    EXIT_CALL_FAILED,
    EXIT_COMPLETED,
    EXIT_INTERRUPTED,
    EXIT_RUN_CANCELLED,
    EXIT_RUN_ERROR,
    EXIT_TIMED_OUT,
    EXIT_USAGE,
)
from retab_mcp.tools.server import build_server

from .helpers import READ_TOOLS, WRITE_TOOLS
from .processes import read_until

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
async def test_get_shows_a_failed_run_to_a_person() -> None:
    done = await anyio.run_process([sys.executable, "-m", "retab_mcp", "get", "failed", "--demo"], check=False)
    out = done.stdout.decode()
    assert done.returncode == EXIT_RUN_ERROR
    assert re.match(r"exprun_\S+ · error · \d+/40 docs · 3 errors", out)
    assert "SchemaValidationError" in out


@pytest.mark.slow
async def test_wait_times_out_with_its_own_exit_code() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "wait", "long", "--demo", "--timeout", "1"], check=False
        )
    assert done.returncode == EXIT_TIMED_OUT
    assert "Not finished: run the same command again" in done.stdout.decode()
    assert "docs" in done.stderr.decode()  # the progress bar


@pytest.mark.parametrize(
    ("arguments", "status"),
    [
        (["get", "latest", "--demo"], EXIT_COMPLETED),
        (["get", "failed", "--demo"], EXIT_RUN_ERROR),
        (["get", "cancelled", "--demo"], EXIT_RUN_CANCELLED),
        (["get", "long", "--demo"], EXIT_TIMED_OUT),
        (["wait", "latest", "--demo"], EXIT_COMPLETED),
        (["wait", "failed", "--demo"], EXIT_RUN_ERROR),
        (["wait", "cancelled", "--demo"], EXIT_RUN_CANCELLED),
        (["wait", "long", "--demo", "--timeout", "1"], EXIT_TIMED_OUT),
        (["wait", "exprun_nope", "--demo"], EXIT_CALL_FAILED),
        (["get", "exprun_nope", "--demo"], EXIT_CALL_FAILED),
        (["wait", "not an id", "--demo"], EXIT_CALL_FAILED),
        (["wait", "--timeout", "soon", "x"], EXIT_USAGE),
    ],
)
@pytest.mark.slow
async def test_get_and_wait_exit_with_the_runs_state_and_never_a_traceback(arguments: list[str], status: int) -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, "-m", "retab_mcp", *arguments], check=False)
    assert done.returncode == status, done.stderr.decode()
    assert "Traceback" not in done.stderr.decode() + done.stdout.decode()
    if status == EXIT_CALL_FAILED:
        assert len(done.stderr.decode().strip().splitlines()) == 1  # one clear line


@pytest.mark.slow
async def test_an_unreachable_api_is_one_line_and_no_traceback() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "wait", "exprun_1", "--base-url", "http://127.0.0.1:9"],
            check=False,
            env={"PATH": "/usr/bin:/bin", "RETAB_API_KEY": "sk_test_x", "RETAB_MAX_RETRIES": "1"},
        )
    errors = done.stderr.decode()
    assert done.returncode == EXIT_CALL_FAILED and "Traceback" not in errors
    assert errors.strip().splitlines()[-1].startswith("retab-mcp: Could not reach the Retab API at http://127.0.0.1:9")


@contextlib.contextmanager
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children spawned inside get SIGINT as a command typed at a terminal does. A shell without job
    control starts a background command (`pytest &`) with SIGINT ignored, and its children inherit that:
    such a command rightly sits out Ctrl-C, but this is not the case the test is about."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)  # reset to the default in the child at exec
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
async def test_ctrl_c_during_a_wait_ends_it_with_130_and_one_line() -> None:
    import subprocess

    command = [sys.executable, "-m", "retab_mcp", "wait", "long", "--demo"]
    with anyio.fail_after(30):
        with ctrl_c_reaches_children():
            process = await anyio.open_process(command, stdin=subprocess.DEVNULL)
        async with process:
            seen = await read_until(process.stderr, b"docs")  # the progress bar is up: the wait is on
            process.send_signal(signal.SIGINT)
            await process.wait()
            assert process.stderr is not None
            seen += b"".join([chunk async for chunk in process.stderr])
    assert process.returncode == EXIT_INTERRUPTED
    assert b"Traceback" not in seen and b"interrupted" in seen


@pytest.mark.slow
async def test_a_missing_key_is_explained_without_a_traceback() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "get", "exprun_1"], check=False, env={"PATH": "/usr/bin:/bin"}
        )
    assert done.returncode == 1
    assert "RETAB_API_KEY" in done.stderr.decode() and "Traceback" not in done.stderr.decode()


@pytest.mark.slow
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
    """The README's tools table is the registry's (regenerate it with `uv run python -m retab_mcp.tools.table
    --write README.md`), so it names every tool the server lists, with its arguments."""
    from retab_mcp.tools.table import tools_table, with_table

    readme = (ROOT / "README.md").read_text()
    assert with_table(readme, await tools_table()) == readme
    async with Client(build_server(Settings(allow_writes=True))) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert f"`{tool.name}(" in readme, f"README's tool table lacks {tool.name}"
    first_screen = readme.split("## Tools")[0]
    assert "uv run retab-mcp demo" in first_screen and "uv run pytest" in first_screen


@pytest.mark.slow
async def test_the_demo_walks_through_the_tools_within_a_minute() -> None:
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "retab_mcp", "demo"], check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert f"tools/list: {len(READ_TOOLS | WRITE_TOOLS)} tools" in out  # writes on: the walk starts a run
    assert "completed · 12/12 docs" in out  # the wait saw the young run to its end
    assert out.count("structuredContent:") == 9 and "Verdict: Completed" in out and "isError=True" in out
    assert "NEEDS A PERSON" in out and "REGRESSED" in out  # a review gate, and a block edit that broke evals
    assert "STALE (block_changed)" in out and "Started: exprun_" in out
    assert "Verdict: improved (n=12 paired documents)." in out  # the loop: the edit helped, beyond noise


@pytest.mark.slow
async def test_the_simulator_serves_on_a_port_with_added_runs_and_stats() -> None:
    import subprocess

    import httpx2

    command = [sys.executable, "-m", "retab_mcp.simulator", "--port", "0", "--add-runs", "2"]
    with anyio.fail_after(30):
        async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
            ready = await read_until(process.stderr, b"\n")
            port = int(re.search(rb"simulated Retab API on http://127.0.0.1:(\d+)", ready).group(1))  # type: ignore[union-attr]
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


@pytest.mark.slow
def test_on_a_narrow_terminal_the_bar_shows_the_time_waited_and_redraws_every_second() -> None:
    """`wait` under a pseudo-terminal 40 columns wide: a redraw at least every second with the time
    waited, even while no document completes, and no redraw wider than the terminal (it would wrap and
    leave stale lines)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    command = [sys.executable, "-m", "retab_mcp", "wait", "long", "--demo", "--timeout", "6"]
    process = subprocess.Popen(command, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    seen = b""
    try:
        for _ in range(60):  # at most 30 s
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main_fd, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
    finally:
        process.kill()
        process.wait()
        os.close(main_fd)
    redraws = [part.decode() for part in seen.split(b"\r\x1b[2K")[1:]]
    bar_lines = [line.split("\r\n")[0] for line in redraws]
    # The labels count seconds from the bar's first draw; a loaded machine may start the ticks late or
    # run one late, so which seconds are shown varies, but every redraw says one, and they only go up.
    labels = [line.split(" ", 1)[0] for line in bar_lines]
    assert all(label.endswith("s") and label[:-1].isdigit() for label in labels), bar_lines
    seconds = [int(label[:-1]) for label in labels]
    assert seconds == sorted(seconds) and len(set(seconds)) >= 3, bar_lines
    assert all(len(line) <= 39 for line in bar_lines), bar_lines
    assert "Not finished" in seen.decode()


async def cli(*arguments: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import os

    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", *arguments], check=False, env={**os.environ, **(env or {})}
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.slow
async def test_compare_prints_the_verdict_or_its_json_for_scripts() -> None:
    import json

    status, out, _ = await cli("compare", "older", "latest", "--demo")
    assert status == EXIT_COMPLETED and out.startswith("Verdict: ")
    status, out, _ = await cli("compare", "older", "latest", "--demo", "--json")
    data = json.loads(out)
    assert status == EXIT_COMPLETED and data["verdict"] in ("improved", "regressed", "no detectable change")
    status, _, err = await cli("compare", "older", "exprun_nope", "--demo")
    assert status == EXIT_CALL_FAILED and "exprun_nope" in err and "Traceback" not in err
    status, out, _ = await cli("compare", "latest", "--demo", "--json")  # the base found for the candidate
    assert status == EXIT_COMPLETED and json.loads(out)["base_chosen"]


@pytest.mark.slow
async def test_get_and_wait_print_json_for_scripts() -> None:
    import json

    status, out, _ = await cli("get", "latest", "--demo", "--json")
    assert status == EXIT_COMPLETED and json.loads(out)["status"] == "completed"
    status, out, _ = await cli("wait", "long", "--demo", "--timeout", "1", "--json")
    assert status == EXIT_TIMED_OUT and json.loads(out)["timed_out"] is True


@pytest.mark.slow
async def test_start_needs_writes_allowed_then_starts_and_waits() -> None:
    import json

    status, out, err = await cli("start", "invoices-tuned", "--demo")
    assert status == EXIT_CALL_FAILED and "RETAB_MCP_ALLOW_WRITES=1" in err and out == ""  # a setting, not usage
    writes = {"RETAB_MCP_ALLOW_WRITES": "1"}
    status, out, _ = await cli("start", "invoices-tuned", "--demo", "--wait", "--json", env=writes)
    data = json.loads(out)
    assert status == EXIT_COMPLETED and data["status"] == "completed" and data["finished"] is True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "tool", "arguments"),
    [
        (["triage", "latest"], "triage_experiment_run", {}),
        (["metrics", "latest", "--view", "by_document"], "get_experiment_run_metrics", {"view": "by_document"}),
        (["results", "latest", "--status", "error"], "list_experiment_run_results", {"status": "error"}),
    ],
)
async def test_read_commands_print_the_tools_structured_content_as_json(
    command: list[str], tool: str, arguments: dict[str, str]
) -> None:
    import json

    import httpx2

    from retab_mcp.base.clock import RealClock
    from retab_mcp.simulator import SimulatedRetab
    from retab_mcp.simulator.scenario import opaque_id

    status, out, err = await cli(*command, "--demo", "--json")
    assert status == EXIT_COMPLETED, err
    printed = json.loads(out)  # one JSON document on stdout, nothing else
    sim = SimulatedRetab(clock=RealClock(), demo=True)
    settings = Settings(api_key="sk_demo_simulated", base_url="http://retab.simulated")
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim))
    async with Client(server) as client:
        direct = await client.call_tool(tool, {"run_id": opaque_id("exprun", "latest"), **arguments})
    assert printed == direct.structured_content


@pytest.mark.slow
async def test_list_prints_a_page_and_a_tool_error_is_one_line_with_exit_1() -> None:
    import json

    status, out, _ = await cli("list", "--demo", "--limit", "2", "--json")
    assert status == EXIT_COMPLETED and len(json.loads(out)["runs"]) == 2
    status, out, err = await cli("triage", "exprun_nope", "--demo")
    assert status == EXIT_CALL_FAILED and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("retab-mcp: No experiment run 'exprun_nope' was found")


@pytest.mark.slow
async def test_a_port_in_use_is_one_line_and_exit_1_and_a_port_out_of_range_is_a_usage_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        status, _, err = await cli("--demo", "--transport", "http", "--port", port)
    assert status == EXIT_CALL_FAILED and len(err.strip().splitlines()) == 1 and "already in use" in err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    status, _, err = await cli("--demo", "--transport", "http", "--port", "99999")
    assert status == EXIT_USAGE and "is not a port" in err


@pytest.mark.slow
async def test_a_reader_that_goes_away_early_gets_no_traceback() -> None:
    """`retab-mcp list --json | head -c 10`: the pipe is closed before anything is written, every time."""
    import os
    import subprocess

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes
    with anyio.fail_after(60):
        process = await anyio.open_process(
            [sys.executable, "-m", "retab_mcp", "list", "--json", "--demo"],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
        )
        os.close(write_end)
        assert process.stderr is not None
        errors = b"".join([chunk async for chunk in process.stderr])
        await process.wait()
    assert process.returncode == EXIT_COMPLETED and b"Traceback" not in errors and b"BrokenPipe" not in errors


@pytest.mark.slow
@pytest.mark.parametrize("seconds", ["0", "-5", "inf"])
async def test_a_wait_of_no_time_is_a_usage_error(seconds: str) -> None:
    status, out, err = await cli("wait", "latest", "--demo", "--timeout", seconds)
    assert status == EXIT_USAGE and "seconds above 0" in err and out == ""


@pytest.mark.slow
async def test_the_next_steps_a_person_reads_are_commands_not_tool_calls() -> None:
    status, out, _ = await cli("get", "latest", "--demo")
    assert status == EXIT_COMPLETED and "`retab-mcp triage`" in out and "triage_experiment_run" not in out
    status, out, _ = await cli("results", "candidate", "--demo")
    assert "`retab-mcp triage wfevalrun_" in out and "(run_id=" not in out


@pytest.mark.slow
async def test_a_stale_cursor_is_named_as_the_command_names_it() -> None:
    status, _, err = await cli("list", "--cursor", "exprun_gone", "--demo")
    assert status == EXIT_CALL_FAILED and "cursor 'exprun_gone'" in err and "after" not in err


def test_every_option_of_the_commands_says_what_it_does() -> None:
    import argparse
    from typing import cast

    from retab_mcp.entry.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # pyright: ignore[reportPrivateUsage]
    commands = cast(dict[str, argparse.ArgumentParser], sub.choices)
    for name, command in commands.items():
        for action in command._actions:  # pyright: ignore[reportPrivateUsage]
            if action.option_strings and action.help is None:
                raise AssertionError(f"`retab-mcp {name} {action.option_strings[0]}` has no help text")
    assert {"experiments", "experiment", "cancel", "start-evals"} <= set(commands)


@pytest.mark.slow
async def test_a_workflow_run_at_a_review_gate_has_an_exit_status_of_its_own() -> None:
    from retab_mcp.entry.cli import EXIT_NEEDS_PERSON

    status, out, _ = await cli("get", "awaiting_review", "--demo")
    assert status == EXIT_NEEDS_PERSON and "NEEDS A PERSON" in out
    status, out, _ = await cli("wait", "awaiting_review", "--demo", "--json")
    assert status == EXIT_NEEDS_PERSON and json.loads(out)["needs_person"] is True
    status, out, _ = await cli("compare", "candidate", "--demo", "--json")
    assert status == EXIT_COMPLETED and json.loads(out)["gate"] == "failed"


@pytest.mark.slow
async def test_the_experiment_commands_and_cancel_go_through_their_tools() -> None:
    status, out, _ = await cli("experiment", "invoices-tuned", "--demo", "--json")
    assert status == EXIT_COMPLETED and json.loads(out)["stale"] is True
    workflow = json.loads(out)["workflow_id"]
    status, out, _ = await cli("experiments", workflow, "--demo")
    assert status == EXIT_COMPLETED and "invoices-tuned" in out
    status, _, err = await cli("cancel", "long", "--demo")
    assert status == EXIT_CALL_FAILED and "RETAB_MCP_ALLOW_WRITES=1" in err
    status, out, _ = await cli("cancel", "long", "--demo", "--json", env={"RETAB_MCP_ALLOW_WRITES": "1"})
    assert status == EXIT_COMPLETED and json.loads(out)["status"] == "cancelled"
