"""The key never shows, however the API quotes it: JSON-escaped (a \\u escape of any character, `\\/`),
split across two fields, URL-encoded, or inside a stack trace; through tool results, the run resource,
log records and the command line's output.

Redaction runs on what is shown, after decoding (retab_mcp.base.redaction): redacting the bytes received
missed `sk\\u005ftest_...`, which parsing turns back into the key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import pytest
from mcp import Client

from retab_mcp.base.clock import RealClock
from retab_mcp.base.config import Settings
from retab_mcp.base.redaction import FRAGMENT, Redactor
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, text_of

pytestmark = pytest.mark.anyio

KEY = "sk_test_ab/cd+ef=0123456789SECRET"  # with the characters JSON and URLs escape
RUN_ID = "exprun_NzgyL-WnaCEXXx5ET7SNt"


def every_char_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def json_string(raw: str) -> str:
    """A JSON string literal whose content is `raw` as written (escapes and all)."""
    return '"' + raw.replace('"', '\\"').replace("\n", "\\n") + '"'


QUOTINGS = {
    "as is": KEY,
    "every character \\u-escaped": every_char_escaped(KEY),
    "one character \\u-escaped": KEY.replace("_", "\\u005f", 1),
    "upper-case \\u escapes": KEY.replace("_", "\\u005F"),
    "slashes escaped": KEY.replace("/", "\\/"),
    "URL-encoded": quote(KEY, safe=""),
}


def error_body(quoted: str) -> bytes:
    return (
        '{"detail": {"code": "HTTP_EXCEPTION", "message": "An HTTP exception occurred.", '
        f'"details": {{"error": {json_string("The key " + quoted + " is not valid for this workflow")}}}}}}}'
    ).encode()


def run_body(trace: str) -> bytes:
    return (
        f'{{"id": "{RUN_ID}", "lifecycle": {{"status": "error", "message": "Block failed", '
        f'"details": {{"stack_trace": {json_string(trace)}}}}}, "total_document_count": 2}}'
    ).encode()


def leaked(text: str) -> list[str]:
    """Every run of FRAGMENT characters of the key found in `text` (the key, or enough of it)."""
    return [KEY[i : i + FRAGMENT] for i in range(len(KEY) - FRAGMENT + 1) if KEY[i : i + FRAGMENT] in text]


@pytest.fixture
def settings() -> Settings:
    return Settings(api_key=KEY, base_url=SIM_URL)


@pytest.fixture
async def tools(settings: Settings, sim: SimulatedRetab, clock: VirtualClock) -> AsyncIterator[Client]:
    async with Client(build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)) as client:
        yield client


def shown(result: Any) -> str:
    return text_of(result) + json.dumps(result.structured_content)


@pytest.mark.parametrize("quoting", list(QUOTINGS))
async def test_a_quoted_key_in_an_api_error_never_reaches_the_model_or_the_log(
    tools: Client, sim: SimulatedRetab, quoting: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.inject("raw", status=422, body=error_body(QUOTINGS[quoting]), times=10)
    result = await tools.call_tool("get_experiment_run", {"run_id": RUN_ID})
    sim.inject("raw", status=422, body=error_body(QUOTINGS[quoting]), times=10)
    with pytest.raises(Exception) as resource_error:  # noqa: PT011 - the SDK's error for a failed read
        await tools.read_resource(f"retab://experiment-runs/{RUN_ID}")
    assert result.is_error and "[redacted]" in text_of(result) and "is not valid" in text_of(result)
    assert not leaked(shown(result)) and not leaked(str(resource_error.value))
    assert not leaked(caplog.text)


@pytest.mark.parametrize("quoting", list(QUOTINGS))
@pytest.mark.slow
async def test_a_quoted_key_in_a_stack_trace_never_reaches_the_model(
    tools: Client, sim: SimulatedRetab, quoting: str
) -> None:
    trace = f"Traceback (most recent call last):\n  File x\nValueError: bad key {QUOTINGS[quoting]}"
    sim.inject("raw", status=200, body=run_body(trace), path_contains=RUN_ID, times=10)
    results = [
        await tools.call_tool("get_experiment_run", {"run_id": RUN_ID}),
        await tools.call_tool("triage_experiment_run", {"run_id": RUN_ID}),
    ]
    resource = await tools.read_resource(f"retab://experiment-runs/{RUN_ID}")
    for result in results:
        assert not result.is_error and "ValueError: bad key" in text_of(result)
        assert not leaked(shown(result))
    assert not leaked(str(resource))


async def test_a_key_split_across_two_fields_does_not_come_back_whole(tools: Client, sim: SimulatedRetab) -> None:
    half = len(KEY) // 2
    body = (
        f'{{"id": "{RUN_ID}", "lifecycle": {{"status": "error", "message": "{KEY[:half]}", '
        f'"details": {{"stack_trace": "{every_char_escaped(KEY[half:])}", "block_name": "x"}}}}}}'
    ).encode()
    sim.inject("raw", status=200, body=body, path_contains=RUN_ID, times=10)
    result = await tools.call_tool("get_experiment_run", {"run_id": RUN_ID})
    assert not result.is_error and not leaked(shown(result).replace("\n", "").replace(" ", ""))


def test_the_redactor_takes_every_form_and_fragment_of_a_secret() -> None:
    redact = Redactor([KEY, None])
    for quoting in QUOTINGS.values():
        assert not leaked(unescaped(redact.text(f"before {quoting} after"))), quoting
    assert redact.text("nothing secret here") == "nothing secret here"
    assert redact.deep({"a": [KEY[:20], {"b": KEY}]}) == {"a": ["[redacted]", {"b": "[redacted]"}]}
    assert not Redactor([None, ""]) and Redactor([None]).text(KEY) == KEY


@pytest.mark.parametrize("quoting", ["every character \\u-escaped", "slashes escaped", "URL-encoded"])
@pytest.mark.slow
async def test_the_command_line_never_prints_a_quoted_key(quoting: str) -> None:
    async with anyio.create_task_group() as group:
        api = Loopback(SimulatedRetab(clock=RealClock()), group)
        api.start()
        api.app.inject("raw", status=422, body=error_body(QUOTINGS[quoting]), times=10)
        env = {**os.environ, "RETAB_API_KEY": KEY}
        with anyio.fail_after(30):
            done = await anyio.run_process(
                [sys.executable, "-m", "retab_mcp", "get", RUN_ID, "--base-url", api.url, "--log-level", "DEBUG"],
                check=False,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        output = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 1 and "[redacted]" in output and not leaked(output), output
        await api.stop()


def unescaped(text: str) -> str:
    """`text` with JSON's \\u and \\/ escapes decoded: an escaped key shown is a key shown."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text).replace("\\/", "/")


@pytest.mark.parametrize("quoting", list(QUOTINGS))
async def test_a_quoted_key_in_a_body_that_cannot_be_read_is_not_shown_in_its_excerpt(
    tools: Client, sim: SimulatedRetab, quoting: str
) -> None:
    body = f'{{"id": "{RUN_ID}", "note": "{QUOTINGS[quoting]}", "lifecycle": '.encode()  # cut short: not JSON
    sim.inject("malformed", body=body, times=10)
    result = await tools.call_tool("get_experiment_run", {"run_id": RUN_ID})
    assert result.is_error and "could not read" in text_of(result) and "body starts" in text_of(result)
    assert not leaked(unescaped(shown(result)))
