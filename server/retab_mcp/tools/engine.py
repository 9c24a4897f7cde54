"""The engine every read and wait goes through: the API client, the watcher's poll loops and the start gate
of one key partition. Imported when it is first opened (opening.py), with the API's models and the poll
loop it brings."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..api.client import RetabClient
from ..api.retry import RetryPolicy
from ..watch.starts import StartGate
from ..watch.watcher import running_watcher
from .common import Engine

if TYPE_CHECKING:
    import anyio
    import httpx2

    from ..base.clock import Clock
    from ..base.config import Settings
    from ..watch.schedule import Schedule
    from ..watch.sharing import RedisHub


@asynccontextmanager
async def opened(
    settings: Settings,
    clock: Clock,
    *,
    partition: str,
    hub: RedisHub | None,
    transport: httpx2.AsyncBaseTransport | None,
    schedule: Schedule | None,
    stop: anyio.Event | None,
) -> AsyncGenerator[Engine]:
    """The engine of `partition` (its polls shared with other replicas through `hub`), open while inside."""
    retry = RetryPolicy.from_settings(settings, sleep=clock.sleep)
    sharing = hub.partition(partition) if hub else None
    async with (
        RetabClient(settings, transport=transport, retry=retry) as client,
        running_watcher(client, clock, schedule=schedule, stop=stop, sharing=sharing) as watcher,
    ):
        yield Engine(client, watcher, StartGate(partition=partition, hub=hub))
