"""Controls that shape the experiment world, for tests, benchmarks and the demo.

`SimulatedRetab` takes them in as a base class: `sim.add_run(...)` (a run of a chosen shape that starts
now), `sim.edit_block(...)` (a new block configuration, which moves the agreement of chosen documents and
fields in the runs started after it: the consensus model of scenario.py), `sim.add_consensus_run(...)`,
`sim.add_experiment(...)`, `sim.add_worst_case_run(...)`, and `sim.run_ids`, the seeded runs by role.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..base.clock import Clock
from .scenario import BlockEdit, Outcome, SimRun, World, make_experiment, opaque_id, start_consensus_run

DEMO_LOOP_EXPERIMENT = "invoices-tuned"  # the demo's experiment for the loop: start, wait, compare
RUN_ROLES = ("older", "latest", "failed", "cancelled", "stale", "young", "long")


class ExperimentControls:
    # Provided by SimulatedRetab.
    clock: Clock
    world: World
    added_runs: list[str]
    created_run_s: float

    @property
    def run_ids(self) -> dict[str, str]:
        """Seeded runs by their role in the scenario ('latest', 'failed', 'young', ...)."""
        return {role: opaque_id("exprun", role) for role in RUN_ROLES}

    def add_run(
        self,
        *,
        duration_s: float = 40.0,
        queue_s: float = 2.0,
        documents: int | None = None,
        outcome: Outcome = "completed",
        end_fraction: float = 1.0,
        score: float | None = 0.9,
        run_id: str | None = None,
        document_errors: Mapping[int, tuple[str, str | None]] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        experiment = self.world.experiments[0]
        if documents is not None:
            experiment = make_experiment(
                f"custom-{len(self.world.runs)}", documents=documents, epoch=self.world.wall(self.clock.now())
            )
            self.world.experiments.append(experiment)
        run = SimRun(
            id=run_id or opaque_id("exprun", f"added-{len(self.world.runs)}"),
            experiment=experiment,
            created_t=self.clock.now(),
            queue_s=queue_s,
            duration_s=duration_s,
            outcome=outcome,
            end_fraction=end_fraction,
            final_score=score if outcome == "completed" else None,
            error_message="Block 'Extract invoice' failed",
            error_code="MODEL_TIMEOUT",
            stack_trace="Traceback (most recent call last):\n  ...\nTimeoutError: model call timed out",
            cancel_reason="Cancelled by API request" if outcome == "cancelled" else None,
            document_errors=dict(document_errors or {}),
            parent_run_id=parent_run_id,
        )
        self.world.runs.append(run)
        self.added_runs.append(run.id)
        return run.id

    def edit_block(
        self,
        experiment_id: str | None = None,
        *,
        everywhere: float = 0.0,
        documents: Mapping[int, float] | None = None,
        fields: Mapping[str, float] | None = None,
    ) -> str:
        """A new block configuration of the experiment (default: the first): runs started from now on
        score every document `everywhere` higher (negative: lower), the documents at the given indexes by
        their own amount instead, and the named fields by an extra amount. Returns the experiment id."""
        exp = self.world.experiment(experiment_id) if experiment_id else self.world.experiments[0]
        assert exp is not None
        ids = [d for d, _ in exp.documents]
        by_id = {ids[i]: delta for i, delta in (documents or {}).items()}
        exp.edits.append(BlockEdit(everywhere=everywhere, documents=by_id, fields=dict(fields or {})))
        exp.config = len(exp.edits)
        return exp.id

    def add_consensus_run(
        self, experiment_id: str | None = None, *, duration_s: float = 10.0, finished: bool = True
    ) -> str:
        """A run of the experiment's current block configuration, scored by the consensus model: completed
        already, or (`finished=False`) starting now and lasting `duration_s`."""
        exp = self.world.experiment(experiment_id) if experiment_id else self.world.experiments[0]
        assert exp is not None
        run = start_consensus_run(self.world, exp, now=self.clock.now(), duration_s=duration_s)
        self.added_runs.append(run.id)
        if finished:
            run.created_t -= run.queue_s + duration_s + 1.0
        return run.id

    def add_experiment(
        self, name: str, *, documents: int = 12, n_consensus: int = 5, workflow_id: str | None = None
    ) -> str:
        exp = make_experiment(
            name,
            documents=documents,
            n_consensus=n_consensus,
            workflow_id=workflow_id,
            epoch=self.world.wall(self.clock.now()),
        )
        self.world.experiments.append(exp)
        return exp.id

    def add_worst_case_run(self, *, documents: int = 100, parent_run_id: str | None = None) -> str:
        """A run built to make results as large as they can get: it fails at 90 % with a 10 KB message and a
        1 MB stack trace, after every other document failed with its own 3 KB message, and every file has a
        300-character name. It starts now and ends 10 s later."""
        errors = {i: (f"{'x' * 3000} distinct failure {i}", "E" * 300) for i in range(0, documents, 2)}
        run_id = self.add_run(
            documents=documents,
            duration_s=10,
            queue_s=1,
            outcome="error",
            end_fraction=0.9,
            document_errors=errors,
            parent_run_id=parent_run_id,
        )
        run = self.world.run(run_id)
        assert run is not None
        named = [(d, "long-name-" * 30 + f"{i}.pdf") for i, (d, _) in enumerate(run.experiment.documents)]
        run.experiment.documents = named
        run.error_message = "m" * 10_000
        run.stack_trace = "\n".join("y" * 500 for _ in range(2000))
        return run_id

    def _seed_the_loop(self) -> None:
        """For the walkthrough: an experiment whose block was edited since its last run (so its metrics are
        stale), the edit making documents agree more; a run started now is short."""
        self.created_run_s = 6.0
        experiment_id = self.add_experiment(DEMO_LOOP_EXPERIMENT, documents=12)
        experiment = self.world.experiment(experiment_id)
        assert experiment is not None
        # Part of the scenario, not added: `stats()["added_runs"]` names only the runs added or created
        # since (benchmarks serving the demo world find theirs there).
        before = start_consensus_run(self.world, experiment, now=self.clock.now(), duration_s=240)
        before.created_t -= before.queue_s + 240 + 1.0 + 3_600  # it ended an hour ago
        self.edit_block(experiment_id, everywhere=0.05, fields={"invoice.total": 0.06})
