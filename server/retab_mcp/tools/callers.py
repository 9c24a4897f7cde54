"""Per-user keys: what the server keeps for each caller, kept apart by a keyed hash of the caller's key.

With RETAB_MCP_PER_USER_KEYS=1 every HTTP request carries its caller's Retab key (`KEY_HEADER`; the
transport refuses a request without one, or with one that cannot be a key) and the server has no key of
its own. Each distinct key gets a partition: its own API client, its own watcher (poll loops, the ledger
of time waited, coalesced polls, remembered states), its own redaction and its own start gate. Nothing a
caller sees is shared between partitions, so a run read with key A is never shown to a caller with key B:
B's call goes to the API with B's key and gets B's answer. What they share is plumbing: one HTTP pool
(each request carries its own key), so that a partition costs kilobytes, not a TLS context and a pool of
connections; at most RETAB_MCP_MAX_CALLERS are open at once.

A partition is named by HMAC-SHA256 of the key under a secret (drawn at start; for replicas, the
RETAB_MCP_PARTITION_SECRET they share, so that a key names the same partition on each), so the name says
nothing about the key, even to someone who knows the key's format; the key itself lives only in its
client's headers and its redactor. Partitions with nobody waiting close after RETAB_MCP_CALLER_IDLE_S without a
call; past RETAB_MCP_MAX_CALLERS the least recently used idle one closes.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from ..api.client import RetabClient, http_pool
from ..api.retry import RetryPolicy
from ..base.clock import Clock
from ..base.config import Settings
from ..base.logs import forget_in_logs, redact_in_logs
from ..base.redaction import Redactor
from ..watch.schedule import Schedule
from ..watch.sharing import RedisHub
from ..watch.starts import StartGate
from ..watch.watcher import RunWatcher
from .common import AppState, Engine, partition_name

if TYPE_CHECKING:
    import httpx2


@dataclass
class Partition:
    state: AppState
    last_used_t: float
    key: str = field(repr=False)  # to forget it in the logs when the partition closes


class Callers:
    """The partitions of one server; their poll loops run in `group`, the lifespan's."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        group: anyio.abc.TaskGroup,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        schedule: Schedule | None = None,
        stop: anyio.Event | None = None,
        hub: RedisHub | None = None,
    ) -> None:
        self._settings = settings
        self._hub = hub
        self._clock = clock
        self._group = group
        self._transport = transport
        self._schedule = schedule
        self._stop = stop
        # Replicas share a secret, so that one key names one partition on all of them; alone, any will do.
        shared = settings.partition_secret
        self._secret = shared.encode() if shared else secrets.token_bytes(32)
        self._partitions: OrderedDict[str, Partition] = OrderedDict()
        self._pool: httpx2.AsyncClient | None = None  # one HTTP pool for every partition's client

    def partition_of(self, key: str) -> str:
        return partition_name(self._secret, key)

    def __len__(self) -> int:
        return len(self._partitions)

    def state_for(self, key: str) -> AppState:
        """The caller's partition, made on its first call."""
        name = self.partition_of(key)
        now = self._clock.now()
        partition = self._partitions.get(name)
        if partition is None:
            partition = self._partitions[name] = Partition(self._open(key), now, key)
            self._make_room()
        partition.last_used_t = now
        self._partitions.move_to_end(name)
        return partition.state

    def _open(self, key: str) -> AppState:
        settings = replace(self._settings, api_key=key, per_user_keys=False)
        retry = RetryPolicy.from_settings(settings, sleep=self._clock.sleep)
        if self._pool is None:
            self._pool = http_pool(self._settings, self._transport)
        client = RetabClient(settings, retry=retry, pool=self._pool)
        sharing = self._hub.partition(self.partition_of(key)) if self._hub is not None else None
        watcher = RunWatcher(
            client, self._clock, self._group, schedule=self._schedule, stop=self._stop, sharing=sharing
        )
        redact = Redactor([key, *self._settings.secrets])
        redact_in_logs(key)
        starts = StartGate(partition=self.partition_of(key), hub=self._hub)
        return AppState(self._clock, settings, redact, engine=Engine(client, watcher, starts))

    def _make_room(self) -> None:
        while len(self._partitions) > self._settings.max_callers:
            idle = next((n for n, p in self._partitions.items() if not p.state.watcher.waiting), None)
            if idle is None:
                return  # everyone is waiting: none is closed under them
            self._close(idle)

    async def close_idle(self) -> None:
        """Close the partitions nobody has called for caller_idle_s and nobody waits in."""
        cutoff = self._clock.now() - self._settings.caller_idle_s
        for name in [n for n, p in self._partitions.items() if p.last_used_t < cutoff and not p.state.watcher.waiting]:
            self._close(name)
        await anyio.lowlevel.checkpoint()

    async def sweep(self) -> None:
        """Close idle partitions, every quarter of the idle time (at most every minute), until cancelled."""
        every = min(60.0, self._settings.caller_idle_s / 4)
        while True:
            await self._clock.sleep(every)
            await self.close_idle()

    def _close(self, name: str) -> None:
        partition = self._partitions.pop(name)
        forget_in_logs(partition.key)  # its client shares the pool: nothing of its own to close

    async def aclose(self) -> None:
        for partition in self._partitions.values():
            forget_in_logs(partition.key)
        self._partitions.clear()
        if self._pool is not None:
            await self._pool.aclose()
