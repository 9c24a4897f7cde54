"""The HTTP and SSE transports locked down: bearer token, DNS-rebinding protection, binding rules, timeouts."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from retab_mcp.base.config import Settings
from retab_mcp.transports.http import HttpOptions, uvicorn_config

from .helpers import FINISHED
from .processes import serve
from .raw_stdio import INITIALIZE

pytestmark = pytest.mark.anyio

TOKEN = "tok_http_0123456789SECRETTOKEN"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def post_initialize(port: int, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


@pytest.mark.slow
async def test_with_a_token_every_request_needs_it() -> None:
    with anyio.fail_after(30):
        async with serve("--transport", "http", env={"RETAB_MCP_AUTH_TOKEN": TOKEN}) as served:
            port = served.port
            missing = await post_initialize(port)
            wrong = await post_initialize(port, Authorization="Bearer " + TOKEN[:-1] + "x")
            basic = await post_initialize(port, Authorization="Basic " + TOKEN)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                httpx2.AsyncClient(headers=headers) as http,
                Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
            ):
                result = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in refused.text
    assert not result.is_error


@pytest.mark.slow
async def test_sse_needs_the_token_too() -> None:
    with anyio.fail_after(30):
        async with (
            serve("--transport", "sse", env={"RETAB_MCP_AUTH_TOKEN": TOKEN}) as served,
            httpx2.AsyncClient() as http,
        ):
            port = served.port
            refused = await http.get(f"http://127.0.0.1:{port}/sse")
            refused_post = await http.post(f"http://127.0.0.1:{port}/messages/?session_id=x", json=INITIALIZE)
    assert refused.status_code == 401 and refused_post.status_code == 401


@pytest.mark.slow
async def test_dns_rebinding_protection_checks_host_and_origin() -> None:
    with anyio.fail_after(30):
        async with serve("--transport", "http") as served:
            port = served.port
            rebound = await post_initialize(port, Host="evil.example")
            foreign = await post_initialize(port, Origin="http://evil.example")
            local = await post_initialize(port, Origin=f"http://localhost:{port}")
    assert (rebound.status_code, foreign.status_code, local.status_code) == (421, 403, 200)


@pytest.mark.slow
async def test_allowed_hosts_admit_a_deployment_behind_a_proxy() -> None:
    env = {"RETAB_MCP_ALLOWED_HOSTS": "mcp.example.com", "RETAB_MCP_ALLOWED_ORIGINS": "https://mcp.example.com"}
    with anyio.fail_after(30):
        async with serve("--transport", "http", env=env) as served:
            port = served.port
            proxied = await post_initialize(port, Host="mcp.example.com", Origin="https://mcp.example.com")
            other = await post_initialize(port, Host="other.example.com")
    assert (proxied.status_code, other.status_code) == (200, 421)


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    import os

    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "retab_mcp", "--demo", *args], check=False, env={**os.environ, **(env or {})}
        )
    return done.returncode, done.stderr.decode()


@pytest.mark.slow
async def test_a_non_loopback_bind_without_a_token_is_refused_with_how_to_fix_it() -> None:
    code, err = await run_cli("--transport", "http", "--host", "0.0.0.0", "--port", "1")
    assert code == 1
    assert "RETAB_MCP_AUTH_TOKEN" in err and "--auth-handled-by-proxy" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "env"),
    [(("--auth-handled-by-proxy",), {}), ((), {"RETAB_MCP_AUTH_TOKEN": TOKEN})],
    ids=["proxy-authenticates", "token"],
)
@pytest.mark.slow
async def test_a_non_loopback_bind_is_allowed_with_a_token_or_a_proxy(
    flags: tuple[str, ...], env: dict[str, str]
) -> None:
    with anyio.fail_after(30):
        async with serve("--transport", "http", "--host", "0.0.0.0", *flags, env=env) as served:
            port = served.port
            headers: dict[str, Any] = {"Authorization": f"Bearer {TOKEN}"} if env else {}
            answer = await post_initialize(port, **headers)
    assert answer.status_code == 200


def test_idle_connections_outlive_the_longest_wait() -> None:
    settings = Settings(max_wait_s=50)
    config = uvicorn_config(object(), HttpOptions(), settings)
    assert config.timeout_keep_alive > settings.max_wait_s
    assert config.timeout_graceful_shutdown is not None and config.timeout_graceful_shutdown < 5
