"""What the wait engine knows of a run of any kind (`Snapshot`), and what describes a kind (`RunKind`).

A kind is found from the run id's prefix as Retab issues it (`exprun_`, `run_`, `wfevalrun_`), or named by
the caller. An id whose prefix says nothing is read as an experiment run (the kind this server served
first); if it is not one, the answer is one 404 that says to pass the kind. Nothing is ever guessed
silently: every result names the kind it read.
"""

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


def _experiment() -> RunKind:
    from .readers import EXPERIMENT_KIND

    return EXPERIMENT_KIND


def kind_named(name: str) -> RunKind:
    from .readers import KINDS_BY_NAME

    return KINDS_BY_NAME[name]


def kind_of_id(run_id: str, named: str | None = None) -> RunKind:
    """The kind the caller named; else the one the id's prefix says; else experiment."""
    from .readers import KINDS_BY_NAME

    if named is not None:
        return KINDS_BY_NAME[named]
    # Longest prefix first: "wfevalrun_" before "run_".
    for kind in sorted(KINDS_BY_NAME.values(), key=lambda k: -len(k.prefix)):
        if run_id.startswith(kind.prefix):
            return kind
    return _experiment()


EXPERIMENT: KindName = "experiment"
WORKFLOW: KindName = "workflow"
EVAL: KindName = "eval"
KINDS: tuple[KindName, ...] = (EXPERIMENT, WORKFLOW, EVAL)
