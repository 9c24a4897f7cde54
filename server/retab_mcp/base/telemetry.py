"""What an operator measures: Prometheus metrics for /metrics, and the Retab request ids of a tool call.

The metrics live in a registry of this server's own (not the library's global one), so /metrics shows
these and the process's, nothing a library registered by the way. Every label takes its values from a
closed set (tool names the server has, HTTP status codes, fixed outcomes): a caller's text never becomes
a label, so it can neither blow up the series nor carry a secret.

Only a server that has a /metrics to show them counts them: the HTTP transport calls `enable()`. Until
then every metric is a no-op and prometheus-client is not even imported (some 35 ms a start, which stdio
servers and the command line would pay for nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any


class Metric:
    """One metric, made by `make` (given the registry) at `enable()`; until then it takes every update and
    keeps none."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self._make = make
        self._real: Any = None

    def start(self, registry: Any) -> None:
        self._real = self._make(registry)

    def labels(self, *values: str) -> Any:
        return self._real.labels(*values) if self._real is not None else self

    def inc(self, amount: float = 1) -> None:
        if self._real is not None:
            self._real.inc(amount)

    def dec(self, amount: float = 1) -> None:
        if self._real is not None:
            self._real.dec(amount)

    def observe(self, value: float) -> None:
        if self._real is not None:
            self._real.observe(value)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Metric:
    def make(registry: Any) -> Any:
        from prometheus_client import Counter

        return Counter(name, doc, list(labels), registry=registry)

    return Metric(make)


def _gauge(name: str, doc: str) -> Metric:
    def make(registry: Any) -> Any:
        from prometheus_client import Gauge

        return Gauge(name, doc, registry=registry)

    return Metric(make)


def _histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Metric:
    def make(registry: Any) -> Any:
        from prometheus_client import Histogram

        return Histogram(name, doc, list(labels), registry=registry, buckets=buckets)

    return Metric(make)


TOOL_CALLS = _counter(
    "retab_mcp_tool_calls", "Tool calls, by tool and outcome (ok, error, deadline, crash).", ("tool", "outcome")
)
TOOL_SECONDS = _histogram(
    "retab_mcp_tool_call_seconds",
    "How long tool calls took, by tool.",
    ("tool",),
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
API_REQUESTS = _counter(
    "retab_mcp_api_requests", "Requests to the Retab API, by HTTP status (or 'unanswered').", ("status",)
)
ACTIVE_WAITS = _gauge("retab_mcp_active_waits", "Calls waiting on a run right now.")
POLLS_SAVED = _counter(
    "retab_mcp_polls_saved",
    "Polls no waiter had to make: one poll answered several waiters, or another replica's poll answered them.",
)
LEASE_CHANGES = _counter(
    "retab_mcp_lease_changes", "Times this replica took over the polling of a run (a lease it did not hold)."
)
REDIS_FALLBACKS = _counter(
    "retab_mcp_redis_fallbacks", "Times Redis could not be reached and this replica polled on its own."
)
_METRICS = (TOOL_CALLS, TOOL_SECONDS, API_REQUESTS, ACTIVE_WAITS, POLLS_SAVED, LEASE_CHANGES, REDIS_FALLBACKS)
_registry: list[Any] = []  # the one registry, once enabled


def enable() -> Any:
    """Count from now on; returns the registry /metrics shows. Later calls return the same one."""
    if not _registry:
        from prometheus_client import CollectorRegistry
        from prometheus_client.process_collector import ProcessCollector

        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        for metric in _METRICS:
            metric.start(registry)
        _registry.append(registry)
    return _registry[0]


# The x-request-id of each API answer within the current tool call, for its log line.
_request_ids: ContextVar[list[str] | None] = ContextVar("retab_request_ids", default=None)


def api_answered(status: int | None, request_id: str | None) -> None:
    API_REQUESTS.labels(str(status) if status is not None else "unanswered").inc()
    ids = _request_ids.get()
    if ids is not None and request_id:
        ids.append(request_id)


def collect_request_ids() -> list[str]:
    """Start collecting the request ids of this call (and of what it starts); returns the list they join."""
    ids: list[str] = []
    _request_ids.set(ids)
    return ids
