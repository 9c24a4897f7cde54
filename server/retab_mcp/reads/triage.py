"""Reading an experiment run for its triage, in two rounds of concurrent requests.

Round one reads the run, its results and its summary metrics at once; round two reads the per-field
scores of the worst documents. Only the run is required: if results or metrics cannot be read, the
report says so in `warnings` and keeps what it has, since a partial diagnosis beats none.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio

from ..api.client import RetabClient
from ..api.errors import RetabError
from ..api.models import Metrics, Result, Run
from ..views.metrics import lowest, metrics_warning, scored_items
from ..views.triage import FIELD_SOURCE_DOCUMENTS, RESULTS_SCANNED, Evidence
from .common import optional

T = TypeVar("T")


async def gather_evidence(client: RetabClient, run_id: str) -> Evidence:
    """Read everything the report needs; raises only if the run itself cannot be read."""
    warnings: list[str] = []
    run_box: list[Run] = []
    run_error: list[RetabError] = []
    results: list[list[Result]] = []
    summary: list[Metrics] = []

    async def read_run() -> None:
        try:
            run_box.append(await client.get_run(run_id))
        except RetabError as error:  # raised after the group, not wrapped in an exception group
            run_error.append(error)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(read_run)
        group.start_soon(_into, optional("results", _read_results(client, run_id), warnings), results)
        group.start_soon(_into, optional("metrics", client.get_metrics(run_id, "summary"), warnings), summary)
    if run_error:
        raise run_error[0]
    evidence = Evidence(run=run_box[0], warnings=warnings)
    if results:
        evidence.results = results[0]
        evidence.results_truncated = len(results[0]) >= RESULTS_SCANNED
    if summary:
        evidence.metrics = summary[0]
        if metrics_warning(summary[0]) is None:
            worst = lowest(scored_items(summary[0]), FIELD_SOURCE_DOCUMENTS)
            per_document: list[Metrics] = []
            async with anyio.create_task_group() as group:
                for item in worst:
                    request = client.get_metrics(run_id, "by_document", document_id=item.id)
                    group.start_soon(_into, optional(f"fields of {item.id}", request, warnings), per_document)
            evidence.document_metrics = per_document
    return evidence


async def _read_results(client: RetabClient, run_id: str) -> list[Result]:
    return (await client.list_results(run_id, limit=RESULTS_SCANNED, order="asc")).data


async def _into(request: Awaitable[T | None], into: list[T]) -> None:
    """Await an optional read; keep its answer, if any."""
    found = await request
    if found is not None:
        into.append(found)
