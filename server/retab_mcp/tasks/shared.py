"""Tasks across replicas: each task's record in Redis, sealed, and a lease on who runs its wait.

The record (`task:<id>`) is stored at every change and expires with the task, so any replica can answer
`tasks/get` and `tasks/result` for a task another one holds. It is sealed as run states are
(watch/sharing.py's `Signer`, under RETAB_MCP_PARTITION_SECRET, bound to its key): a party that can write
to Redis cannot forge a result, nor move a sealed record to another task's key. It holds no secret.

The replica running a task's wait holds `tasklease:<id>`, renewed while it waits. A replica asked about a
working task whose lease has lapsed (its holder died) takes the lease and runs the wait itself, with the
asking caller's context (its key, with per-user keys: Redis never holds one); the poll of the run is
shared as before, so a takeover costs no request to Retab that a poll would not. `taskowner:<owner>`
lists an owner's tasks for `tasks/list`.

Redis failing is never the caller's error: the task goes on in this process, as a poll does alone, and the
hub says so once in the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol, cast

from ..watch.sharing import PREFIX, RedisHub
from .records import TaskRecord

logger = logging.getLogger(__name__)

CANCELLED_MESSAGE = "Cancelled by request; the Retab run itself goes on."
LEASE_S = 6.0  # a lapsed lease means its holder died; renewed every LEASE_S / 3 by a live one

# Renew the lease if this replica holds it, take it if nobody does. 1: held by this replica now; 0: another's;
# -1: the task was cancelled (by whichever replica was asked to).
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
_STORE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 0
"""


class SharedTasks(Protocol):
    async def store(self, record: TaskRecord, now: float) -> None: ...
    async def load(self, task_id: str) -> TaskRecord | None: ...
    async def claim(self, task_id: str) -> bool | None: ...
    async def release(self, task_id: str) -> None: ...
    async def cancel(self, task_id: str, left_s: float) -> None: ...
    async def owned(self, owner: str) -> list[TaskRecord]: ...


class RedisTasks:
    def __init__(self, hub: RedisHub, max_ttl_s: float) -> None:
        self.hub = hub
        self.max_ttl_s = max_ttl_s

    @staticmethod
    def _key(kind: str, name: str) -> str:
        return f"{PREFIX}:{kind}:{name}"

    async def store(self, record: TaskRecord, now: float) -> None:
        if not self.hub.available:
            return
        key = self._key("task", record.task_id)
        sealed = self.hub.signer.seal(key, {"record": record.dumps()})
        left_ms = max(1, round((record.expires_wall - now) * 1000))
        owner_key = self._key("taskowner", record.owner)
        try:
            args = [sealed, left_ms, record.task_id, round(self.max_ttl_s * 1000)]
            await self.hub.call(_STORE, [key, owner_key], args)
        except Exception as error:  # Redis down or slow: the task goes on here, known here only
            self.hub.failed(error)

    async def load(self, task_id: str) -> TaskRecord | None:
        if not self.hub.available:
            return None
        key = self._key("task", task_id)
        try:
            stored, cancelled = await self.hub.client.mget([key, self._key("taskcancel", task_id)])
        except Exception as error:
            self.hub.failed(error)
            return None
        payload = self.hub.signer.open(key, stored) if stored else None
        record = _record(payload, task_id)
        if record is not None and cancelled and not record.terminal:
            record.status, record.status_message = "cancelled", CANCELLED_MESSAGE
        return record

    async def claim(self, task_id: str) -> bool | None:
        """Whether this replica runs the task's wait now (it held the lease, or took a lapsed one); None if the
        task was cancelled meanwhile, on any replica."""
        if not self.hub.available:
            return True  # alone, as with polls: this replica's wait is the one that counts
        try:
            keys = [self._key("tasklease", task_id), self._key("taskcancel", task_id)]
            answer = int(await self.hub.call(_CLAIM, keys, [self.hub.replica_id, round(LEASE_S * 1000)]))
        except Exception as error:
            self.hub.failed(error)
            return True
        return None if answer < 0 else answer == 1

    async def cancel(self, task_id: str, left_s: float) -> None:
        """Mark the task cancelled for every replica: its holder stops its wait at its next renewal. The mark
        outlives any later store of the record by the holder, which could still say "working"."""
        if not self.hub.available:
            return
        try:
            await self.hub.client.set(self._key("taskcancel", task_id), "1", px=max(1, round(left_s * 1000)))
        except Exception as error:
            self.hub.failed(error)

    async def release(self, task_id: str) -> None:
        if not self.hub.available:
            return
        try:
            await self.hub.call(_RELEASE, [self._key("tasklease", task_id)], [self.hub.replica_id])
        except Exception as error:
            self.hub.failed(error)

    async def owned(self, owner: str) -> list[TaskRecord]:
        if not self.hub.available:
            return []
        try:
            ids: Any = await self.hub.client.smembers(self._key("taskowner", owner))
        except Exception as error:
            self.hub.failed(error)
            return []
        records = [await self.load(str(task_id)) for task_id in sorted(ids)]
        return [record for record in records if record is not None and record.owner == owner]


def _record(payload: dict[str, Any] | None, task_id: str) -> TaskRecord | None:
    if payload is None or not isinstance(payload.get("record"), str):
        return None
    try:
        data: Any = json.loads(payload["record"])
    except ValueError:
        return None
    record = TaskRecord.loads(cast(dict[str, Any], data)) if isinstance(data, dict) else None
    return record if record is not None and record.task_id == task_id else None
