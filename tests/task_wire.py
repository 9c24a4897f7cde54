"""A JSON-RPC peer of an in-process server, message by message, in either protocol era: what a host that
speaks tasks sends (the SDK's own client has no tasks), with nothing between the test and the server's wire.

`legacy_session` makes the 2025-11-25 handshake (declaring the tasks capability unless told not to);
`modern_peer` stamps each request with the 2026-07-28 envelope (declaring the tasks extension unless told
not to). Every notification the server sends is kept in `notifications`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage
from mcp_types.jsonrpc import jsonrpc_message_adapter

from retab_mcp.tools.sdk_compat import lowlevel

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
Message = dict[str, Any]


class Wire:
    def __init__(
        self, send: MemoryObjectSendStream[SessionMessage | Exception], envelope: dict[str, Any] | None
    ) -> None:
        self._send = send
        self._ids = itertools.count(1)
        self._answers: dict[int, Message] = {}
        self._arrived = anyio.Event()
        self.envelope = envelope  # the 2026 `_meta` of every request; None on the 2025 wire
        self.notifications: list[Message] = []

    async def read(self, receive: MemoryObjectReceiveStream[SessionMessage]) -> None:
        async for item in receive:
            message = item.message.model_dump(by_alias=True, mode="json", exclude_none=True)
            if "id" in message and "method" not in message:
                self._answers[int(message["id"])] = message
            else:
                self.notifications.append(message)
            self._arrived.set()
            self._arrived = anyio.Event()

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        message: Message = {"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})}
        await self._send.send(SessionMessage(jsonrpc_message_adapter.validate_python(message)))

    async def ask(self, method: str, params: dict[str, Any] | None = None) -> Message:
        """Send a request; return the whole answer (with `result` or `error`)."""
        id_ = next(self._ids)
        params = dict(params or {})
        if self.envelope is not None:
            params["_meta"] = {**self.envelope, **params.get("_meta", {})}
        message: Message = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}
        await self._send.send(SessionMessage(jsonrpc_message_adapter.validate_python(message)))
        while id_ not in self._answers:
            await self._arrived.wait()
        return self._answers.pop(id_)

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Message:
        answer = await self.ask(method, params)
        assert "result" in answer, answer
        return answer["result"]

    async def until_notified(self, method: str) -> Message:
        while not (found := [n for n in self.notifications if n.get("method") == method]):
            await self._arrived.wait()
        return found[-1]


@asynccontextmanager
async def _served(server: MCPServer[Any], envelope: dict[str, Any] | None) -> AsyncIterator[Wire]:
    to_server, server_reads = anyio.create_memory_object_stream[SessionMessage | Exception](100)
    server_writes, from_server = anyio.create_memory_object_stream[SessionMessage](100)
    low = lowlevel(server)
    wire = Wire(to_server, envelope)
    async with anyio.create_task_group() as group:
        group.start_soon(low.run, server_reads, server_writes, low.create_initialization_options())
        group.start_soon(wire.read, from_server)
        try:
            yield wire
        finally:
            group.cancel_scope.cancel()
            for stream in (to_server, server_reads, server_writes, from_server):
                stream.close()


@asynccontextmanager
async def legacy_session(
    server: MCPServer[Any], *, tasks: bool = True, version: str = "2025-11-25"
) -> AsyncIterator[tuple[Wire, Message]]:
    """A 2025-era session; yields the peer and the `initialize` result."""
    async with _served(server, None) as wire:
        capabilities: dict[str, Any] = {"tasks": {"list": {}, "cancel": {}}} if tasks else {}
        hello = {"protocolVersion": version, "capabilities": capabilities, "clientInfo": {"name": "t", "version": "0"}}
        initialized = await wire.result("initialize", hello)
        await wire.notify("notifications/initialized")
        yield wire, initialized


@asynccontextmanager
async def modern_peer(server: MCPServer[Any], *, tasks: bool = True) -> AsyncIterator[Wire]:
    extensions = {TASKS_EXTENSION: {}} if tasks else {}
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": extensions},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
    }
    async with _served(server, envelope) as wire:
        yield wire
