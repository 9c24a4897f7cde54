"""Host and Origin are compared exactly, host and port, IPv6 literals too; the bearer scheme in any case.

Each attack below got through a prefix match before (200, a session created). In-process against the
gate itself, then through a real `retab-mcp --transport http|sse` process: the wiring, the status codes,
and one short, rate-limited log line per kind of rejection, without a traceback.
"""

from __future__ import annotations

from typing import Any, cast

import anyio
import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from retab_mcp.transports.origins import HostAndOriginGate

from .processes import serve
from .raw_stdio import INITIALIZE

pytestmark = pytest.mark.anyio

TOKEN = "tok_http_0123456789SECRETTOKEN"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

BAD_HOSTS = [
    "localhost:8771@evil.com",
    "127.0.0.1:8771.evil.com",
    "127.0.0.1:evil",
    "127.0.0.1:",
    "127.0.0.1:99999",
    "[::1]evil",
    "[::1",
    "::1",
    "localhost.evil.com",
    "evil.com",
    "mcp.example.com.evil.com",
    "evilmcp.example.com",
    "127.0.0.1:80/x",
    "",
]
GOOD_HOSTS = [
    "127.0.0.1",
    "127.0.0.1:8771",
    "localhost:1",
    "LOCALHOST:5",
    "[::1]:8080",
    "[::1]",
    "127.5.0.1:3",
    "mcp.example.com",
    "MCP.Example.com:443",
    "api.example.com:8443",
]
BAD_ORIGINS = [
    "http://127.0.0.1:8771.evil.com",
    "http://localhost@evil.com",
    "http://localhost:8771@evil.com",
    "http://[::1]evil",
    "null",
    "http://127.0.0.1:3000/path",
    "ftp://127.0.0.1",
    "https://mcp.example.com.evil.com",
    "http://mcp.example.com",  # the scheme differs from the one allowed
    "https://mcp.example.com:8443",  # so does the port
]
GOOD_ORIGINS = [
    "http://127.0.0.1:3000",
    "http://localhost",
    "https://[::1]:8080",
    "https://mcp.example.com",
    "https://MCP.example.com:443",
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def gate() -> Any:
    checked = HostAndOriginGate(
        app,
        allowed_hosts=["mcp.example.com", "api.example.com:8443"],
        allowed_origins=["https://mcp.example.com"],
    )
    transport = httpx2.ASGITransport(app=cast(Any, checked))  # httpx2 types ASGI scopes as dicts
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


@pytest.mark.parametrize("host", BAD_HOSTS)
async def test_a_host_that_only_starts_like_an_allowed_one_is_refused(gate: httpx2.AsyncClient, host: str) -> None:
    assert (await gate.get("/mcp", headers={"Host": host})).status_code == 421


@pytest.mark.parametrize("host", GOOD_HOSTS)
async def test_loopback_and_listed_hosts_are_accepted(gate: httpx2.AsyncClient, host: str) -> None:
    assert (await gate.get("/mcp", headers={"Host": host})).status_code == 200


@pytest.mark.parametrize("origin", BAD_ORIGINS)
async def test_an_origin_that_only_starts_like_an_allowed_one_is_refused(gate: httpx2.AsyncClient, origin: str) -> None:
    assert (await gate.get("/mcp", headers={"Origin": origin})).status_code == 403


@pytest.mark.parametrize("origin", GOOD_ORIGINS)
async def test_loopback_and_listed_origins_are_accepted(gate: httpx2.AsyncClient, origin: str) -> None:
    assert (await gate.get("/mcp", headers={"Origin": origin})).status_code == 200


async def post(http: httpx2.AsyncClient, port: int, **headers: str) -> int:
    response = await http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
    return response.status_code


@pytest.mark.slow
async def test_a_real_server_refuses_the_attacks_logs_one_short_line_each_and_takes_any_bearer_case() -> None:
    with anyio.fail_after(60):
        async with serve("--transport", "http", env={"RETAB_MCP_AUTH_TOKEN": TOKEN}) as served:
            port = served.port
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx2.AsyncClient() as http:
                hosts = [await post(http, port, Host=host, **auth) for host in BAD_HOSTS if host]
                origins = [await post(http, port, Origin=origin, **auth) for origin in BAD_ORIGINS]
                huge = await post(http, port, Host="h" * 10_000, **auth)
                schemes = [await post(http, port, Authorization=f"{s} {TOKEN}") for s in ("bearer", "BEARER", "Bearer")]
                wrong = await post(http, port, Authorization=f"bearer {TOKEN}x")
    seen = served.stderr
    assert set(hosts) == {421} and set(origins) == {403} and huge == 421
    assert schemes == [200, 200, 200] and wrong == 401
    log = seen.decode()
    refusals = [line for line in log.splitlines() if "refused a request" in line]
    assert "Traceback" not in log and "h" * 100 not in log
    assert 1 <= len(refusals) <= 4 and all(len(line) < 200 for line in refusals)  # rate-limited, cut short


@pytest.mark.slow
async def test_sse_refuses_a_rebound_host_too() -> None:
    with anyio.fail_after(60):
        async with serve("--transport", "sse") as served:
            port = served.port
            async with httpx2.AsyncClient() as http:
                rebound = await http.get(f"http://127.0.0.1:{port}/sse", headers={"Host": "127.0.0.1:1.evil.com"})
                posted = await http.post(
                    f"http://127.0.0.1:{port}/messages/?session_id=x", json=INITIALIZE, headers={"Host": "evil.com"}
                )
    assert (rebound.status_code, posted.status_code) == (421, 421)
    assert b"Traceback" not in served.stderr


async def post_status(http: httpx2.AsyncClient, url: str, **kwargs: Any) -> int:
    """The status of a post, or 0 when the server cut the connection."""
    try:
        return (await http.post(url, **kwargs)).status_code
    except httpx2.TransportError:
        return 0


@pytest.mark.slow
async def test_bad_posts_to_a_live_sse_session_and_huge_session_ids_log_one_short_line_each() -> None:
    import re

    with anyio.fail_after(60):
        async with serve("--transport", "sse") as served:
            port = served.port
            endpoint: list[str] = []
            announced = anyio.Event()
            bad: list[int] = []
            unknown: list[int] = []

            async def listen(listener: httpx2.AsyncClient) -> None:
                # Read the stream to its end: leaving it unread and unclosed would let the session go.
                async with listener.stream("GET", f"http://127.0.0.1:{port}/sse") as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data:") and not endpoint:
                            endpoint.append(line[5:].strip())
                            announced.set()

            async with (
                httpx2.AsyncClient() as listener,
                httpx2.AsyncClient() as http,
                anyio.create_task_group() as group,
            ):
                group.start_soon(listen, listener)
                await announced.wait()
                url = f"http://127.0.0.1:{port}{endpoint[0]}"
                assert await post_status(http, url, json=INITIALIZE) == 202  # a live session
                # The SDK ends the session on the first post that is not JSON-RPC: later posts to it get a
                # 404 or find the connection cut. What matters here is what reaches the log.
                bad += [await post_status(http, url, content=b"{not json", headers=MCP_HEADERS) for _ in range(20)]
                huge_id = f"http://127.0.0.1:{port}/messages/?session_id={'a' * 10_000}"
                unknown += [await post_status(http, huge_id, json=INITIALIZE) for _ in range(5)]
                group.cancel_scope.cancel()  # the SSE stream is closed before the server ends
    seen = served.stderr
    assert bad[0] == 400 and set(bad) <= {400, 404, 0} and set(unknown) == {400}
    log = seen.decode()
    assert "_handle_post_message" not in log and "a" * 100 not in log  # no traceback, no 10 KB id
    # 20 posts, one line per 10 s: two if a loaded machine spread the posts over two windows.
    assert len(re.findall("Failed to parse message", log)) in (1, 2)
    assert len(re.findall("Received invalid session ID", log)) in (1, 2)
    assert len(re.findall("Could not find session for ID", log)) <= 1
    assert all(len(line) < 300 for line in log.splitlines() if "mcp.server.sse" in line)
