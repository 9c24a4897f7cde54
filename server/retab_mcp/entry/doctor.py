"""`retab-mcp doctor`: is this setup going to work? One line per thing checked, then the host config to
paste. Exit 0 only when a call would work: a real key the API accepts, at a base URL that answers."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import TYPE_CHECKING

from ..api.client import RetabClient, call_deadline
from ..api.errors import APIConnectionError, AuthenticationError, PermissionDeniedError, RetabError
from ..base.config import Settings, placeholder_key
from ..base.redaction import Redactor
from ..views.messages import explain

if TYPE_CHECKING:
    import httpx2

HOST_LIMIT_S = 60  # what hosts allow a tool call, about
PROBE_DEADLINE_S = 15


async def run_doctor(settings: Settings, transport: httpx2.AsyncBaseTransport | None = None, demo: bool = False) -> int:
    redact = Redactor(settings.secrets)
    lines: list[tuple[bool | None, str]] = []  # (ok, or None for "for information"), line
    works = False
    key = settings.api_key
    if not key:
        lines.append((False, "key: RETAB_API_KEY is not set (add it to the env block of the host config)"))
    elif placeholder_key(key):
        lines.append((False, "key: RETAB_API_KEY holds a placeholder, not a key: paste your real key"))
    else:
        kind = "live" if key.startswith("sk_live_") else "test" if key.startswith("sk_test_") else "unprefixed"
        lines.append((True, f"key: set ({kind} key, {len(key)} characters)"))
        works = await _probe(settings, transport, lines, redact)
    within = settings.max_wait_s <= HOST_LIMIT_S - 5
    lines.append(
        (
            within,
            f"max wait: {settings.max_wait_s:g} s per wait call"
            + (f", under the ~{HOST_LIMIT_S} s hosts allow" if within else f": hosts end calls at ~{HOST_LIMIT_S} s"),
        )
    )
    writes = "on: start_experiment_run and cancel_experiment_run are offered" if settings.allow_writes else "off"
    lines.append((None, f"writes: {writes} (RETAB_MCP_ALLOW_WRITES)"))
    for ok, line in lines:
        mark = "info" if ok is None else "ok" if ok else "FAIL"
        print(redact.text(f"{mark:<5}{line}"))
    print("\nHost config (Claude Desktop, Cursor: mcpServers; VS Code: servers), your key in place of <key>:")
    print(json.dumps(_snippet(settings, demo), indent=2))
    return 0 if works else 1


async def _probe(
    settings: Settings,
    transport: httpx2.AsyncBaseTransport | None,
    lines: list[tuple[bool | None, str]],
    redact: Redactor,
) -> bool:
    started = time.perf_counter()
    try:
        async with RetabClient(settings, transport=transport) as client:
            with call_deadline(PROBE_DEADLINE_S):
                await client.list_runs(limit=1)
    except (AuthenticationError, PermissionDeniedError) as error:
        lines.append((True, f"base URL: {settings.base_url} answers"))
        lines.append((False, f"key: {redact.text(explain(error, ''))}"))
        return False
    except APIConnectionError as error:
        lines.append((False, f"base URL: {redact.text(explain(error, ''))}"))
        return False
    except RetabError as error:
        lines.append((False, f"base URL: {settings.base_url}: {redact.text(explain(error, ''))}"))
        return False
    elapsed_ms = (time.perf_counter() - started) * 1000
    lines.append((True, f"base URL: {settings.base_url} answers ({elapsed_ms:.0f} ms for a list of runs)"))
    lines.append((True, "key: accepted by the API"))
    return True


def _snippet(settings: Settings, demo: bool) -> dict[str, object]:
    command = shutil.which("retab-mcp") or sys.argv[0]
    if demo:
        return {"mcpServers": {"retab-demo": {"command": command, "args": ["--demo"]}}}
    env: dict[str, str] = {"RETAB_API_KEY": "<key>"}
    if settings.base_url != "https://api.retab.com":
        env["RETAB_API_BASE_URL"] = settings.base_url
    if settings.allow_writes:
        env["RETAB_MCP_ALLOW_WRITES"] = "1"
    return {"mcpServers": {"retab": {"command": command, "args": [], "env": env}}}
