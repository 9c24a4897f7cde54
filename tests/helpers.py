"""What many test modules share: the test key and URLs, the tools every server lists, calling a tool with a
bound, reading its result, and the simulated API on a real loopback port. Test modules import from here,
never from each other.

The tools come from the registry (retab_mcp/tools/registry.py), where each is declared once; the published
names are held by the contract check (../shared/contract/check.py, and tests/test_contract.py's copy)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.loopback import Loopback
from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.tools.registry import catalog

READ_TOOLS = {spec.name for spec in catalog() if not spec.writes and spec.view != "app_only"}
WRITE_TOOLS = {spec.name for spec in catalog() if spec.writes}
TEST_KEY = "sk_test_0123456789abcdefSECRET"
SIM_URL = "http://retab.test"
FINISHED = opaque_id("exprun", "latest")
T = TypeVar("T")


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


def assert_listed_as_promised(tool: Tool, promise: dict[str, Any]) -> None:
    """The tool's listing keeps an interface file's promise: its arguments, which are required, read-only."""
    assert set(promise["args"]) <= set(tool.input_schema["properties"]), tool.name
    assert set(tool.input_schema.get("required", [])) == set(promise["required"]), tool.name
    assert tool.annotations is not None and tool.annotations.read_only_hint is promise["read_only"], tool.name


async def all_at_once(calls: Sequence[Callable[[], Awaitable[T]]], *, within_s: float = 60) -> list[T]:
    """Every call started at the same moment (as an agent framework calling tools in parallel does); their
    results in the calls' order, all within `within_s`."""
    results: list[T | None] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    with anyio.fail_after(within_s):
        async with anyio.create_task_group() as group:
            for i in range(len(calls)):
                group.start_soon(one, i)
    return [r for r in results if r is not None]
