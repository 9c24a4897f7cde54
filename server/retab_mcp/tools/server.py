"""The MCP server: identity, lifespan, what every call goes through, and the tools, prompts and resource it
registers.

Each family of tools is a module of its own (runs, waiting, lists, metrics, triage, compare, experiments,
any_run, evals, and app_only for the run view, whose extension is apps.py), with module-level tool functions
declared in registry.py and registered through prebuilt.py (their schemas kept, their module imported at a
first call). A tool body fetches, makes its view and returns it: waiting lives in `watch/`, what a model
reads in `views/`, the words it reads before calling in `descriptions.py`, and error messages in
`views/messages.py`. The lifespan opens what calls share: the engine (the API client and watcher: engine.py;
over stdio, at the first call: opening.py), each caller's partition with per-user keys (callers.py), and
the link to Redis with replicas (watch/sharing.py).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from pydantic import ValidationError

from .. import __version__, tasks
from ..api.client import call_deadline
from ..base import telemetry
from ..base.clock import Clock, RealClock
from ..base.config import Settings
from ..base.redaction import Redactor
from ..watch.sharing import RedisHub, Signer
from . import apps, descriptions, names, prebuilt, prompts, resources, sdk_compat
from .common import AppState, partition_name, state_of
from .errors import invalid_arguments
from .opening import EngineNotOpenError, EngineOpener

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import httpx2

    from ..watch.schedule import Schedule
    from .common import Engine

CALL_LOG = logging.getLogger("retab_mcp.calls")  # one JSON line per tool call (logs.configure_call_log)
BACKSTOP_S = 0.5  # past the deadline, a call that is still running is ended here, whatever it waits on


class ToolDeadlineError(ToolError):
    """A tool call that did not finish within its deadline (the API client's CallDeadlineError is one request's)."""


def log_call(tool: str, outcome: str, seconds: float, request_ids: list[str]) -> None:
    telemetry.TOOL_CALLS.labels(tool, outcome).inc()
    telemetry.TOOL_SECONDS.labels(tool).observe(seconds)
    if CALL_LOG.isEnabledFor(logging.INFO):
        line = {
            "event": "tool_call",
            "tool": tool,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 1),
            "retab_request_id": request_ids[-1] if request_ids else None,
            "retab_requests": len(request_ids),
        }
        CALL_LOG.info(json.dumps(line))


class RetabServer(MCPServer[AppState]):
    """The SDK's server, with what every tool call gets: one deadline over all it does (waits have their
    own), argument errors in this server's words instead of a validation dump, and the redaction of all
    it returns (redaction.py)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retab_settings = settings  # `settings` is the SDK's own
        self.redact = Redactor(settings.secrets)
        self.state: AppState | None = None  # the lifespan's, for handlers the SDK gives no context (completion)
        self.token_verifier: TokenVerifier | None = None  # with OAuth, for the HTTP layer's write-scope check
        self.task_service: tasks.TaskService | None = None  # the waits run as MCP tasks (tasks/service.py)
        self.write_tools: frozenset[str] = frozenset()  # the names of the tools that change something
        self._calls_in_flight = 0
        self._no_calls = anyio.Event()
        self._no_calls.set()

    async def calls_done(self) -> None:
        """Return once no tool call is in flight (at shutdown: their answers have gone out)."""
        while self._calls_in_flight:
            await self._no_calls.wait()

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Call the tool within its deadline; what comes back, result or error, goes through the redaction.
        Each call is counted in the metrics and, with RETAB_MCP_CALL_LOG, logged as one JSON line."""
        if not self._calls_in_flight:
            self._no_calls = anyio.Event()
        self._calls_in_flight += 1
        started = time.perf_counter()
        request_ids = telemetry.collect_request_ids()
        outcome = "crash"
        try:
            result = await self._redacted_call(name, arguments, context)
            outcome = "error" if isinstance(result, CallToolResult) and result.is_error else "ok"
            return result
        except ToolDeadlineError:
            outcome = "deadline"
            raise
        except UnexpectedToolError:
            raise
        except ToolError:
            outcome = "error"
            raise
        finally:
            self._calls_in_flight -= 1
            if not self._calls_in_flight:
                self._no_calls.set()
            tool = name if self._tool_input_schema(name) is not None else "unknown"  # a label from a closed set
            log_call(tool, outcome, time.perf_counter() - started, request_ids)

    async def _redacted_call(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        redact = self._redactor_for(context)
        try:
            result = await self._call_within_deadline(name, arguments, context)
        except UnexpectedToolError:
            raise  # the SDK shows only "Error executing tool NAME" for these
        except ToolError as error:
            kind = ToolDeadlineError if isinstance(error, ToolDeadlineError) else ToolError  # kept, for the metrics
            raise kind(redact.text(str(error))) from error.__cause__
        if isinstance(result, CallToolResult):
            content = [
                block.model_copy(update={"text": redact.text(block.text)}) if isinstance(block, TextContent) else block
                for block in result.content
            ]
            result = result.model_copy(
                update={"content": content, "structured_content": redact.deep(result.structured_content)}
            )
        return result

    def _redactor_for(self, context: Context[AppState, Any] | None) -> Redactor:
        """The server's redaction; with per-user keys, the caller's (its key and the token)."""
        if context is None or self.state is None or self.state.callers is None:
            return self.redact
        try:
            return state_of(context).redact
        except ToolError:
            return self.redact  # no key: the call fails with that, and there is no caller's key to hide

    def _check_write_scope(self, name: str, context: Context[AppState, Any] | None) -> None:
        """With OAuth, a tool that changes something needs the write scope, whatever the transport. The HTTP
        layer refuses such calls with a 403 first (transports/oauth.py); this holds for any path it misses."""
        settings = self.retab_settings
        if not settings.oauth_issuer or name not in self.write_tools:
            return
        request = context.request_context.request if context is not None else None
        user = getattr(request, "scope", {}).get("user") if request is not None else None
        scopes = getattr(user, "scopes", None)
        if not isinstance(scopes, list) or settings.oauth_write_scope not in scopes:
            raise ToolError(
                f"{name} changes a run, so it needs an access token with the {settings.oauth_write_scope} scope; this "
                "one has only the read scope. Ask the authorization server for that scope, or ask the user to."
            )

    async def _call_within_deadline(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        self._check_write_scope(name, context)
        deadline = None if name in names.WAITS else self.retab_settings.call_deadline_s
        try:
            with (
                call_deadline(deadline),
                anyio.fail_after(None if deadline is None else deadline + BACKSTOP_S),
            ):
                served = context.request_context.lifespan_context if context is not None else self.state
                if served is not None:
                    await served.ready()  # over stdio, the first call opens the engine (opening.py)
                return await super().call_tool(name, arguments, context)
        except EngineNotOpenError as error:
            raise ToolError(f"{error} Call again; if this persists, restart the server.") from None
        except TimeoutError:
            raise ToolDeadlineError(
                f"{name} did not finish within its {deadline:g} s deadline (RETAB_MCP_CALL_DEADLINE_S). "
                "Call again in about a minute."
            ) from None
        except ToolError as error:
            if isinstance(error.__cause__, ValidationError) and not isinstance(error, UnexpectedToolError):
                schema = self._tool_input_schema(name)
                raise ToolError(invalid_arguments(name, error.__cause__, schema)) from error.__cause__
            raise


async def start_sharing(settings: Settings, group: anyio.abc.TaskGroup) -> RedisHub | None:
    """With RETAB_MCP_REDIS_URL, this replica's link to Redis, listening in `group`."""
    if not settings.redis_url:
        return None
    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    assert settings.partition_secret is not None  # Settings requires it with Redis
    hub = RedisHub(settings.redis_url, replica, Signer(settings.partition_secret.encode()))
    hub.connect()
    await group.start(hub.run)
    return hub


def build_server(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    schedule: Schedule | None = None,
    stop: anyio.Event | None = None,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
    lazy_engine: bool = False,
) -> RetabServer:
    """The retab MCP server. `transport` and `clock` let the demo and tests put the simulated API behind it;
    setting `stop` makes every wait in progress return at once (for a prompt, clean shutdown). With
    `lazy_engine` (stdio), the engine opens at the first call rather than with the lifespan, unless Redis or
    per-user keys are used (opening.py)."""
    the_clock = clock or RealClock()
    task_service = tasks.TaskService(settings)

    @asynccontextmanager
    async def lifespan(server: MCPServer[AppState]) -> AsyncGenerator[AppState]:
        async with anyio.create_task_group() as group:
            hub = await start_sharing(settings, group)
            own_partition = "own"
            if settings.partition_secret:
                own_partition = partition_name(settings.partition_secret.encode(), settings.api_key or "")

            def open_engine() -> AbstractAsyncContextManager[Engine]:
                from . import engine

                return engine.opened(
                    settings,
                    the_clock,
                    partition=own_partition,
                    hub=hub,
                    transport=transport,
                    schedule=schedule,
                    stop=stop,
                )

            callers = None
            if settings.per_user_keys:
                from .callers import Callers

                callers = Callers(
                    settings, the_clock, group, transport=transport, schedule=schedule, stop=stop, hub=hub
                )
                group.start_soon(callers.sweep)
            state = AppState(
                the_clock,
                settings,
                Redactor(settings.secrets),
                callers=callers,
                hub=hub,
                opener=EngineOpener(open_engine, group),
            )
            opens_at_first_call = lazy_engine and hub is None and callers is None
            if not opens_at_first_call:
                await state.ready()
            assert isinstance(server, RetabServer)
            server.state = state
            try:
                async with task_service.running(state, group, hub, stop):
                    yield state
            finally:
                server.state = None
                if callers is not None:
                    await callers.aclose()
                if hub is not None:
                    await hub.aclose()
                group.cancel_scope.cancel()

    def meta_of(view: str) -> dict[str, Any] | None:
        return {"shown": apps.SHOWN_BY_VIEW, "app_only": apps.APP_ONLY}.get(view)

    listed, writing = prebuilt.tools(settings.allow_writes, meta_of)
    server = RetabServer(
        settings,
        name="retab",
        title="Retab experiment runs",
        instructions=descriptions.INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
        extensions=[apps.extension(), tasks.TasksExtension(task_service)],
        middleware=[tasks.legacy_middleware(task_service)],
        auth=auth,
        token_verifier=token_verifier,
        tools=listed,  # in registry.catalog's order: tools/list's
    )
    server.write_tools = writing
    server.token_verifier = token_verifier
    server.task_service = task_service
    task_service.attach(server)
    resources.register_resource(server, lambda: server.state)
    prompts.register_prompts(server)
    sdk_compat.accept_log_level(server)
    sdk_compat.list_tools_per_caller(server, tasks.with_task_support(apps.tools_for_caller))
    return server
