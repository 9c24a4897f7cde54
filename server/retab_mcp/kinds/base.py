"""What the wait engine knows of a run of any kind (`Snapshot`), and what describes a kind (`RunKind`).
The kinds themselves, and how one is found for a run id, are readers.py's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..api.models import Progress

if TYPE_CHECKING:
    from ..api.client import RetabClient

KindName = Literal["experiment", "workflow", "eval"]


class Snapshot(Protocol):
    """A run as one poll read it, whatever its kind."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def finished(self) -> bool:
        """The run has ended: it will not change."""
        ...

    @property
    def stops_wait(self) -> bool:
        """A wait on the run ends here: it has ended, or nothing will move until a person acts."""
        ...

    @property
    def progress(self) -> Progress: ...

    @property
    def created_at(self) -> datetime | None: ...

    @property
    def started_at(self) -> datetime | None: ...

    def model_dump(self, *, mode: str = "python", by_alias: bool | None = None) -> dict[str, Any]: ...


# (client, run id, the snapshot read before or None, wall time now, whether the client may retry) -> a Snapshot
Reader = Callable[["RetabClient", str, Any, datetime, bool], Awaitable[Any]]


@dataclass(frozen=True)
class RunKind:
    name: KindName
    noun: str  # "experiment run"
    prefix: str  # as Retab issues the ids, e.g. "exprun_"
    read: Reader  # one read of a run
    parse: Callable[[Any], Any]  # a snapshot dumped to JSON (by another replica) back into one

    def __str__(self) -> str:
        return self.name


EXPERIMENT: KindName = "experiment"
WORKFLOW: KindName = "workflow"
EVAL: KindName = "eval"
KINDS: tuple[KindName, ...] = (EXPERIMENT, WORKFLOW, EVAL)
