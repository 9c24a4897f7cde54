"""The three kinds of Retab runs, each described once: how to read it, when it has ended, how far it is.

- experiment runs (`exprun_...`): a block run n_consensus times over documents; progress in documents;
- workflow runs (`run_...`): documents through a whole workflow; progress in steps; a review gate
  (`awaiting_review`) stops a wait, since nothing moves until a person acts;
- eval runs (`wfevalrun_...`): evals replayed against their assertions; progress in evals finished.

The wait engine (watch/), coalescing, replicas' sharing and deadlines see a run only as a `Snapshot` of
its kind (base.py); what a model reads of each kind is in views/.
"""

from ..api.models import Progress
from .base import EVAL, EXPERIMENT, KINDS, WORKFLOW, KindName, RunKind, Snapshot
from .readers import kind_named, kind_of_id

__all__ = [
    "EVAL",
    "EXPERIMENT",
    "KINDS",
    "WORKFLOW",
    "KindName",
    "Progress",
    "RunKind",
    "Snapshot",
    "kind_named",
    "kind_of_id",
]
