"""A JSON-RPC session with `retab-mcp --demo` over stdio, byte by byte: nothing between the test and the pipe.

Every line the server writes to stdout is kept, so a test can assert that all of them are JSON-RPC.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import Process

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

Message = dict[str, Any]


class RawSession:
    def __init__(self, process: Process) -> None:
        self.process = process
        self.lines: list[bytes] = []  # every stdout line, as written
        self.messages: list[Message] = []  # those that parse as JSON (all of them, if the server is clean)
        self._buffer = b""

    async def send(self, message: Mapping[str, Any] | bytes) -> None:
        assert self.process.stdin is not None
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        await self.process.stdin.send(data)

    async def call(self, id_: int, method: str, params: Mapping[str, Any] | None = None) -> None:
        await self.send({"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params else {})})

    async def until(self, predicate: Callable[[Message], bool]) -> Message:
        """Read stdout until a message matches; return it."""
        for message in self.messages:
            if predicate(message):
                return message
        assert self.process.stdout is not None
        while True:
            chunk = await self.process.stdout.receive()
            self._buffer += chunk
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                self.lines.append(line)
                message = json.loads(line)
                self.messages.append(message)
                if predicate(message):
                    return message

    async def answer(self, id_: int) -> Message:
        return await self.until(lambda m: m.get("id") == id_ and ("result" in m or "error" in m))

    async def close(self) -> tuple[bytes, bytes]:
        """Close stdin, as a host that goes away does; wait for the process; return what is left."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        await self.process.wait()
        return await self.rest()

    async def rest(self) -> tuple[bytes, bytes]:
        """What is left on stdout and stderr once the process has ended."""
        assert self.process.stdout is not None and self.process.stderr is not None
        out = self._buffer + b"".join([chunk async for chunk in self.process.stdout])
        err = b"".join([chunk async for chunk in self.process.stderr])
        self.lines.extend(line for line in out.split(b"\n") if line)
        return out, err


@asynccontextmanager
async def raw_session(*flags: str, env: Mapping[str, str] | None = None) -> AsyncIterator[RawSession]:
    command = [sys.executable, "-m", "retab_mcp", "--demo", *flags]
    async with await anyio.open_process(command, env=dict(env) if env is not None else None) as process:
        session = RawSession(process)
        await session.send(INITIALIZE)
        await session.answer(0)
        await session.send(INITIALIZED)
        yield session
