"""The engine (the API client, the poll loops, the start gate: engine.py), opened once: at start, or over
stdio at the first call that needs it.

A host launches a stdio server and waits for `initialize` and `tools/list` before anything else; the engine
and the modules it imports (the API's models, the poll loop and its forecast, the run kinds: tens of
milliseconds of CPU, BENCHMARKS.md 'Start-up') serve only calls. So over stdio they are loaded by the first
call, which waits for them once; calls that come together share the one opening. Over HTTP, and wherever
Redis or per-user keys are used, the engine opens with the lifespan, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
import anyio.abc

Engine = TypeVar("Engine")  # common.Engine
LOG = logging.getLogger(__name__)


class EngineNotOpenError(RuntimeError):
    """The engine could not be opened (or the server stopped while it opened)."""


@dataclass
class _Attempt(Generic[Engine]):
    """One opening of the engine, shared by every caller that asked while it was under way."""

    done: anyio.Event = field(default_factory=anyio.Event)  # set once the engine is open, or could not be
    engine: Engine | None = None
    failure: Exception | None = None


class EngineOpener(Generic[Engine]):
    """Opens the engine once, in the lifespan's task group (so that it outlives the call that opened it and
    closes with the lifespan), for every caller that asks, however many ask at once. An opening that failed
    is tried again by the next caller."""

    def __init__(self, open_engine: Callable[[], AbstractAsyncContextManager[Engine]], group: anyio.abc.TaskGroup):
        self._open_engine = open_engine
        self._group = group
        self._attempt: _Attempt[Engine] | None = None

    async def open(self) -> Engine:
        attempt = self._attempt
        if attempt is None or (attempt.done.is_set() and attempt.engine is None):
            attempt = self._attempt = _Attempt()
            # Started from the first caller's task, the holder inherits its context variables (its deadline,
            # its list of request ids); nothing it runs reads them: poll loops start from the waits' own tasks.
            self._group.start_soon(self._hold, attempt)
        await attempt.done.wait()
        if attempt.engine is not None:
            return attempt.engine
        if attempt.failure is None:
            raise EngineNotOpenError("The server stopped before its API client was open.")
        raise EngineNotOpenError(
            f"The server could not open its API client ({type(attempt.failure).__name__})."
        ) from attempt.failure

    async def _hold(self, attempt: _Attempt[Engine]) -> None:
        """Open the engine, keep it open until the lifespan's task group is cancelled, then close it. Not tied
        to the call that asked first: that call may end (or be cancelled) long before the others."""
        try:
            async with self._open_engine() as engine:
                attempt.engine = engine
                attempt.done.set()
                await anyio.sleep_forever()
        except Exception as failure:
            if attempt.engine is not None:
                raise  # after it opened: the lifespan's own failure, as a failure of the engine always was
            attempt.failure = failure  # while opening: the callers waiting are told, and the lifespan goes on
            LOG.error("The API client could not be opened.", exc_info=failure)
        finally:
            attempt.done.set()
