"""Server processes in tests: starting one on a port the system chooses, and reading its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
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


@dataclass
class Served:
    """A server process serving on a port: its process, the port it bound, and what it wrote to stderr."""

    process: anyio.abc.Process
    port: int
    stderr: bytearray = field(default_factory=bytearray)
    _more: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def text(self) -> str:
        """What the server wrote to stderr so far."""
        return self.stderr.decode(errors="replace")

    async def wait_for(self, marker: bytes) -> None:
        """Return once the server has written `marker` to stderr. Bound it with fail_after."""
        await self.wait_until(lambda _: marker in self.stderr)

    async def wait_until(self, said: Callable[[str], bool]) -> None:
        """Return once what the server has written to stderr makes `said` true. Bound it with fail_after."""
        while not said(self.text):
            await self._more.wait()

    def _heard(self, chunk: bytes) -> None:
        self.stderr.extend(chunk)
        self._more.set()
        self._more = anyio.Event()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1])


@asynccontextmanager
async def serve(
    *flags: str, env: dict[str, str] | None = None, demo: bool = True, nofile: int | None = None
) -> AsyncIterator[Served]:
    """The one way tests start a server process: `retab-mcp [--demo] --port 0 FLAGS` (without `demo`, over the
    API `env` names), under a file limit of `nofile` when given. Yields it once it listens, keeps all it writes
    to stderr, and ends it on exit (unless the test ended it)."""
    command = [sys.executable, "-m", "retab_mcp", *(["--demo"] if demo else []), "--port", "0", *flags]
    if nofile is not None:
        command = ["sh", "-c", f'ulimit -n {nofile} && exec "$@"', "sh", *command]
    full_env = {**os.environ, **env} if env else None
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=full_env) as process:
        with anyio.fail_after(30):  # the server says when it listens, and on which port; no guessing
            port, seen = await listening_port(process.stderr)
        served = Served(process, port, bytearray(seen))
        async with anyio.create_task_group() as group:
            group.start_soon(_keep, process.stderr, served)
            try:
                yield served
            finally:
                if process.returncode is None:
                    process.terminate()
                await process.wait()
                group.cancel_scope.cancel()


async def _keep(stream: ByteReceiveStream | None, served: Served) -> None:
    assert stream is not None
    async for chunk in stream:
        served._heard(chunk)  # pyright: ignore[reportPrivateUsage]
