from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from retab_mcp.api.client import RetabClient
from retab_mcp.api.retry import RetryPolicy
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.common import AppState
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1_000.0)


@pytest.fixture
def sim(clock: VirtualClock) -> SimulatedRetab:
    return SimulatedRetab(clock=clock)


@pytest.fixture
def settings() -> Settings:
    return Settings(api_key=TEST_KEY, base_url=SIM_URL)


@pytest.fixture
def sleeps() -> list[float]:
    """Every delay the retry policy asked for; nothing really sleeps."""
    return []


@pytest.fixture
def retry_policy(sleeps: list[float]) -> RetryPolicy:
    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    return RetryPolicy(sleep=record, jitter=lambda: 1.0)


@pytest.fixture
async def client(settings: Settings, sim: SimulatedRetab, retry_policy: RetryPolicy) -> AsyncIterator[RetabClient]:
    async with RetabClient(settings, transport=httpx2.ASGITransport(app=sim), retry=retry_policy) as c:
        yield c


@pytest.fixture
def server(settings: Settings, sim: SimulatedRetab, clock: VirtualClock) -> MCPServer[AppState]:
    """A fresh server over the simulated API, on the virtual clock: waits take no real time."""
    return build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)


ERAS = ("auto", "legacy")  # 2026-07-28 (no handshake) and the 2025-11-25 initialize handshake


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `eras` (where the protocol era changes behaviour: listing, transports, lifecycle,
    progress, elicitation, the snapshots both eras share) run in both eras; the others in the current one."""
    if "mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker("eras") is not None:
        metafunc.parametrize("mode", ERAS, indirect=True)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """The protocol era of the test's client: both for tests marked `eras`, else 2026-07-28."""
    return getattr(request, "param", "auto")


@pytest.fixture
async def mcp_client(server: MCPServer[AppState], mode: str) -> AsyncIterator[Client]:
    async with Client(server, mode=mode) as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture
async def writer(sim: SimulatedRetab, clock: VirtualClock, mode: str) -> AsyncIterator[Client]:
    """A server that offers every tool, writes included (RETAB_MCP_ALLOW_WRITES=1), in both protocol eras."""
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        yield client
