"""OAuth 2.1 resource server, against a real authorization server (oidc-provider, interop/oauth) that the
test starts on loopback: Protected Resource Metadata, 401 with WWW-Authenticate naming it, and JWT access
tokens checked for signature, issuer, audience, expiry and scopes."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import anyio
import httpx2
import pytest
from joserfc.jwk import KeySet
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.transports.http import HttpTransport

from .helpers import FINISHED, text_of
from .processes import read_until, serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
AUTHORIZATION_SERVER = ROOT / "interop" / "oauth" / "authorization_server.mjs"
RESOURCE = "https://mcp.retab.test/mcp"  # the canonical URL, as behind a proxy
METADATA = "https://mcp.retab.test/.well-known/oauth-protected-resource/mcp"
ACCEPT = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


@pytest.fixture(scope="module", autouse=True)
def the_authorization_server_is_installed() -> None:
    missing = shutil.which("node") is None or not (AUTHORIZATION_SERVER.parent / "node_modules").is_dir()
    if missing and os.environ.get("CI"):
        pytest.fail("oidc-provider is not installed: `npm ci` in interop/oauth (.ci/run does)")
    if missing:
        pytest.skip("oidc-provider is not installed: run `npm ci` in interop/oauth")


@asynccontextmanager
async def authorization_server(keys: Path, *later: Path) -> AsyncIterator[str]:
    """oidc-provider signing with `keys`; each POST to /_test/rotate moves on to the next of `later`."""
    command = ["node", str(AUTHORIZATION_SERVER), "--jwks", str(keys)]
    for more in later:
        command += ["--next-jwks", str(more)]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
        with anyio.fail_after(30):
            seen = await read_until(process.stdout, b"\n")
        found = re.search(rb"issuer (\S+)", seen)
        assert found, seen
        try:
            yield found.group(1).decode()
        finally:
            process.terminate()
            await process.wait()


@asynccontextmanager
async def resource_server(issuer: str, *flags: str, stderr: bytearray | None = None) -> AsyncIterator[str]:
    """`retab-mcp --demo` with OAuth and writes on, over streamable HTTP unless `flags` say otherwise."""
    env = {"RETAB_MCP_OAUTH_ISSUER": issuer, "RETAB_MCP_OAUTH_RESOURCE": RESOURCE, "RETAB_MCP_ALLOW_WRITES": "1"}
    async with serve("--transport", "http", *flags, env=env) as served:
        try:
            yield served.url
        finally:
            if stderr is not None:
                stderr += served.stderr


def key_set(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def new_key(kid: str) -> dict[str, Any]:
    return KeySet.generate_key_set("RSA", 2048, parameters={"kid": kid}, count=1).as_dict(private=True)["keys"][0]


async def token(http: httpx2.AsyncClient, issuer: str, *, scope: str, resource: str = RESOURCE) -> str:
    answer = await http.post(
        f"{issuer}/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
        auth=("agent", "agent-secret"),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def tampered(jwt: str) -> str:
    head, payload, signature = jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "retab:read retab:write"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


async def initialize(http: httpx2.AsyncClient, url: str, bearer: str | None) -> httpx2.Response:
    headers = {**ACCEPT, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
    return await http.post(f"{url}/mcp", json=INITIALIZE, headers=headers)


async def test_tokens_are_held_to_the_authorization_server_s_keys_issuer_audience_expiry_and_scopes(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(KeySet.generate_key_set("RSA", 2048, count=1).as_dict(private=True)))
    answers: dict[str, httpx2.Response] = {}
    called: dict[str, Any] = {}
    async with (
        authorization_server(keys) as issuer,
        authorization_server(keys) as other_issuer,  # the same keys, another issuer
        resource_server(issuer) as url,
        httpx2.AsyncClient(timeout=20) as http,
    ):
        valid = await token(http, issuer, scope="retab:read")
        writer = await token(http, issuer, scope="retab:read retab:write")
        tokens = {
            "missing": None,
            "valid": valid,
            "wrong_audience": await token(http, issuer, scope="retab:read", resource="https://other.test/mcp"),
            "wrong_issuer": await token(http, other_issuer, scope="retab:read"),
            "tampered": tampered(valid),
            "missing_scope": await token(http, issuer, scope="retab:write"),
        }
        await http.post(f"{issuer}/_test/clock?offset_s=-3600")  # issued an hour ago, for ten minutes
        tokens["expired"] = await token(http, issuer, scope="retab:read")
        await http.post(f"{issuer}/_test/clock?offset_s=0")
        for name, bearer in tokens.items():
            answers[name] = await initialize(http, url, bearer)
        answers["metadata"] = await http.get(f"{url}/.well-known/oauth-protected-resource/mcp")
        for name, bearer in (("reader", valid), ("writer", writer)):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=20) as authorized,
                Client(streamable_http_client(f"{url}/mcp", http_client=authorized)) as client,  # type: ignore[arg-type]
            ):
                called[f"{name}_get"] = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
                try:
                    called[f"{name}_cancel"] = await client.call_tool("cancel_experiment_run", {"run_id": FINISHED})
                except Exception as error:  # the 403 ends the call at the HTTP layer
                    called[f"{name}_cancel"] = error
        answers["write_refused"] = await http.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "cancel_experiment_run"}},
            headers={**ACCEPT, "Authorization": f"Bearer {valid}"},
        )

    assert answers["valid"].status_code == 200
    for name in ("missing", "wrong_audience", "wrong_issuer", "tampered", "expired"):
        assert answers[name].status_code == 401, name
        challenge = answers[name].headers["www-authenticate"]
        assert challenge.startswith("Bearer") and f'resource_metadata="{METADATA}"' in challenge, (name, challenge)
    assert answers["missing_scope"].status_code == 403
    assert 'error="insufficient_scope"' in answers["missing_scope"].headers["www-authenticate"]
    metadata = answers["metadata"].json()
    assert metadata["resource"] == RESOURCE
    assert metadata["authorization_servers"] == [issuer] or metadata["authorization_servers"] == [issuer + "/"]
    assert "retab:read" in metadata["scopes_supported"]
    refused = answers["write_refused"]
    assert refused.status_code == 403
    assert 'error="insufficient_scope", scope="retab:write"' in refused.headers["www-authenticate"]
    assert not called["reader_get"].is_error and not called["writer_get"].is_error
    assert not isinstance(called["writer_cancel"], Exception)
    assert "Nothing to cancel" in text_of(called["writer_cancel"])  # the write scope lets the call through
    assert isinstance(called["reader_cancel"], Exception)  # a read-only token never reaches the tool


HTTP_SERVINGS = {transport: ["--transport", transport] for transport in get_args(HttpTransport)}
HTTP_SERVINGS["http-stateless"] = ["--transport", "http", "--stateless"]
LONG_RUN = opaque_id("exprun", "long")  # the demo's ten-minute run: still going while the test runs
TUNED = opaque_id("exp", "invoices-tuned")  # the demo's experiment for the loop, with one run


@asynccontextmanager
async def agent(url: str, serving: str, bearer: str) -> AsyncIterator[Client]:
    """An agent of the resource server at `url`, over the transport it serves, with `bearer`."""
    headers = {"Authorization": f"Bearer {bearer}"}
    if serving == "sse":
        async with Client(sse_client(f"{url}/sse", headers=headers)) as client:  # type: ignore[arg-type]
            yield client
        return
    async with (
        httpx2.AsyncClient(headers=headers, timeout=20) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,  # type: ignore[arg-type]
    ):
        yield client


@pytest.mark.parametrize("serving", sorted(HTTP_SERVINGS))
async def test_every_transport_refuses_a_read_only_token_the_tools_that_change_a_run(
    tmp_path: Path, serving: str
) -> None:
    """Every way the server serves HTTP (the list is the transports' own, so a new one is held to this too)."""
    keys = key_set(tmp_path / "jwks.json", new_key("k1"))
    outcomes: dict[str, Any] = {}
    async with authorization_server(keys) as issuer, httpx2.AsyncClient(timeout=20) as http:
        reader = await token(http, issuer, scope="retab:read")
        async with resource_server(issuer, *HTTP_SERVINGS[serving]) as url:
            for tool, arguments in (
                ("cancel_experiment_run", {"run_id": LONG_RUN}),
                ("start_experiment_run", {"experiment_id": TUNED}),
            ):
                try:
                    with anyio.fail_after(20):
                        async with agent(url, serving, reader) as client:
                            outcomes[tool] = await client.call_tool(tool, arguments)
                except Exception as error:  # refused at the HTTP layer: the call ends with it
                    outcomes[tool] = error
            with anyio.fail_after(20):
                async with agent(url, serving, reader) as client:
                    after = await client.call_tool("get_experiment_run", {"run_id": LONG_RUN})
                    runs = await client.call_tool("list_experiment_runs", {"experiment_id": TUNED})
    for tool, outcome in outcomes.items():
        refused = isinstance(outcome, Exception) or outcome.is_error
        assert refused, (tool, outcome)
    assert (after.structured_content or {})["status"] == "running"
    assert len((runs.structured_content or {})["runs"]) == 1  # the demo's one run of it: none was started


def forged_with_kid(jwt: str, kid: str) -> str:
    """`jwt` with another key id in its header: no key of the authorization server's signed it."""
    head, payload, signature = jwt.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    header["kid"] = kid
    forged = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{forged}.{payload}.{signature}"


async def jwks_fetches(http: httpx2.AsyncClient, issuer: str) -> int:
    return int((await http.get(f"{issuer}/_test/stats")).json()["jwks"])


async def test_a_rotated_signing_key_is_accepted_at_once_made_up_key_ids_cost_one_fetch_and_an_outage_no_500(
    tmp_path: Path,
) -> None:
    first, second, third = new_key("k1"), new_key("k2"), new_key("k3")
    keys = key_set(tmp_path / "1.json", first)
    rotated = key_set(tmp_path / "2.json", second, first)
    rotated_again = key_set(tmp_path / "3.json", third, second, first)
    status: dict[str, int] = {}
    fetches: dict[str, int] = {}
    stderr = bytearray()
    async with (
        authorization_server(keys, rotated, rotated_again) as issuer,
        httpx2.AsyncClient(timeout=20) as http,
        resource_server(issuer, stderr=stderr) as url,
    ):
        old = await token(http, issuer, scope="retab:read")
        status["before_rotation"] = (await initialize(http, url, old)).status_code
        fetches["before_rotation"] = await jwks_fetches(http, issuer)
        await http.post(f"{issuer}/_test/rotate")
        new = await token(http, issuer, scope="retab:read")
        status["new_key"] = (await initialize(http, url, new)).status_code
        status["old_key_after_rotation"] = (await initialize(http, url, old)).status_code
        fetches["after_rotation"] = await jwks_fetches(http, issuer)
        made_up = [(await initialize(http, url, forged_with_kid(new, f"made-up-{i}"))).status_code for i in range(30)]
        fetches["after_made_up_ids"] = await jwks_fetches(http, issuer)
        await http.post(f"{issuer}/_test/outage?on=1")
        await http.post(f"{issuer}/_test/rotate")
        newest = await token(http, issuer, scope="retab:read")
        status["unknown_key_in_outage"] = (await initialize(http, url, newest)).status_code
        status["known_key_in_outage"] = (await initialize(http, url, new)).status_code
    assert status == {
        "before_rotation": 200,
        "new_key": 200,  # one fetch of the JWKS, at once: no 401 for ten minutes
        "old_key_after_rotation": 200,
        "unknown_key_in_outage": 401,  # cannot be verified: refused, never a 500
        "known_key_in_outage": 200,  # the keys held go on serving
    }
    assert fetches["after_rotation"] == fetches["before_rotation"] + 1
    assert set(made_up) == {401}
    assert fetches["after_made_up_ids"] == fetches["after_rotation"]  # at most one fetch per 30 s, for all
    assert b"Traceback" not in stderr


async def test_keys_held_serve_through_an_outage_after_they_expire_and_are_fetched_when_it_ends(
    tmp_path: Path,
) -> None:
    """The verifier in this process on a clock of the test's, against the real authorization server: the
    keys' lifetime (ten minutes) passes without waiting for it."""
    from retab_mcp.transports.oauth import JWKS_TTL_S, REFETCH_AT_MOST_EVERY_S, JwtVerifier, OAuthSettings

    now = [0.0]
    keys = key_set(tmp_path / "1.json", new_key("k1"))
    rotated = key_set(tmp_path / "2.json", new_key("k2"), json.loads(keys.read_text())["keys"][0])
    async with authorization_server(keys, rotated) as issuer, httpx2.AsyncClient(timeout=20) as http:
        verifier = JwtVerifier(OAuthSettings(issuer=issuer, resource=RESOURCE), monotonic=lambda: now[0])
        old = await token(http, issuer, scope="retab:read")
        assert await verifier.verify_token(old) is not None
        await http.post(f"{issuer}/_test/outage?on=1")
        now[0] += JWKS_TTL_S + 1  # the keys held are stale, and the authorization server is down
        stale_but_served = await verifier.verify_token(old)
        await http.post(f"{issuer}/_test/rotate")
        new = await token(http, issuer, scope="retab:read")
        during_outage = await verifier.verify_token(new)
        await http.post(f"{issuer}/_test/outage?on=0")
        too_soon = await verifier.verify_token(new)  # the last try was a moment ago
        now[0] += REFETCH_AT_MOST_EVERY_S + 1
        after_outage = await verifier.verify_token(new)
    assert stale_but_served is not None
    assert during_outage is None and too_soon is None
    assert after_outage is not None and after_outage.scopes == ["retab:read"]


async def test_a_write_tool_checks_the_scope_itself_on_a_path_that_skips_the_http_gate() -> None:
    """In process there is no HTTP layer and no token at all: the tool refuses, the run goes on."""
    from retab_mcp.base.config import Settings
    from retab_mcp.simulator import SimulatedRetab
    from retab_mcp.simulator.clock import VirtualClock
    from retab_mcp.tools.server import build_server

    from .helpers import SIM_URL, TEST_KEY

    sim = SimulatedRetab(clock=VirtualClock(start=1_000.0))
    running = sim.add_run(duration_s=600)
    settings = Settings(
        api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True, oauth_issuer="https://as.test", oauth_resource=RESOURCE
    )
    async with Client(build_server(settings, transport=httpx2.ASGITransport(app=sim))) as client:
        refused = await client.call_tool("cancel_experiment_run", {"run_id": running})
    assert refused.is_error and "retab:write" in text_of(refused)
    assert not any(r.method == "POST" for r in sim.requests)


async def test_nested_json_posted_with_or_without_a_token_gets_a_4xx_and_never_a_traceback(tmp_path: Path) -> None:
    keys = key_set(tmp_path / "jwks.json", new_key("k1"))
    stderr = bytearray()
    deep = b"[" * 100_000
    headers = {**ACCEPT, "content-type": "application/json"}
    async with authorization_server(keys) as issuer, httpx2.AsyncClient(timeout=20) as http:
        reader = await token(http, issuer, scope="retab:read")
        async with resource_server(issuer, stderr=stderr) as url:
            without = [await http.post(f"{url}/mcp", content=deep, headers=headers) for _ in range(5)]
            bearer = {**headers, "Authorization": f"Bearer {reader}"}
            with_token = [await http.post(f"{url}/mcp", content=deep, headers=bearer) for _ in range(5)]
    assert {a.status_code for a in without} == {401}  # asked for a token before the body is read
    assert {a.status_code // 100 for a in with_token} == {4}, [a.status_code for a in with_token]
    assert b"Traceback" not in stderr
