"""One poller per run across replicas: a short lease in Redis says which replica polls, and the state it
reads is published to all of them.

For each (partition, run) — the partition is a keyed hash of the Retab key the run is read with, never
the key — the replica that holds `lease:<partition>:<run>` polls the API; it renews the lease each time it
polls, for as long as its next poll is away plus `LEASE_MARGIN_S`, and publishes each state it reads on
`run:<partition>:<run>` (kept under `state:` too, for a replica that starts waiting later). The others do
not poll: their waiters wake on what is published, and at the end of the lease they try to take it. A
holder that dies is so replaced about `LEASE_MARGIN_S` after the poll it missed, within one poll interval.

When Redis cannot be reached each replica polls on its own (as a single server does), says so once in
its log, counts it in `retab_mcp_redis_fallbacks`, and tries Redis again every `RETRY_S`: agents see no
error, only more requests to the API.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import anyio
import anyio.abc

from .. import telemetry

logger = logging.getLogger(__name__)

PREFIX = "retab-mcp"
LEASE_MARGIN_S = 1.0
STATE_TTL_S = 3600
RETRY_S = 5.0
PAYLOADS_KEPT = 10_000  # the last state heard for each run, most recent first
REDIS_TIMEOUT_S = 0.5  # a Redis slower than this is as good as down: polling alone is the safe side

# Renew the lease if this replica holds it, take it if nobody does; else say how long it has to run.
# -1: renewed, -2: taken (a change of holder), n >= 0: another replica holds it for n more ms.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return -1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return -2 end
return math.max(redis.call('PTTL', KEYS[1]), 0)
"""
_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return redis.call('PUBLISH', KEYS[2], ARGV[1])
"""


class PollSharing(Protocol):
    """What a watcher needs to share its polls: the partition's view of the shared state."""

    async def claim(self, run_id: str, hold_s: float) -> float | None:
        """None: this replica polls the run now. Else: seconds until the holder's lease ends."""
        ...

    async def publish(self, run_id: str, state: dict[str, Any]) -> None: ...

    async def latest(self, run_id: str) -> dict[str, Any] | None: ...

    def published(self, run_id: str) -> anyio.Event:
        """An event set at the next state published for the run, by any replica."""
        ...


@dataclass
class RedisHub:
    """This replica's link to Redis: one client, one subscription for every run, and the fallback."""

    url: str
    replica_id: str
    _redis: Any = None
    _events: dict[str, anyio.Event] = field(default_factory=dict[str, anyio.Event])
    _payloads: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict[str, dict[str, Any]])
    _down_until: float = float("-inf")
    _down: bool = False
    ops: int = 0  # commands sent, for the benchmark's Redis operations per poll

    def connect(self) -> None:
        from redis.asyncio import Redis

        self._redis = cast(Any, Redis).from_url(
            self.url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S, decode_responses=True
        )

    @property
    def where(self) -> str:
        """The Redis address without any password, for log lines."""
        kwargs: dict[str, Any] = self._redis.connection_pool.connection_kwargs if self._redis is not None else {}
        return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")

    def partition(self, name: str) -> PartitionSharing:
        return PartitionSharing(self, name)

    async def ping(self) -> str | None:
        """None if Redis answers, else why not (for /readyz)."""
        try:
            with anyio.fail_after(REDIS_TIMEOUT_S * 4):
                await self._redis.ping()
        except Exception as error:  # any failure to answer is "unreachable", whatever the library raised
            return f"Redis at {self.where} does not answer ({type(error).__name__})"
        return None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen to every published state until cancelled; on a lost connection, listen again."""
        task_status.started()
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.psubscribe(f"{PREFIX}:run:*")
                self._up()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and message.get("type") == "pmessage":
                        self._deliver(str(message["channel"]), str(message["data"]))
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as error:  # the connection is lost, whatever the library calls it
                self.failed(error)
                await anyio.sleep(RETRY_S)

    def _deliver(self, channel: str, data: str) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict) or cast(dict[str, Any], payload).get("by") == self.replica_id:
            return  # this replica's own poll: its waiters have it already
        self._payloads[channel] = cast(dict[str, Any], payload)
        self._payloads.move_to_end(channel)
        while len(self._payloads) > PAYLOADS_KEPT:
            self._payloads.popitem(last=False)
        event = self._events.pop(channel, None)
        if event is not None:
            event.set()

    def event_for(self, channel: str) -> anyio.Event:
        event = self._events.get(channel)
        if event is None:
            event = self._events[channel] = anyio.Event()
        return event

    def payload(self, channel: str) -> dict[str, Any] | None:
        return self._payloads.get(channel)

    @property
    def available(self) -> bool:
        return not self._down or anyio.current_time() >= self._down_until

    async def call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self.ops += 1
        result = await self._redis.eval(script, len(keys), *keys, *args)
        self._up()
        return result

    async def get(self, key: str) -> str | None:
        self.ops += 1
        value = await self._redis.get(key)
        self._up()
        return value

    def failed(self, error: BaseException) -> None:
        self._down_until = anyio.current_time() + RETRY_S
        if not self._down:
            self._down = True
            telemetry.REDIS_FALLBACKS.inc()
            logger.warning(
                "Redis at %s cannot be reached (%s): this replica polls the runs it waits on alone until it is back",
                self.where,
                type(error).__name__,
            )

    def _up(self) -> None:
        if self._down:
            self._down = False
            logger.warning("Redis at %s answers again: polls are shared between replicas again", self.where)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


@dataclass
class PartitionSharing:
    """One partition's runs, shared through the hub. Every failure of Redis means: poll yourself."""

    hub: RedisHub
    name: str

    def _key(self, kind: str, run_id: str) -> str:
        return f"{PREFIX}:{kind}:{self.name}:{run_id}"

    async def claim(self, run_id: str, hold_s: float) -> float | None:
        if not self.hub.available:
            return None
        try:
            answer = int(
                await self.hub.call(_CLAIM, [self._key("lease", run_id)], [self.hub.replica_id, int(hold_s * 1000)])
            )
        except Exception as error:  # Redis down or slow: poll alone
            self.hub.failed(error)
            return None
        if answer == -2:
            telemetry.LEASE_CHANGES.inc()
        return None if answer < 0 else answer / 1000

    async def publish(self, run_id: str, state: dict[str, Any]) -> None:
        if not self.hub.available:
            return
        payload = json.dumps({**state, "by": self.hub.replica_id}, separators=(",", ":"))
        try:
            keys = [self._key("state", run_id), self._key("run", run_id)]
            await self.hub.call(_PUBLISH, keys, [payload, STATE_TTL_S])
        except Exception as error:  # the others will take the lease when it ends, and poll
            self.hub.failed(error)

    async def latest(self, run_id: str) -> dict[str, Any] | None:
        channel = self._key("run", run_id)
        heard = self.hub.payload(channel)
        if heard is not None:
            return heard
        if not self.hub.available:
            return None
        try:
            stored = await self.hub.get(self._key("state", run_id))
        except Exception as error:
            self.hub.failed(error)
            return None
        try:
            found: Any = json.loads(stored) if stored else None
        except ValueError:
            return None
        if not isinstance(found, dict) or cast(dict[str, Any], found).get("by") == self.hub.replica_id:
            return None  # nothing, or what this replica read itself
        return cast(dict[str, Any], found)

    def published(self, run_id: str) -> anyio.Event:
        return self.hub.event_for(self._key("run", run_id))
