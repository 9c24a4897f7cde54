"""What many test modules share: the test key and URLs, the tools every server lists, calling a tool with a
bound, reading its result, and the simulated API on a real loopback port. Test modules import from here,
never from each other.

Tool names are spelled out here, not imported from the server: the tests hold the published names."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult, TextContent

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.simulator.scenario import opaque_id

READ_TOOLS = {
    "get_experiment_run",
    "wait_for_run",
    "wait_for_runs",
    "list_experiment_runs",
    "list_experiment_run_results",
    "get_experiment_run_metrics",
    "triage_experiment_run",
    "compare_experiment_runs",
    "list_experiments",
    "get_experiment",
}
TEST_KEY = "sk_test_0123456789abcdefSECRET"
SIM_URL = "http://retab.test"
FINISHED = opaque_id("exprun", "latest")


class LoopbackAPI(Loopback):
    """The simulated Retab API on a real loopback port."""

    @property
    def sim(self) -> SimulatedRetab:
        return self.app


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    with anyio.fail_after(10):
        return await client.call_tool(tool, arguments)


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def data_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return result.structured_content or {}


def size_of(result: CallToolResult) -> int:
    """Bytes a host may put in front of a model: the text plus the compact JSON of structuredContent."""
    structured = json.dumps(result.structured_content, separators=(",", ":")) if result.structured_content else ""
    return len(text_of(result).encode()) + len(structured.encode())
