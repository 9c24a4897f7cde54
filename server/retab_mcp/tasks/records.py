"""A task as this server keeps it (`TaskRecord`), and as each protocol era shows it.

One record serves both eras; `era` says which wire created it, and only that era's methods answer for it.
The two shapes differ in names and in what an error means:
- 2025-11-25 (`basic/utilities/tasks`): `ttl` and `pollInterval` in ms; a tool result with `isError` makes
  the task `failed`, and `tasks/result` returns that result;
- 2026-07-28 (`io.modelcontextprotocol/tasks`): `ttlMs` and `pollIntervalMs`; a tool result with `isError`
  is still `completed` (only a JSON-RPC error is `failed`), and `tasks/get` carries the result or error.
A record holds no secret: the arguments of a wait, the owner's keyed hash and the result as the caller saw it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

Status = Literal["working", "input_required", "completed", "failed", "cancelled"]
Era = Literal["2025", "2026"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
POLL_INTERVAL_MS = 2000  # as often as a young run is polled (watch/schedule.py): a task's news is never older
RELATED_TASK = "io.modelcontextprotocol/related-task"


@dataclass
class TaskRecord:
    task_id: str
    owner: str  # keyed hash of who created it (owners.py): another caller gets "not found"
    era: Era
    tool: str
    arguments: dict[str, Any]
    created_wall: float  # epoch seconds
    ttl_s: float
    updated_wall: float
    status: Status = "working"
    status_message: str | None = None
    result: dict[str, Any] | None = None  # the tool call's result, as that era's wire has it
    error: dict[str, Any] | None = None  # a JSON-RPC error object: {code, message, data?}
    progress_token: str | int | None = None  # 2025: the call's token, valid for the task's life

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def expires_wall(self) -> float:
        return self.created_wall + self.ttl_s

    def task_fields(self) -> dict[str, Any]:
        """The `Task` object of this record's era."""
        fields: dict[str, Any] = {"taskId": self.task_id, "status": self.status}
        if self.status_message:
            fields["statusMessage"] = self.status_message
        fields["createdAt"] = _iso(self.created_wall)
        fields["lastUpdatedAt"] = _iso(self.updated_wall)
        ttl_ms = round(self.ttl_s * 1000)
        if self.era == "2025":
            fields.update(ttl=ttl_ms, pollInterval=POLL_INTERVAL_MS)
        else:
            fields.update(ttlMs=ttl_ms, pollIntervalMs=POLL_INTERVAL_MS)
        return fields

    def detailed(self) -> dict[str, Any]:
        """2026: the task with what its status carries (the result once completed, the error once failed)."""
        fields = self.task_fields()
        if self.status == "completed" and self.result is not None:
            fields["result"] = self.result
        elif self.status == "failed" and self.error is not None:
            fields["error"] = self.error
        return fields

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, data: dict[str, Any]) -> TaskRecord | None:
        """A record from what another replica stored; None if it is not one."""
        try:
            record = cls(**data)
        except TypeError:
            return None
        if not isinstance(cast(object, record.task_id), str) or record.era not in ("2025", "2026"):
            return None
        if not isinstance(cast(object, record.arguments), dict):
            return None
        return record


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
