"""What many test modules share: calling a tool with a bound, and reading its result."""

from __future__ import annotations

import json
from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult, TextContent


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
