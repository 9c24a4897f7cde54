"""The benchmark cannot pass for the wrong reason: a goal judged against an unsound baseline says
"invalid", never "yes"; and the HTTP clients measured set TCP_NODELAY, whose absence made a loopback
baseline stall for tens of milliseconds (Nagle's algorithm against delayed ACKs)."""

from __future__ import annotations

import socket

import anyio
import httpx2
import pytest
from benchmarks.support import Section, baseline_problem, goal_in_every_run

from retab_mcp.api.client import RetabClient
from retab_mcp.base.clock import RealClock
from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback

from .helpers import TEST_KEY

SOUND = {"samples": 500, "min_samples": 200, "baseline": 1.2, "measured": 2.0, "plausible": (0.05, 10.0)}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"samples": 20}, "fewer than 200"),
        ({"baseline": 43.5, "measured": 5.2}, "outside the plausible"),  # the stall seen on a fresh machine
        ({"baseline": 3.0, "measured": 2.0}, "slower than the measured"),  # a negative overhead
    ],
)
def test_an_unsound_baseline_makes_the_goal_invalid_not_met(change: dict[str, object], reason: str) -> None:
    problem = baseline_problem(**{**SOUND, **change})  # type: ignore[arg-type]
    assert problem is not None and reason in problem
    section = Section("overhead", "")
    section.goal("p50 overhead <= 2 ms", "-38.30 ms", True, baseline_problem=problem)
    assert section.goals[0][2].startswith("**invalid**")


def test_a_sound_baseline_lets_the_goal_be_judged() -> None:
    assert baseline_problem(**SOUND) is None  # type: ignore[arg-type]
    section = Section("overhead", "")
    section.goal("met", "1 ms", True, baseline_problem=None)
    section.goal("missed", "3 ms", False, baseline_problem=None)
    assert [verdict for _, _, verdict in section.goals] == ["yes", "**no**"]


@pytest.mark.anyio
async def test_the_api_client_and_the_baseline_client_set_tcp_nodelay() -> None:
    async with anyio.create_task_group() as group:
        loopback = Loopback(SimulatedRetab(clock=RealClock()), group)
        loopback.start()
        settings = Settings(api_key=TEST_KEY, base_url=loopback.url)
        async with RetabClient(settings) as ours, httpx2.AsyncClient(base_url=loopback.url) as baseline:
            for http in (ours._http, baseline):  # pyright: ignore[reportPrivateUsage]
                async with http.stream("GET", "/_simulator/stats") as response:
                    sock = response.extensions["network_stream"].get_extra_info("socket")
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        await loopback.stop()


def test_a_goal_met_in_one_run_and_missed_in_the_next_is_not_met() -> None:
    section = Section("start-up", "")
    goal_in_every_run(section, "both held", [1.02, 1.04], 1.05, "{:.3f}x")
    goal_in_every_run(section, "one missed", [1.02, 1.07], 1.05, "{:.3f}x")
    goal_in_every_run(section, "none ran", [], 1.05, "{:.3f}x")
    assert [verdict for _, _, verdict in section.goals] == ["yes", "**no**", "**no**"]
    assert section.goals[1][1] == "1.020x / 1.070x (spread 0.050x)"
