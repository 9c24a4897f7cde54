"""Reading a child process's output in tests."""

from __future__ import annotations

from anyio.abc import ByteReceiveStream

LISTENING = b"Uvicorn running on"  # what the server writes to stderr once it accepts connections


async def read_until(stream: ByteReceiveStream | None, marker: bytes) -> bytes:
    """Read `stream` until `marker` has appeared; return all that was read. Bound it with fail_after."""
    assert stream is not None
    seen = b""
    while marker not in seen:
        seen += await stream.receive()
    return seen
