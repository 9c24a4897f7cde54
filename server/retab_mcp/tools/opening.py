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
from typing import Generic, TypeVar

import anyio
import anyio.abc

Engine = TypeVar("Engine")  # common.Engine
LOG = logging.getLogger(__name__)


class EngineNotOpenError(RuntimeError):
    """The engine could not be opened (or the server stopped while it opened)."""


class EngineOpener(Generic[Engine]):
    """Opens the engine once, in the lifespan's task group (so that it outlives the call that opened it and
    closes with the lifespan), for every caller that asks, however many ask at once."""

    def __init__(self, open_engine: Callable[[], AbstractAsyncContextManager[Engine]], group: anyio.abc.TaskGroup):
        self._open_engine = open_engine
        self._group = group
        self._engine: Engine | None = None
        self._opened: anyio.Event | None = None  # set once the engine is open, or its opening failed
        self._failure: BaseException | None = None

    async def open(self) -> Engine:
        if self._engine is not None:
            return self._engine
        if self._opened is None:  # the first to ask opens it; the others wait for the same opening
            self._opened = anyio.Event()
            self._failure = None
            # Started from the first caller's task, the holder inherits its context variables (its deadline,
            # its list of request ids); nothing it runs reads them: poll loops start from the waits' own tasks.
            self._group.start_soon(self._hold, self._opened)
        opened = self._opened
        await opened.wait()
        if self._engine is None:
            if self._opened is opened:
                self._opened = None  # the next call tries again
            if self._failure is None:
                raise EngineNotOpenError("The server stopped before its API client was open.")
            raise EngineNotOpenError(f"The server could not open its API client ({type(self._failure).__name__}).")
        return self._engine

    async def _hold(self, opened: anyio.Event) -> None:
        """Open the engine, keep it open until the lifespan's task group is cancelled, then close it. Not tied
        to the call that asked first: that call may end (or be cancelled) long before the others."""
        try:
            async with self._open_engine() as engine:
                self._engine = engine
                opened.set()
                await anyio.sleep_forever()
        except Exception as failure:
            if self._engine is not None:
                raise  # after it opened: the lifespan's own failure, as a failure of the engine always was
            self._failure = failure  # while opening: the callers waiting are told, and the lifespan goes on
            LOG.error("The API client could not be opened (%s); the next call tries again.", type(failure).__name__)
        finally:
            opened.set()
