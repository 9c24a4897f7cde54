"""What a server started over stdio imports: only what stdio and its settings use. Start-up is measured
against a bare `MCPServer` (benchmarks/startup.py), so every package imported beyond the SDK's own is paid
by every host at every start; HTTP, OAuth, Redis, metrics and the simulator are for other transports and
settings and are imported when those are chosen; the tool families are imported at the first tool call."""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import pytest

from retab_mcp.tools.registry import FAMILIES

from .raw_stdio import INITIALIZE, INITIALIZED

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HELLO = Path(__file__).parents[1] / "benchmarks" / "hello_server.py"
# Modules of this server that only other transports, settings or commands need.
NOT_ON_STDIO = (
    "retab_mcp.transports.http",
    "retab_mcp.transports.oauth",
    "retab_mcp.transports.sessions",
    "retab_mcp.simulator",
    "retab_mcp.entry.demo",
    "retab_mcp.entry.doctor",
    "retab_mcp.views.run",  # the run resource's, at its first read
    # The engine and what it brings (the API's models, the poll loop, the run kinds): opened at the first call.
    "retab_mcp.tools.engine",
    "retab_mcp.api.models",
    "retab_mcp.watch.watcher",
    "retab_mcp.kinds",
    "retab_mcp.views.metrics",  # the app-only tool's and the metrics family's
    # The tool families: their tools are listed from tools/prebuilt.json and imported at a first call.
    *(f"retab_mcp.tools.{family}" for family in FAMILIES),
)
# What this server imports of the packages beyond a bare server's, module by module: the SDK's apps extension
# (the run view) and anyio's signals (a clean stop on SIGTERM).
BEYOND_THE_BARE_SERVER = {"mcp.server.apps", "anyio._core._signals"}
# Packages that only HTTP with shared sessions, OAuth or metrics use.
OPTIONAL = ("redis", "joserfc", "prometheus_client")


# Runs a server as `python -m` or `python path` would, and writes at exit, as JSON on stderr, the modules it
# holds and its garbage collector's state: whether it is on, how many objects are frozen and how many tracked,
# how many collections ran, and how many of those while the command's modules were being imported (the CLI
# package is in sys.modules but has no `main` yet). `-X importtime` would miss a module imported by
# `importlib.import_module` (the registry's way).
SERVE_AND_LIST_MODULES = """
import atexit, gc, json, runpy, sys
collections = {"all": 0, "while_importing": 0}
def count(phase, info):
    if phase == "start":
        collections["all"] += 1
        cli = sys.modules.get("retab_mcp.entry.cli")
        collections["while_importing"] += cli is not None and not hasattr(cli, "main")
gc.callbacks.append(count)
def report():
    collector = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
                 "collections": collections["all"], "while_importing": collections["while_importing"]}
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\nGC " + json.dumps(collector) + "\\n")
atexit.register(report)
target = sys.argv.pop(1)
sys.argv[0] = target
if target == "-m":
    runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


async def imported_to_list_tools(command: list[str]) -> set[str]:
    """The modules a server process held once it had answered `tools/list` over stdio (and then its input
    closed, so nothing else was asked of it)."""
    modules, _ = await serve_and_report(command)
    return modules


async def serve_and_report(command: list[str]) -> tuple[set[str], dict[str, Any]]:
    """What a server process held once it had answered `tools/list` over stdio and its input closed: its
    modules, and its garbage collector's state."""
    env = {
        "PATH": os.environ["PATH"],
        "RETAB_API_KEY": "sk_test_imports",
        "RETAB_API_BASE_URL": "http://127.0.0.1:9",  # never called: listing tools reads nothing
    }
    with tempfile.TemporaryFile() as stderr:
        with anyio.fail_after(60):
            process = await anyio.open_process(
                [sys.executable, "-c", SERVE_AND_LIST_MODULES, *command], env=env, stderr=stderr
            )
            async with process:
                assert process.stdin is not None and process.stdout is not None
                for message in (INITIALIZE, INITIALIZED, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}):
                    await process.stdin.send(json.dumps(message).encode() + b"\n")
                seen = b""
                while b'"id":1' not in seen.replace(b" ", b""):
                    seen += await process.stdout.receive()
                await process.stdin.aclose()
                await process.wait()
        stderr.seek(0)
        lines = stderr.read().decode().splitlines()
    (modules,) = [line.removeprefix("MODULES ") for line in lines if line.startswith("MODULES ")]
    (collector,) = [line.removeprefix("GC ") for line in lines if line.startswith("GC ")]
    return set(json.loads(modules)), json.loads(collector)


async def test_serving_over_stdio_imports_no_package_a_bare_sdk_server_does_not() -> None:
    ours = await imported_to_list_tools(["-m", "retab_mcp"])
    bare = await imported_to_list_tools([str(HELLO)])
    assert "retab_mcp.transports.stdio" in ours  # the listing is of the real path
    # Beyond the bare server: this server's modules, the standard library's, and of other packages only the
    # modules named above.
    extra = {name for name in ours - bare if name.split(".")[0] not in {"retab_mcp", *sys.stdlib_module_names}}
    assert extra <= BEYOND_THE_BARE_SERVER
    assert [name for name in ours if name.startswith(NOT_ON_STDIO) or name.startswith(OPTIONAL)] == []


async def test_a_server_imports_without_the_collector_then_collects_with_what_it_imported_frozen() -> None:
    """The collector, paused while the SDK and this server are imported (entry/launch.py), runs again once
    the server serves, and the objects the imports made are frozen, out of every collection's scan."""
    _, collector = await serve_and_report(["-m", "retab_mcp"])
    assert collector["while_importing"] == 0  # paused while the command's modules were imported
    assert collector["enabled"] is True  # and on again since
    assert collector["frozen"] > collector["tracked"]  # the imports' objects outnumber all made since
    _, bare = await serve_and_report([str(HELLO)])
    # The report tells the two apart: the bare server imports with the collector running, and freezes nothing.
    assert bare["enabled"] is True and bare["frozen"] == 0 and bare["collections"] > 10


def test_the_installed_command_and_the_bundle_start_where_python_m_does() -> None:
    """`retab-mcp` as declared, as installed (the console script), and the bundle's main.py begin at the same
    launcher as `python -m retab_mcp`."""
    root = HELLO.parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]["retab-mcp"]
    (installed,) = entry_points(group="console_scripts", name="retab-mcp")
    assert declared == installed.value == "retab_mcp.entry.launch:main"
    bundle_main = runpy.run_path(str(root / "bundle" / "build.py"))["MAIN"]
    assert bundle_main == "from retab_mcp.entry.launch import main\n\nmain()\n"
