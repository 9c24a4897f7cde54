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
import os
import stat
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

LINE_LIMIT = 64 * 2**20  # the longest JSON-RPC message read, in bytes


def can_serve_without_threads() -> bool:
    if sys.platform == "win32":
        return False
    try:
        return all(stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode) for fd in (0, 1))
    except OSError:
        return False


class _Lines:
    """stdin as the SDK's reader expects it: an async iterator of decoded lines."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


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
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    try:
        yield _Lines(reader), _Writer(writer)
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
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    async with _pipes() as (lines, writer), stdio_server(lines, writer) as (read, write):  # type: ignore[arg-type]
        await lowlevel.run(read, write, lowlevel.create_initialization_options())
