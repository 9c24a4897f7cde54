"""`retab-mcp doctor`, and the placeholder key the server refuses before any request."""

from __future__ import annotations

import json
import os
import sys

import anyio
import httpx2
import pytest
from mcp import Client

from retab_mcp.base.config import Settings, placeholder_key
from retab_mcp.entry.doctor import run_doctor
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY, text_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("key", "placeholder"),
    [
        ("sk_live_REPLACE_ME", True),
        ("sk_live_...", True),
        ("<your key>", True),
        ("YOUR_API_KEY", True),
        ("sk_test_xxxxxxxxxxxx", True),
        ("sk_live_0123456789abcdef", False),
        (TEST_KEY, False),
    ],
)
def test_placeholders_are_told_from_keys(key: str, placeholder: bool) -> None:
    assert placeholder_key(key) is placeholder


async def test_a_placeholder_key_is_said_at_once_without_a_request(mode: str) -> None:
    sim = SimulatedRetab()
    settings = Settings(api_key="sk_live_REPLACE_ME", base_url=SIM_URL)
    async with Client(build_server(settings, transport=httpx2.ASGITransport(app=sim)), mode=mode) as client:  # type: ignore[arg-type]
        result = await client.call_tool("list_experiment_runs", {})
    assert result.is_error and "placeholder" in text_of(result) and "REPLACE_ME" not in text_of(result)
    assert sim.requests == []


async def doctor(sim: SimulatedRetab, key: str | None, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = await run_doctor(Settings(api_key=key, base_url=SIM_URL), httpx2.ASGITransport(app=sim))
    return status, capsys.readouterr().out


async def test_doctor_exits_0_only_when_a_call_would_work(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await doctor(SimulatedRetab(), TEST_KEY, capsys)
    assert status == 0 and "ok   key: accepted by the API" in out and "ok   base URL: http://retab.test answers" in out
    first = out.index("{")
    snippet, end = json.JSONDecoder().raw_decode(out[first:])
    assert snippet["mcpServers"]["retab"]["env"] == {"RETAB_API_KEY": "<key>", "RETAB_API_BASE_URL": SIM_URL}
    vscode = json.loads(out[out.index("{", first + end) :])
    assert vscode["servers"]["retab"]["type"] == "stdio" and "inputs" in vscode  # VS Code's own format
    assert TEST_KEY not in out
    rejected = SimulatedRetab(accepted_keys={"sk_live_someone_else_0000"})
    status, out = await doctor(rejected, TEST_KEY, capsys)
    assert status == 1 and "FAIL key: Retab rejected the API key (HTTP 401)" in out
    for key, line in (
        (None, "FAIL key: RETAB_API_KEY is not set"),
        ("sk_live_REPLACE_ME", "FAIL key: RETAB_API_KEY holds"),
    ):
        status, out = await doctor(SimulatedRetab(), key, capsys)
        assert status == 1 and line in out and "ok   base URL: http://retab.test answers" in out  # checked anyway


@pytest.mark.slow
async def test_doctor_over_an_unreachable_url_is_one_failing_line_and_no_traceback() -> None:
    env = {**os.environ, "RETAB_API_KEY": "sk_live_0123456789abcdef", "RETAB_API_BASE_URL": "http://127.0.0.1:9"}
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, "-m", "retab_mcp", "doctor"], check=False, env=env)
    out = done.stdout.decode()
    assert done.returncode == 1 and "Traceback" not in out + done.stderr.decode()
    assert "FAIL base URL: Could not reach the Retab API at http://127.0.0.1:9" in out
    assert "0123456789abcdef" not in out


def test_no_random_key_is_taken_for_a_placeholder() -> None:
    import random
    import string

    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + "_-"
    keys = [f"sk_{rng.choice(['live', 'test'])}_" + "".join(rng.choices(alphabet, k=32)) for _ in range(20_000)]
    assert not [key for key in keys if placeholder_key(key)]
