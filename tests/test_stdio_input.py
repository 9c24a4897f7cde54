"""Whatever arrives on stdin, the server answers per JSON-RPC and keeps serving; it never exits on input.

Through a real `retab-mcp --demo` process, byte by byte (tests/raw_stdio.py).
"""

from __future__ import annotations

import json

import anyio
import pytest

from .raw_stdio import raw_session

pytestmark = pytest.mark.anyio

PARSE_ERROR, INVALID_REQUEST = -32700, -32600


@pytest.mark.slow
async def test_bad_json_empty_and_batch_arrays_get_errors_and_the_server_keeps_serving() -> None:
    with anyio.fail_after(60):
        async with raw_session() as session:
            await session.send(b"{not json\n")
            await session.send(b"[]\n")
            batch = [
                {"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": "eight", "method": "ping"},
                3,
            ]
            await session.send(json.dumps(batch).encode() + b"\n")
            await session.send(b"\n   \n")  # blank lines: nothing to answer
            await session.call(9, "tools/list")
            answered = await session.answer(9)
            await session.close()
    errors = [m for m in session.messages if "error" in m]
    assert [(e["id"], e["error"]["code"]) for e in errors] == [
        (None, PARSE_ERROR),
        (None, INVALID_REQUEST),
        (7, INVALID_REQUEST),
        ("eight", INVALID_REQUEST),
        (None, INVALID_REQUEST),
    ]
    assert "tools" in answered["result"] and session.process.returncode == 0
    assert all(json.loads(line) for line in session.lines)  # nothing but JSON-RPC on stdout


@pytest.mark.slow
async def test_a_line_of_70_mb_is_skipped_with_an_error_and_the_server_keeps_serving() -> None:
    with anyio.fail_after(120):
        async with raw_session() as session:
            huge = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"x" * (70 * 2**20) + b'"}}\n'
            await session.send(huge)
            await session.call(2, "tools/list")
            answered = await session.answer(2)
            await session.close()
    errors = [m for m in session.messages if "error" in m]
    assert [(e["id"], e["error"]["code"]) for e in errors] == [(None, INVALID_REQUEST)]
    assert "longer than" in errors[0]["error"]["message"]
    assert "tools" in answered["result"] and session.process.returncode == 0


@pytest.mark.slow
async def test_json_nested_deeper_than_any_parser_goes_gets_an_error_and_the_server_keeps_serving() -> None:
    deep_valid = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_experiment_run"}}
    nested: object = "exprun_x"
    for _ in range(600):  # deep enough for the SDK's parser, not for Python's json
        nested = [nested]
    deep_valid["params"]["arguments"] = {"run_id": nested}
    with anyio.fail_after(60):
        async with raw_session() as session:
            await session.send(b"[" * 100_000 + b"\n")
            await session.send(b'{"a":' * 100_000 + b"\n")
            await session.send(b'{"jsonrpc": "2.0", "id": 2, "method": "ping", "params": ' + b"[" * 50_000 + b"\n")
            await session.send(json.dumps(deep_valid).encode() + b"\n")
            await session.call(9, "tools/list")
            answered = await session.answer(9)
            await session.close()
    errors = [m for m in session.messages if "error" in m]
    assert [e["error"]["code"] for e in errors[:3]] == [PARSE_ERROR, PARSE_ERROR, PARSE_ERROR]
    assert all(e["id"] is None for e in errors[:3])
    deep_answer = next(m for m in session.messages if m.get("id") == 3)
    assert deep_answer["error"]["code"] == INVALID_REQUEST and "nested" in deep_answer["error"]["message"]
    assert "tools" in answered["result"] and session.process.returncode == 0
