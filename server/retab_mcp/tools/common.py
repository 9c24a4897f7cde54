"""What every tool family shares: the lifespan's state, argument types, annotations and the result shape."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ..base.config import KEY_HEADER

if TYPE_CHECKING:
    from ..api.client import RetabClient
    from ..base.clock import Clock
    from ..base.config import Settings
    from ..base.redaction import Redactor
    from ..watch.sharing import RedisHub
    from ..watch.starts import StartGate
    from ..watch.watcher import ProgressCallback, RunWatcher
    from .opening import EngineOpener

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)

RunId = Annotated[
    str,
    Field(description="Retab experiment run id, e.g. 'exprun_2'."),
]
AnyRunId = Annotated[
    str,
    Field(description="exprun_… (experiment), run_… (workflow) or wfevalrun_… (eval) run id."),
]
Kind = Annotated[
    Literal["experiment", "workflow", "eval"] | None,
    Field(description="experiment, workflow or eval; omit: the id's prefix says."),
]
OptionalId = Annotated[str | None, Field(description="An id as Retab shows it; omit for no filter.")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page; omit for the first page.")]
WaitSeconds = Annotated[
    float,
    Field(
        description="Seconds to wait at most, 1 to 50 (RETAB_MCP_MAX_WAIT_S): hosts end calls at ~60 s.",
        allow_inf_nan=False,
    ),
]


class CallerStates(Protocol):
    """With per-user keys, each caller's own state, made on its first call (tools/callers.py's Callers)."""

    def state_for(self, key: str) -> AppState: ...

    def partition_of(self, key: str) -> str:
        """The name of the partition a caller's key belongs to (no key in it)."""
        ...


@dataclass(frozen=True)
class Engine:
    """What reads and waits go through (engine.py opens it): the API client, the poll loops, the starts."""

    client: RetabClient
    watcher: RunWatcher
    starts: StartGate  # one start at a time per experiment (watch/starts.py)


@dataclass
class AppState:
    """What the lifespan opens once and every call uses. Its engine is open from the start, or, over stdio,
    opened by the first call that needs it (`ready`, which every call awaits: opening.py says why)."""

    clock: Clock
    settings: Settings
    redact: Redactor
    engine: Engine | None = None
    callers: CallerStates | None = None  # with per-user keys: each caller's own state (tools/callers.py)
    hub: RedisHub | None = None  # with replicas: the link to Redis that shares polls (watch/sharing.py)
    opener: EngineOpener[Engine] | None = None  # opens `engine` when it is not open yet

    async def ready(self) -> None:
        """Return once the engine is open (at once when it is)."""
        if self.engine is None and self.opener is not None:
            self.engine = await self.opener.open()

    @property
    def client(self) -> RetabClient:
        return self._open_engine().client

    @property
    def watcher(self) -> RunWatcher:
        return self._open_engine().watcher

    @property
    def starts(self) -> StartGate:
        return self._open_engine().starts

    def _open_engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the engine is not open: `await state.ready()` first (every tool call does)")
        return self.engine

    def now(self) -> datetime:
        """The current wall time by this server's clock (virtual in tests)."""
        return self.clock.wall_at(self.clock.now())

    def clamp_wait(self, timeout_s: float) -> float:
        return min(max(timeout_s, 1.0), self.settings.max_wait_s)


def partition_name(secret: bytes, key: str) -> str:
    """The name of a key's partition: HMAC-SHA256 under `secret`, cut to 128 bits."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:32]


def state_of(ctx: Context[AppState, Any]) -> AppState:
    """The state a call uses: the server's, or with per-user keys, the caller's own partition."""
    served = ctx.request_context.lifespan_context
    if served.callers is None:
        return served
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    key = headers.get(KEY_HEADER) if headers is not None else None
    if not key:
        raise ToolError(f"This server uses each caller's own Retab key: send it in the {KEY_HEADER} header.")
    return served.callers.state_for(key)


def redacted_progress(ctx: Context[AppState, Any]) -> ProgressCallback:
    """Progress for the caller, its message (which quotes the run's status) through the redaction."""
    redact = state_of(ctx).redact

    async def report(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, redact.text(message))

    return report


def dump(model: BaseModel) -> dict[str, object]:
    return model.model_dump(mode="json", exclude_none=True)


def tool_result(text: str, structured_content: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured_content)
