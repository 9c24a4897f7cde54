"""What the endpoint modules read of the simulated API: its clock, its worlds and its controls' settings.

A protocol, so that experiments.py, workflow_runs.py and evals.py need not import the app that routes to
them (app.py builds them with itself).
"""

from __future__ import annotations

from typing import Protocol

from ..base.clock import Clock
from .eval_world import EvalWorld
from .scenario import World
from .workflow_world import WorkflowWorld


class SimState(Protocol):
    clock: Clock
    world: World  # experiments and their runs
    workflow_world: WorkflowWorld
    eval_world: EvalWorld
    owners: dict[str, str]  # run id -> the key of the organisation that owns it
    created_run_s: float  # how long a run started by a POST lasts
    added_runs: list[str]
