"""Serving stdio without worker threads, when stdin and stdout are pipes (as hosts start servers).

The SDK reads stdin and writes stdout through anyio's file wrapper, which hands every line to a worker
thread: about a dozen thread hand-offs per tool call, and a read that no cancellation can interrupt, so
a signal cannot end the server while it waits for input. On pipes, asyncio can read and write without
threads; this module does that and hands the streams to the SDK's own stdio transport. Anything else
(a terminal, a regular file, another platform) is served by the SDK as it is.

As the SDK does, it keeps stray writes off the wire while serving: fd 1 points at stderr and fd 0 at the
null device, and the protocol uses private duplicates of the original descriptors.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, cast

from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from ..tools.sdk_compat import lowlevel

LINE_LIMIT = 64 * 2**20  # the longest JSON-RPC message read, in bytes


def can_serve_without_threads() -> bool:
    if sys.platform == "win32":
        return False
    try:
        return all(stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode) for fd in (0, 1))
    except OSError:
        return False


class _Lines:
    """stdin as the SDK's reader expects it: an async iterator of decoded lines, each a JSON-RPC message.

    What the SDK's transport would drop without a word, or die of, is answered here, per JSON-RPC 2.0,
    and the server reads on: a line that is not JSON, or JSON nested too deeply to parse, gets a parse
    error with id null; `[]` and a batch
    (which the protocol versions this server speaks do not allow) get an invalid-request error, for each
    request in it that has an id; a line longer than LINE_LIMIT is skipped whole, with an error. Blank
    lines are ignored.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: _Writer) -> None:
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._searched = 0  # bytes of the buffer known to hold no newline
        self._discarding = False  # inside a line longer than the limit

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = await self._next_line()
            if line is None:
                raise StopAsyncIteration
            text = line.decode("utf-8", errors="replace")
            replies = _refusals(text)
            if replies is None:
                return text
            for reply in replies:
                await self._send(reply)

    async def _next_line(self) -> bytes | None:
        while True:
            newline = self._buffer.find(b"\n", self._searched)
            if newline >= 0:
                line = bytes(self._buffer[: newline + 1])
                del self._buffer[: newline + 1]
                self._searched = 0
                if not self._discarding:
                    return line
                self._discarding = False
                await self._send(_error(None, INVALID_REQUEST, f"message longer than {LINE_LIMIT} bytes: skipped"))
                continue
            if len(self._buffer) > LINE_LIMIT:  # keep no more of it than the limit
                self._discarding = True
                self._buffer.clear()
            self._searched = len(self._buffer)
            chunk = await self._reader.read(2**16)
            if not chunk:
                rest = bytes(self._buffer) if self._buffer and not self._discarding else None
                self._buffer.clear()
                return rest
            self._buffer += chunk

    async def _send(self, message: dict[str, Any]) -> None:
        await self._writer.write(json.dumps(message, separators=(",", ":")) + "\n")
        await self._writer.flush()


PARSE_ERROR, INVALID_REQUEST = -32700, -32600


def _error(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


NESTING_MAX = 64


def _depth(value: object) -> int:
    """How deeply `value` nests lists and objects (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(cast(dict[str, object], item).values())
        elif isinstance(item, list):
            children = cast(list[object], item)
        else:
            continue
        deepest = max(deepest, level)
        if deepest > NESTING_MAX:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _refusals(text: str) -> list[dict[str, Any]] | None:
    """The error replies for a line the SDK must not see, or None to pass it on."""
    if not text.strip():
        return []
    try:
        message: object = json.loads(text)
    except ValueError:
        return [_error(None, PARSE_ERROR, "Parse error: the line is not JSON")]
    except RecursionError:  # JSON nested deeper than the parser goes: no protocol message is
        return [_error(None, PARSE_ERROR, "Parse error: the JSON is nested too deeply")]
    if _depth(message) > NESTING_MAX:
        # The SDK's parser stops at about 200 levels and then answers nothing at all; no message of this
        # protocol nests beyond a few.
        request_id = cast(dict[str, object], message).get("id") if isinstance(message, dict) else None
        return [_error(request_id, INVALID_REQUEST, f"Invalid Request: nested deeper than {NESTING_MAX} levels")]
    if not isinstance(message, list):
        return None
    items = cast(list[object], message)
    if not items:
        return [_error(None, INVALID_REQUEST, "Invalid Request: an empty batch")]
    refused = "Invalid Request: batches are not supported; send each message on its own line"
    replies: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            replies.append(_error(None, INVALID_REQUEST, refused))
        elif "id" in item:
            replies.append(_error(cast(dict[str, object], item)["id"], INVALID_REQUEST, refused))
    return replies


class _Writer:
    """stdout as the SDK's writer expects it: `write` then `flush`."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@asynccontextmanager
async def _pipes() -> AsyncGenerator[tuple[_Lines, _Writer]]:
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # what else reads stdin gets EOF...
    os.dup2(2, 1)  # ...and what else prints goes to stderr, not onto the wire
    os.close(null)
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    try:
        wire = _Writer(writer)
        yield _Lines(reader, wire), wire
    finally:
        read_transport.close()
        write_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve `server` over stdio until stdin closes."""
    if not can_serve_without_threads():
        await server.run_stdio_async()
        return
    server_loop = lowlevel(server)
    async with _pipes() as (lines, writer), stdio_server(lines, writer) as (read, write):  # type: ignore[arg-type]
        await server_loop.run(read, write, server_loop.create_initialization_options())
