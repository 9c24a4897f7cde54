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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

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
