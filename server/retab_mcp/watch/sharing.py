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

What is published is what the holder read: a state of the run, or the error that ended its watch (the run
is not found, the key is refused), so that every replica answers a caller the same way. Redis is trusted to
carry messages, not to write them: each one is sealed with an HMAC under RETAB_MCP_PARTITION_SECRET over the
key or channel it belongs to (`Signer`), and a replica drops what fails the seal, what names another run or
another partition than its channel (a replay), and a state read at a time still to come.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import anyio
import anyio.abc

from ..base import telemetry

logger = logging.getLogger(__name__)

PREFIX = "retab-mcp"
LEASE_MARGIN_S = 1.0
STATE_TTL_S = 3600
RETRY_S = 5.0
PAYLOADS_KEPT = 10_000  # the last state heard for each run, most recent first
REDIS_TIMEOUT_S = 0.5  # a Redis slower than this is as good as down: polling alone is the safe side
FUTURE_SKEW_S = 5.0  # a message read later than this from now (by this replica's clock) is a forgery

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
return redis.call('PUBLISH', KEYS[2], ARGV[3])
"""


class Signer:
    """Seals what replicas leave in Redis with an HMAC-SHA256 under their shared secret, bound to where it is
    left (a key or a channel), so that a message copied to another run or partition fails to open."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, where: str, body: str) -> str:
        return hmac.new(self._secret, f"{where}\n{body}".encode(), hashlib.sha256).hexdigest()

    def seal(self, where: str, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"))
        return json.dumps({"body": body, "mac": self._mac(where, body)}, separators=(",", ":"))

    def open(self, where: str, sealed: str) -> dict[str, Any] | None:
        """The payload, or None for anything that is not a message sealed for `where`."""
        try:
            outer: Any = json.loads(sealed)
            body, mac = outer["body"], outer["mac"]
            if not isinstance(body, str) or not isinstance(mac, str):
                return None
            if not hmac.compare_digest(mac, self._mac(where, body)):
                return None
            payload: Any = json.loads(body)
        except (ValueError, TypeError, KeyError):
            return None
        return cast(dict[str, Any], payload) if isinstance(payload, dict) else None


def names_run(payload: dict[str, Any], key: str) -> bool:
    """Whether an opened message is about the run known as `key` ("<kind>:<run id>"): a state of another
    run is a replay, dropped."""
    run: Any = payload.get("run")
    if payload.get("run_id") != key:
        return False
    run_id = key.partition(":")[2] or key
    return run is None or (isinstance(run, dict) and cast(dict[str, Any], run).get("id") == run_id)


class PollSharing(Protocol):
    """What a watcher needs to share its polls: the partition's view of the shared state."""

    async def claim(self, run_id: str, hold_s: float) -> float | None:
        """None: this replica polls the run now. Else: seconds until the holder's lease ends."""
        ...

    async def publish(self, run_id: str, message: dict[str, Any]) -> None:
        """Tell the other replicas what was read of the run: {"run": ...} or {"error": ...}, with
        "read_wall_t" (epoch seconds)."""
        ...

    async def latest(self, run_id: str) -> dict[str, Any] | None:
        """The last message another replica published about the run, opened and checked; None if none."""
        ...

    def published(self, run_id: str) -> anyio.Event:
        """An event set at the next message published for the run, by any replica."""
        ...


@dataclass
class RedisHub:
    """This replica's link to Redis: one client, one subscription for every run, and the fallback."""

    url: str
    replica_id: str
    signer: Signer
    _redis: Any = None
    _events: dict[str, anyio.Event] = field(default_factory=dict[str, anyio.Event])
    _payloads: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict[str, dict[str, Any]])
    _down_until: float = float("-inf")
    _down: bool = False

    def connect(self) -> None:
        from redis.asyncio import Redis

        self._redis = cast(Any, Redis).from_url(
            self.url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S, decode_responses=True
        )

    @property
    def client(self) -> Any:
        """redis-py's client, for what else replicas share through Redis (the start locks, watch/starts.py)."""
        return self._redis

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
        """Listen to every message published until cancelled; on a lost connection, listen again."""
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
        payload = self.signer.open(channel, data)
        if payload is None or payload.get("by") == self.replica_id:
            return  # not sealed for this channel; or this replica's own poll: its waiters have it already
        self._payloads[channel] = payload
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
        result = await self._redis.eval(script, len(keys), *keys, *args)
        self._up()
        return result

    async def get(self, key: str) -> str | None:
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

    async def publish(self, run_id: str, message: dict[str, Any]) -> None:
        if not self.hub.available:
            return
        payload = {**message, "run_id": run_id, "by": self.hub.replica_id}
        state_key, channel = self._key("state", run_id), self._key("run", run_id)
        try:
            # The stored copy is sealed for its key, the published one for its channel: neither opens elsewhere.
            args = [self.hub.signer.seal(state_key, payload), STATE_TTL_S, self.hub.signer.seal(channel, payload)]
            await self.hub.call(_PUBLISH, [state_key, channel], args)
        except Exception as error:  # the others will take the lease when it ends, and poll
            self.hub.failed(error)

    async def latest(self, run_id: str) -> dict[str, Any] | None:
        found = self.hub.payload(self._key("run", run_id))
        if found is None and self.hub.available:
            state_key = self._key("state", run_id)
            try:
                stored = await self.hub.get(state_key)
            except Exception as error:
                self.hub.failed(error)
                return None
            found = self.hub.signer.open(state_key, stored) if stored else None
            if found is not None and found.get("by") == self.hub.replica_id:
                return None  # what this replica read itself
        if found is None or not names_run(found, run_id):
            return None
        return found

    def published(self, run_id: str) -> anyio.Event:
        return self.hub.event_for(self._key("run", run_id))
