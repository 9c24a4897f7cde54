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
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from joserfc.jwk import KeySet
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .helpers import FINISHED, text_of
from .processes import listening_port, read_until

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
async def authorization_server(keys: Path) -> AsyncIterator[str]:
    command = ["node", str(AUTHORIZATION_SERVER), "--jwks", str(keys)]
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
async def resource_server(issuer: str) -> AsyncIterator[str]:
    env = {
        **os.environ,
        "RETAB_MCP_OAUTH_ISSUER": issuer,
        "RETAB_MCP_OAUTH_RESOURCE": RESOURCE,
        "RETAB_MCP_ALLOW_WRITES": "1",
    }
    command = [sys.executable, "-m", "retab_mcp", "--demo", "--transport", "http", "--port", "0"]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL, env=env) as process:
        with anyio.fail_after(30):
            port, _ = await listening_port(process.stderr)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            await process.wait()


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
