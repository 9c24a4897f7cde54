"""Reading a child process's output in tests."""

from __future__ import annotations

import re

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
