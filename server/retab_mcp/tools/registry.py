"""Each tool declared once: `@tool(...)` on its function records its name, title, description, annotations,
whether it changes anything (writes), whether the run view shows its results, and its row of the README's
tools table. The server registers what `catalog()` returns (through prebuilt.py, which keeps their
schemas), with the names of the tools that write for the write-scope checks; the README's table and the
tests read it too.

Adding a tool: one function in one family module, decorated here, with its test and the listing snapshot.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
STARTS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)

# The family modules, in the order their tools are listed (writes come after every read tool).
FAMILIES = ("runs", "waiting", "lists", "metrics", "triage", "compare", "experiments", "any_run", "evals", "app_only")

View = Literal["none", "shown", "app_only"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    annotations: ToolAnnotations
    writes: bool
    view: View  # "shown": the run view renders its results; "app_only": only the view calls it
    summary: str  # the README's "what the agent gets"
    example: str  # the README's example call


_declared: list[ToolSpec] = []


def tool(
    name: str,
    *,
    title: str,
    description: str,
    summary: str,
    example: str,
    annotations: ToolAnnotations = READ_ONLY,
    writes: bool = False,
    view: View = "none",
) -> Callable[[F], F]:
    def declare(fn: F) -> F:
        _declared.append(ToolSpec(fn, name, title, description, annotations, writes, view, summary, example))
        return fn

    return declare


def catalog() -> tuple[ToolSpec, ...]:
    """Every tool, in listing order: the read tools family by family, then the ones that write."""
    for family in FAMILIES:
        importlib.import_module(f"{__package__}.{family}")
    order = {family: i for i, family in enumerate(FAMILIES)}

    def place(spec: ToolSpec) -> tuple[bool, int]:
        return spec.writes, order[spec.fn.__module__.rsplit(".", 1)[-1]]

    return tuple(sorted(_declared, key=place))  # stable: within a family, as declared
