"""The two places this server needs the SDK's low-level server, which `MCPServer` keeps private.

Each use says why no public API does it; if a release of the SDK moves or renames `_lowlevel_server`, this
module is the one to change.
"""

from __future__ import annotations

from typing import Any

from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.types import EmptyResult, SetLevelRequestParams


def lowlevel(server: MCPServer[Any]) -> Server[Any]:
    """The low-level server, to run it over streams of our own: stdio here reads its own lines
    (transports/stdio.py), and `MCPServer.run_stdio_async` takes no streams."""
    return server._lowlevel_server  # pyright: ignore[reportPrivateUsage]


def accept_log_level(server: MCPServer[Any]) -> None:
    """Answer `logging/setLevel`, which hosts speaking the 2025 protocol may send at start.

    This server sends no log notifications, so accepting the level is all there is to do; without a
    handler such hosts get "method not found". The SDK has no public hook for this method, which its 2026
    revision removed.
    """
    lowlevel(server).add_request_handler("logging/setLevel", SetLevelRequestParams, _accept)


async def _accept(_ctx: object, _params: SetLevelRequestParams) -> EmptyResult:
    return EmptyResult()
