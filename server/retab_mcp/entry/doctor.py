"""`retab-mcp doctor`: is this setup going to work? One line per thing checked, then the host config to
paste (or all of it as JSON with --json). Exit 0 only when a call would work: a real key the API accepts,
at a base URL that answers.

The base URL is checked with or without a key (a 401 is an answer). The host config names a command that
will still be there tomorrow: `uv run --directory <the clone>` from a clone, the installed script from a
virtual environment or pipx, `uvx retab-mcp` when it was run from uv's cache (which uv may clear), never
the path of a temporary copy.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.client import RetabClient, call_deadline
from ..api.errors import APIConnectionError, AuthenticationError, PermissionDeniedError, RetabError
from ..base.config import DEFAULT_BASE_URL, Settings, placeholder_key
from ..base.redaction import Redactor
from ..views.messages import explain

if TYPE_CHECKING:
    import httpx2

HOST_LIMIT_S = 60  # what hosts allow a tool call, about
PROBE_DEADLINE_S = 15
CACHE_MARKERS = ("archive-v0", "/.cache/", "builds-v0", "/tmp/")  # places a command does not stay

Check = tuple[bool | None, str]  # (ok, or None for "for information"), what was found


async def run_doctor(
    settings: Settings, transport: httpx2.AsyncBaseTransport | None = None, demo: bool = False, as_json: bool = False
) -> int:
    redact = Redactor(settings.secrets)
    checks: list[Check] = []
    key = settings.api_key
    usable = False
    if not key:
        checks.append(
            (False, "key: RETAB_API_KEY is not set (in the env block of the host config, or the environment)")
        )
    elif placeholder_key(key):
        checks.append((False, "key: RETAB_API_KEY holds a placeholder copied from an example: put your real key"))
    else:
        kind = "live" if key.startswith("sk_live_") else "test" if key.startswith("sk_test_") else "unprefixed"
        checks.append((True, f"key: set ({kind} key, {len(key)} characters)"))
        usable = True
    works = await _probe(settings, transport, checks, redact, with_key=usable)
    within = settings.max_wait_s <= HOST_LIMIT_S - 5
    cap = f", under the ~{HOST_LIMIT_S} s hosts allow" if within else f": hosts end calls at ~{HOST_LIMIT_S} s"
    checks.append((within, f"max wait: {settings.max_wait_s:g} s per wait call{cap}"))
    writes = "on: the tools that start and cancel runs are offered" if settings.allow_writes else "off"
    checks.append((None, f"writes: {writes} (RETAB_MCP_ALLOW_WRITES)"))
    command, args = launcher()
    configs = host_configs(settings, demo, command, args)
    if as_json:
        report = {
            "works": works,
            "checks": [{"ok": ok, "check": redact.text(line)} for ok, line in checks],
            "host_config": configs,
        }
        print(json.dumps(report, indent=2))
        return 0 if works else 1
    for ok, line in checks:
        mark = "info" if ok is None else "ok" if ok else "FAIL"
        print(redact.text(f"{mark:<5}{line}"))
    print("\nClaude Desktop (claude_desktop_config.json), Cursor (~/.cursor/mcp.json), Claude Code (.mcp.json):")
    print(json.dumps({"mcpServers": configs["mcpServers"]}, indent=2))
    print("\nVS Code (.vscode/mcp.json), which asks for the key:")
    print(json.dumps(configs["vscode"], indent=2))
    return 0 if works else 1


async def _probe(
    settings: Settings,
    transport: httpx2.AsyncBaseTransport | None,
    checks: list[Check],
    redact: Redactor,
    *,
    with_key: bool,
) -> bool:
    """Whether a call would work; the base URL is checked either way (without a key, that it answers)."""
    started = time.perf_counter()
    async with RetabClient(settings, transport=transport) as client:
        if not with_key:
            problem = await client.unreachable()
            if problem is None:
                checks.append((True, f"base URL: {settings.base_url} answers"))
            else:
                checks.append((False, f"base URL: {redact.text(problem)}"))
            return False
        try:
            with call_deadline(PROBE_DEADLINE_S):
                await client.list_runs(limit=1)
        except (AuthenticationError, PermissionDeniedError) as error:
            checks.append((True, f"base URL: {settings.base_url} answers"))
            checks.append((False, f"key: {redact.text(explain(error, ''))}"))
            return False
        except APIConnectionError as error:
            checks.append((False, f"base URL: {redact.text(explain(error, ''))}"))
            return False
        except RetabError as error:
            checks.append((False, f"base URL: {settings.base_url}: {redact.text(explain(error, ''))}"))
            return False
    elapsed_ms = (time.perf_counter() - started) * 1000
    checks.append((True, f"base URL: {settings.base_url} answers ({elapsed_ms:.0f} ms for a list of runs)"))
    checks.append((True, "key: accepted by the API"))
    return True


def launcher(package_file: str | None = None, script: str | None = None) -> tuple[str, list[str]]:
    """The command (and its first arguments) a host should run: one that will still be there."""
    here = Path(package_file or __file__).resolve()
    for parent in here.parents:
        project = parent / "pyproject.toml"
        if project.is_file() and 'name = "retab-mcp"' in project.read_text():
            return "uv", ["run", "--quiet", "--directory", str(parent), "retab-mcp"]  # a clone
    installed = script if script is not None else shutil.which("retab-mcp")
    if installed and not any(marker in installed for marker in CACHE_MARKERS):
        return installed, []  # a virtual environment or pipx
    return "uvx", ["retab-mcp"]  # uv's cache, or nothing found: uvx fetches it when the host starts


def host_configs(settings: Settings, demo: bool, command: str, args: list[str]) -> dict[str, Any]:
    env: dict[str, str] = {} if demo else {"RETAB_API_KEY": "<key>"}
    if not demo and settings.base_url != DEFAULT_BASE_URL:
        env["RETAB_API_BASE_URL"] = settings.base_url
    if settings.allow_writes:
        env["RETAB_MCP_ALLOW_WRITES"] = "1"
    name = "retab-demo" if demo else "retab"
    server_args = [*args, *(["--demo"] if demo else [])]
    entry: dict[str, Any] = {"command": command, "args": server_args} | ({"env": env} if env else {})
    vscode_env = {k: ("${input:retab-key}" if k == "RETAB_API_KEY" else v) for k, v in env.items()}
    vscode: dict[str, Any] = {
        "servers": {
            name: {"type": "stdio", "command": command, "args": server_args} | ({"env": vscode_env} if env else {})
        }
    }
    if not demo:
        prompt = {"type": "promptString", "id": "retab-key", "description": "Retab API key", "password": True}
        vscode = {"inputs": [prompt], **vscode}
    return {"mcpServers": {name: entry}, "vscode": vscode}
