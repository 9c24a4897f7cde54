"""Server processes in tests: starting one on a port the system chooses, and reading its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import ByteReceiveStream

# What the server writes to stderr once connections queue for it, with the port it bound.
_LISTENING_PORT = re.compile(rb"serving on http://[^\s/]+:(\d+)/")


async def read_until(stream: ByteReceiveStream | None, marker: bytes) -> bytes:
    """Read `stream` until `marker` has appeared; return all that was read. Bound it with fail_after."""
    assert stream is not None
    seen = b""
    while marker not in seen:
        seen += await stream.receive()
    return seen


async def listening_port(stream: ByteReceiveStream | None) -> tuple[int, bytes]:
    """Read a server's stderr until it says it listens; return the port it names (it was started with
    --port 0, so the system chose it and no other process can have raced for it) and what was read."""
    assert stream is not None
    seen = b""
    while (found := _LISTENING_PORT.search(seen)) is None:
        seen += await stream.receive()
    return int(found.group(1)), seen


@asynccontextmanager
async def serve(
    *flags: str, env: dict[str, str] | None = None, demo: bool = True, stderr: bytearray | None = None
) -> AsyncIterator[int]:
    """A `--demo` server process (without `demo`: the API `env` names) with `flags`; yields the port it
    listens on, and ends it on exit. With `stderr`, all it writes there is kept in it."""
    command = [sys.executable, "-m", "retab_mcp", *(["--demo"] if demo else []), "--port", "0", *flags]
    full_env = {**os.environ, **env} if env else None
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=full_env) as process:
        with anyio.fail_after(30):  # the server says when it listens, and on which port; no guessing
            port, seen = await listening_port(process.stderr)
        async with anyio.create_task_group() as group:
            if stderr is not None:
                stderr += seen
                group.start_soon(_keep, process.stderr, stderr)
            try:
                yield port
            finally:
                process.terminate()
                await process.wait()
                group.cancel_scope.cancel()


async def _keep(stream: ByteReceiveStream | None, into: bytearray) -> None:
    assert stream is not None
    async for chunk in stream:
        into.extend(chunk)
