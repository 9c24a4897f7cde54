"""A team deployment on this machine, as deploy/ describes it: Debian's redis-server, `--stateless`
replicas of retab-mcp, and Debian's nginx in front rendered from deploy/nginx.conf.template. Redis and
nginx listen on Unix sockets in a directory of the caller's, so no port is guessed; the replicas bind
port 0 and say which they got. Used by tests/test_replicas.py and benchmarks/replicas.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.app import RecordedRequest

from .processes import listening_port, read_until

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
PARTITION_SECRET = "partition-secret-for-tests-0123456789"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def missing_parts() -> str | None:
    for name, path in (("nginx", NGINX), ("redis-server", REDIS)):
        if not Path(path).exists():
            return f"{name} is not installed: `apt-get install nginx-light redis-server` (.ci/run does)"
    return None


def require_parts() -> None:
    """Skip a test of the deployment where its parts are missing; under CI, where .ci/run installs them, fail."""
    missing = missing_parts()
    if missing and os.environ.get("CI"):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)


RUN_PATH = "/v1/workflows/experiments/runs/"
TERMINAL = {"completed", "error", "cancelled"}


def polls_of(sim: SimulatedRetab, run_id: str) -> list[float]:
    return [r.t for r in sim.requests if r.method == "GET" and r.path == RUN_PATH + run_id]


class Arrivals:
    """Events on the requests the simulated API receives: the run polled `times` times, the run polled once it
    has ended (after that poll, its waiters are told within moments)."""

    def __init__(self, sim: SimulatedRetab) -> None:
        self.sim = sim
        self._waiting: list[tuple[Callable[[RecordedRequest], bool], anyio.Event]] = []
        sim.request_hook = self._arrived

    def _arrived(self, request: RecordedRequest) -> None:
        for predicate, event in self._waiting:
            if predicate(request):
                event.set()

    def _on(self, predicate: Callable[[RecordedRequest], bool]) -> anyio.Event:
        event = anyio.Event()
        self._waiting.append((predicate, event))
        return event

    def polled(self, run_id: str, times: int = 1) -> anyio.Event:
        return self._on(
            lambda r: r.method == "GET" and r.path == RUN_PATH + run_id and len(polls_of(self.sim, run_id)) >= times
        )

    def ended(self, run_id: str) -> anyio.Event:
        run = next(run for run in self.sim.world.runs if run.id == run_id)
        return self._on(
            lambda r: r.method == "GET" and r.path == RUN_PATH + run_id and run.state_at(r.t)[0] in TERMINAL
        )


@dataclass
class Replica:
    index: int
    port: int
    process: anyio.abc.Process
    stderr: bytearray = field(default_factory=bytearray)

    async def metrics(self) -> str:
        async with httpx2.AsyncClient(timeout=10) as http:
            return (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text

    def counter(self, text: str, name: str) -> float:
        found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@dataclass
class Deployment:
    directory: Path
    replicas: list[Replica]
    nginx_socket: Path
    redis: anyio.abc.Process | None
    group: anyio.abc.TaskGroup

    def http(self, limits: httpx2.Limits | None = None, **kwargs: Any) -> httpx2.AsyncClient:
        """A client of nginx (its Unix socket), as an agent's host would be of the public address. The
        limits go to the transport: a client given a transport of its own does not apply its own."""
        transport = httpx2.AsyncHTTPTransport(uds=str(self.nginx_socket), limits=limits or httpx2.Limits())
        return httpx2.AsyncClient(transport=transport, base_url="http://localhost", **kwargs)

    @asynccontextmanager
    async def agent(self, http: httpx2.AsyncClient) -> AsyncIterator[Client]:
        async with Client(streamable_http_client("http://localhost/mcp", http_client=http)) as client:  # type: ignore[arg-type]
            # As a host does: tools are listed before they are called. Unlisted, the SDK's client fetches the
            # listing after each answer to check it against the output schema, one more trip through nginx.
            await client.list_tools()
            yield client

    def kill(self, replica: Replica) -> None:
        replica.process.send_signal(signal.SIGKILL)

    async def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.terminate()
        await self.redis.wait()


async def _drain(stream: Any, into: bytearray) -> None:
    async for chunk in stream:
        into.extend(chunk)


@asynccontextmanager
async def deployment(
    directory: Path, api_url: str, key: str, replicas: int = 3, *, env: dict[str, str] | None = None
) -> AsyncIterator[Deployment]:
    """redis-server, `replicas` replicas over the API at `api_url` with `key`, and nginx in front."""
    redis_socket = directory / "redis.sock"
    nginx_socket = directory / "nginx.sock"
    redis_command = [REDIS, "--port", "0", "--unixsocket", str(redis_socket), "--save", "", "--appendonly", "no"]
    async with anyio.create_task_group() as group:
        redis = await anyio.open_process(redis_command, stdin=subprocess.DEVNULL, cwd=directory)
        with anyio.fail_after(20):
            await read_until(redis.stdout, b"ready to accept connections")
        group.start_soon(_drain, redis.stdout, bytearray())
        started: list[Replica] = []
        base_env = {
            **os.environ,
            "RETAB_API_BASE_URL": api_url,
            "RETAB_API_KEY": key,
            "RETAB_MCP_REDIS_URL": f"unix://{redis_socket}",
            "RETAB_MCP_PARTITION_SECRET": PARTITION_SECRET,
            **(env or {}),
        }
        nginx: anyio.abc.Process | None = None
        try:
            for index in range(replicas):
                command = [sys.executable, "-m", "retab_mcp", "--transport", "http", "--stateless", "--port", "0"]
                replica_env = {**base_env, "RETAB_MCP_REPLICA_ID": f"replica-{index}"}
                process = await anyio.open_process(command, stdin=subprocess.DEVNULL, env=replica_env)
                with anyio.fail_after(30):
                    port, seen = await listening_port(process.stderr)
                replica = Replica(index, port, process, bytearray(seen))
                group.start_soon(_drain, process.stderr, replica.stderr)
                started.append(replica)
            upstreams = "".join(f"        server 127.0.0.1:{r.port} max_fails=1 fail_timeout=2s;\n" for r in started)
            routes = "".join(f'        "~^replica-{r.index}[.]" 127.0.0.1:{r.port};\n' for r in started)
            config = (
                TEMPLATE.read_text()
                .replace("@PREFIX@", str(directory))
                .replace("@LISTEN@", f"unix:{nginx_socket}")
                .replace("@UPSTREAMS@\n", upstreams)
                .replace("@ROUTES@\n", routes)
                .replace(f"error_log {directory}/nginx-error.log warn;", "error_log stderr notice;")
            )
            (directory / "nginx.conf").write_text(config)
            nginx = await anyio.open_process(
                [NGINX, "-c", str(directory / "nginx.conf"), "-p", str(directory)], stdin=subprocess.DEVNULL
            )
            with anyio.fail_after(20):  # it says so once its socket listens and its worker runs
                await read_until(nginx.stderr, b"start worker process")
            group.start_soon(_drain, nginx.stderr, bytearray())
            yield Deployment(directory, started, nginx_socket, redis, group)
        finally:
            for process in [*(r.process for r in started), *([nginx] if nginx else []), redis]:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):  # killed by the test already
                        process.terminate()
            for process in [*(r.process for r in started), *([nginx] if nginx else []), redis]:
                await process.wait()
            group.cancel_scope.cancel()
