"""The places this server needs the SDK's low-level server or a request's connection, which the SDK keeps private.

Each use says why no public API does it; if a release of the SDK moves or renames `_lowlevel_server`, this
module is the one to change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.extension import RequestHandler
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.types import EmptyResult, ListToolsResult, PaginatedRequestParams, SetLevelRequestParams, Tool


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


ToolChoice = Callable[[ServerRequestContext[Any, Any], list[Tool]], list[Tool]]


def list_tools_per_caller(server: MCPServer[Any], choose: ToolChoice) -> None:
    """Answer `tools/list` with the tools `choose` keeps for the caller.

    The run view's tool, and the `_meta.ui` that points at the view, are for hosts that render MCP Apps; a
    host that does not gets the listing it always had. `MCPServer.list_tools` takes no context, so only
    the low-level handler can see whom it answers.
    """

    async def handle(ctx: ServerRequestContext[Any, Any], _params: PaginatedRequestParams) -> ListToolsResult:
        return ListToolsResult(tools=choose(ctx, await server.list_tools()))

    lowlevel(server).add_request_handler("tools/list", PaginatedRequestParams, handle)


def tool_call_handler(server: MCPServer[Any]) -> RequestHandler:
    """The `tools/call` handler as the SDK serves it (the extensions' interceptors around the tool call), so a
    task can call a tool again after its request has been answered, from a context of its own (tasks/)."""
    entry = lowlevel(server).get_request_handler("tools/call")
    assert entry is not None, "MCPServer always serves tools/call"
    return entry.handler


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The connection a request came on: its session id, its standalone channel for notifications after the
    request is answered, and its teardown. `ServerSession` keeps it private and no public API hands it out."""
    return ctx.session._connection  # pyright: ignore[reportPrivateUsage]
