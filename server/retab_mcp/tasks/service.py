"""What both protocol eras do with a task: start one, find it for its owner, wait for its end, cancel it.

The wire of each era is its own module (legacy.py for 2025-11-25, modern.py for the 2026-07-28 extension);
both come here. A task starts from a `tools/call` of a wait and runs in the server's task group (runner.py)
until its run ends; the registry keeps it for its owner until its TTL. With replicas, a replica asked about
a working task whose holder died takes it over (`find`), with the asking caller's context.

Cancelling a task (tasks/cancel, or a 2025 host closing the session it was made in) ends its wait; the
watcher stops polling the run when nobody else waits on it. The Retab run itself is never touched.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..base.config import Settings
from ..tools import names
from ..tools.sdk_compat import connection_of
from ..watch.sharing import RedisHub
from .owners import new_task_id, owner_of
from .records import Era, TaskRecord
from .registry import LiveTask, Notify, TaskRegistry
from .runner import run_task
from .shared import CANCELLED_MESSAGE, LEASE_S, RedisTasks

if TYPE_CHECKING:
    from ..tools.common import AppState

logger = logging.getLogger(__name__)

Ctx = ServerRequestContext[Any, Any]  # a request as the SDK hands it to handlers

EXTENSION_ID = "io.modelcontextprotocol/tasks"
TASKS_VERSION = "2025-11-25"  # the one handshake version with tasks
WAITS = frozenset({names.WAIT_RUN, names.WAIT_RUNS})
MIN_TTL_S = 10.0
REMOTE_POLL_S = 0.5  # how often tasks/result reads a task another replica holds
BOUND_TASKS = "retab_mcp.tasks"  # in a connection's state: the ids of its tasks that end when it closes
DROPPED_MESSAGE = "Cancelled: the host closed the session the task was made in; the Retab run itself goes on."


def not_found(task_id: str) -> MCPError:
    # The same answer for a task that never was, has expired, or is another caller's: nothing to enumerate.
    return MCPError(code=INVALID_PARAMS, message=f"Failed to retrieve task: Task not found ({task_id[:80]})")


@dataclass
class Lifespan:
    """What tasks use of one run of the server's lifespan."""

    registry: TaskRegistry
    group: anyio.abc.TaskGroup
    state: AppState
    stop: anyio.Event | None

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


class TaskService:
    """The tasks of one server. `attach` it to the server it is built into; `running` in its lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._server: MCPServer[Any] | None = None
        self._lifespans: dict[int, Lifespan] = {}  # by the lifespan's state: tests run several on one server
        shared_secret = settings.partition_secret
        # Replicas share the secret, so that one caller's tasks have one owner on all of them.
        self._secret = shared_secret.encode() if shared_secret else secrets.token_bytes(32)

    def attach(self, server: MCPServer[Any]) -> None:
        self._server = server

    @property
    def server(self) -> MCPServer[Any]:
        assert self._server is not None, "attach the service to its server"
        return self._server

    @asynccontextmanager
    async def running(
        self, state: AppState, group: anyio.abc.TaskGroup, hub: RedisHub | None, stop: anyio.Event | None
    ) -> AsyncGenerator[None]:
        shared = RedisTasks(hub, self.settings.task_max_ttl_s) if hub is not None else None
        self._lifespans[id(state)] = Lifespan(TaskRegistry(self.settings, state.clock, shared), group, state, stop)
        try:
            yield
        finally:
            del self._lifespans[id(state)]

    def registry_of(self, state: AppState) -> TaskRegistry | None:
        """The tasks held in the lifespan whose state is `state` (None when it is not running)."""
        found = self._lifespans.get(id(state))
        return found.registry if found is not None else None

    def lifespan_of(self, ctx: Ctx) -> Lifespan:
        found = self._lifespans.get(id(ctx.lifespan_context))
        if found is None:
            raise MCPError(code=INTERNAL_ERROR, message="The server is not running.")
        return found

    # Who asks, and may they have a task

    def owner(self, ctx: Ctx) -> str:
        callers = self.lifespan_of(ctx).state.callers
        return owner_of(ctx, self._secret, callers.partition_of if callers is not None else None)

    @staticmethod
    def offered_2025(ctx: Ctx) -> bool:
        """A 2025-11-25 host that declared the tasks capability: it gets tasks and sees where it may ask."""
        capabilities = ctx.session.client_capabilities
        return ctx.protocol_version == TASKS_VERSION and capabilities is not None and capabilities.tasks is not None

    @staticmethod
    def asks_2025(ctx: Ctx) -> bool:
        """A 2025-11-25 `tools/call` that may become a task: from a host that declared tasks, or on stateless
        HTTP, where no request knows what the handshake declared, from any that sends `task` (it asks)."""
        stateless = ctx.request is not None and connection_of(ctx).session_id is None
        return TaskService.offered_2025(ctx) or (stateless and ctx.protocol_version == TASKS_VERSION)

    @staticmethod
    def offered_2026(ctx: Ctx) -> bool:
        """A 2026-07-28 request that declared the tasks extension: the server may answer it with a task."""
        capabilities = ctx.session.client_capabilities
        extensions = capabilities.extensions if capabilities is not None else None
        return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and EXTENSION_ID in (extensions or {})

    # The operations

    async def start(
        self,
        ctx: Ctx,
        era: Era,
        name: str,
        arguments: dict[str, Any],
        ttl_s: float | None = None,
        progress_token: str | int | None = None,
    ) -> TaskRecord:
        """Create the task (durably: any replica finds it once this returns) and start its wait. Raises
        TooManyTasksError past a bound."""
        owner = self.owner(ctx)
        served = self.lifespan_of(ctx)
        registry = served.registry
        # Shielded: a call cancelled once the task is stored in Redis would leave it there with no wait running
        # (Redis's own timeouts bound this).
        live: LiveTask | None = None
        with registry.admitted(owner), anyio.CancelScope(shield=True):
            notify = self._notifier(ctx) if era == "2025" else None
            live = await self._create(served, owner, era, name, arguments, ttl_s, progress_token, notify)
            self._launch(served, live, ctx)
        assert live is not None  # a shielded scope swallows no exception of its own
        connection = connection_of(ctx)
        if era == "2025" and (ctx.request is None or connection.session_id is not None):
            # A session the task cannot outlive (stdio, or an HTTP session): when it closes, nobody can ask for
            # the task again, so its wait ends with it.
            self._end_with(served, connection, live.record.task_id)
        record = live.record
        logger.info("task started: %s %s, ttl %.0f s", record.tool, record.task_id[-6:], record.ttl_s)
        return record

    async def _create(
        self,
        served: Lifespan,
        owner: str,
        era: Era,
        name: str,
        arguments: dict[str, Any],
        ttl_s: float | None,
        progress_token: str | int | None,
        notify: Notify | None,
    ) -> LiveTask:
        registry = served.registry
        now = registry.now()
        asked = ttl_s if ttl_s is not None else self.settings.task_ttl_s
        ttl = min(max(asked, MIN_TTL_S), self.settings.task_max_ttl_s)
        replica = self.settings.replica_id if registry.shared is None else None
        record = TaskRecord(
            new_task_id(replica),
            owner,
            era,
            name,
            dict(arguments),
            created_wall=now,
            ttl_s=ttl,
            updated_wall=now,
            status_message="Waiting for the run to end.",
            progress_token=progress_token if era == "2025" else None,
        )
        if registry.shared is not None:
            await registry.shared.claim(record.task_id)  # before any replica can see it without a holder
        return await registry.add(record, notify)

    def _end_with(self, served: Lifespan, connection: Connection, task_id: str) -> None:
        """Cancel the task when `connection` closes. One close callback per connection, over the ids of its
        tasks still working (kept in the connection's own state, so they go with it): a long session (stdio:
        the process's life) keeps no ended task alive."""
        ids: set[str] | None = connection.state.get(BOUND_TASKS)
        if ids is None:
            bound: set[str] = set()
            ids = connection.state[BOUND_TASKS] = bound

            async def closed() -> None:
                for task_id in list(bound):
                    live = served.registry.live(task_id)
                    if live is not None:
                        await self._cancel(served, live, DROPPED_MESSAGE)

            connection.exit_stack.push_async_callback(closed)
        ids.difference_update([i for i in ids if (live := served.registry.live(i)) is None or live.record.terminal])
        ids.add(task_id)

    async def find(self, ctx: Ctx, task_id: str, era: Era) -> TaskRecord:
        """The caller's task, else `not found`. A working task whose holder died is taken over here."""
        served = self.lifespan_of(ctx)
        registry = served.registry
        record = await registry.find(task_id, self.owner(ctx), era)
        if record is None:
            raise not_found(task_id)
        shared = registry.shared
        lapsed = shared is not None and not record.terminal and registry.live(task_id) is None
        if lapsed and shared is not None and await shared.claim(task_id):
            record.progress_token = None  # the token was the dead replica's connection's
            live = await registry.add(record)
            self._launch(served, live, ctx)
            logger.info("task taken over: %s %s", record.tool, task_id[-6:])
        return record

    async def wait_end(self, ctx: Ctx, task_id: str, era: Era) -> TaskRecord:
        """Block until the caller's task has ended (2025 `tasks/result`)."""
        while True:
            record = await self.find(ctx, task_id, era)
            if record.terminal:
                return record
            live = self.lifespan_of(ctx).registry.live(task_id)
            if live is not None:
                changed = live.changed
                if not live.record.terminal:
                    await changed.wait()
            else:
                await anyio.sleep(REMOTE_POLL_S)  # held by another replica: read it again soon

    async def cancel(self, ctx: Ctx, task_id: str, era: Era) -> TaskRecord:
        """Cancel the caller's task: its wait ends (here, or on the replica holding it); the run goes on.
        A task that has already ended: INVALID_PARAMS on the 2025 wire, as it says; left as it is on 2026."""
        served = self.lifespan_of(ctx)
        registry = served.registry
        record = await registry.find(task_id, self.owner(ctx), era)
        if record is None:
            raise not_found(task_id)
        if record.terminal and era == "2025":  # 2025 rejects it; 2026 acknowledges (cancelling is best effort there)
            message = f"Cannot cancel task: already in terminal status '{record.status}'"
            raise MCPError(code=INVALID_PARAMS, message=message)
        if record.terminal:
            return record
        live = registry.live(task_id)
        if registry.shared is not None:
            await registry.shared.cancel(task_id, record.expires_wall - registry.now())
        if live is None:
            record.status, record.status_message = "cancelled", CANCELLED_MESSAGE
            return record
        await self._cancel(served, live, CANCELLED_MESSAGE)
        return live.record

    async def owned(self, ctx: Ctx, era: Era) -> list[TaskRecord]:
        owner = self.owner(ctx)
        registry = self.lifespan_of(ctx).registry
        records = {record.task_id: record for record in registry.owned(owner, era)}
        if registry.shared is not None:
            for record in await registry.shared.owned(owner):
                if record.era == era and record.expires_wall > registry.now():
                    records.setdefault(record.task_id, record)
        return sorted(records.values(), key=lambda record: record.created_wall)

    # Inside

    def _launch(self, served: Lifespan, live: LiveTask, ctx: Ctx) -> None:
        live.scope = anyio.CancelScope()
        served.group.start_soon(run_task, self, served, live, ctx)
        if served.registry.shared is not None:
            served.group.start_soon(self._hold, served, live)

    async def _hold(self, served: Lifespan, live: LiveTask) -> None:
        """While the task's wait runs here, keep its lease, and stop the wait if another replica cancelled it."""
        shared = served.registry.shared
        assert shared is not None
        while live.scope is not None and not live.record.terminal:
            held = await shared.claim(live.record.task_id)
            if held is None:
                await self._cancel(served, live, CANCELLED_MESSAGE)
                return
            if not held:  # another replica took it over (this one was too slow to renew): let it
                live.scope.cancel()
                return
            await anyio.sleep(LEASE_S / 3)

    async def _cancel(self, served: Lifespan, live: LiveTask, message: str) -> None:
        if live.record.terminal:
            return
        live.record.status, live.record.status_message = "cancelled", message
        if live.scope is not None:
            live.scope.cancel()
        await served.registry.changed(live)

    @staticmethod
    def _notifier(ctx: Ctx) -> Notify:
        """2025: `notifications/tasks/status` on the creator's connection at each change of status (best
        effort: a connection without a standalone channel drops it, and hosts poll anyway)."""
        connection = connection_of(ctx)
        last = ["working"]

        async def notify(record: TaskRecord) -> None:
            if record.status != last[0]:
                last[0] = record.status
                await connection.notify("notifications/tasks/status", record.task_fields())

        return notify
