"""What an operator measures: Prometheus metrics for /metrics, and the Retab request ids of a tool call.

The metrics live in a registry of this server's own (not the library's global one), so /metrics shows
these and the process's, nothing a library registered by the way. Every label takes its values from a
closed set (tool names the server has, HTTP status codes, fixed outcomes): a caller's text never becomes
a label, so it can neither blow up the series nor carry a secret.
"""

from __future__ import annotations

from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

TOOL_CALLS = Counter(
    "retab_mcp_tool_calls",
    "Tool calls, by tool and outcome (ok, error, deadline, crash).",
    ["tool", "outcome"],
    registry=REGISTRY,
)
TOOL_SECONDS = Histogram(
    "retab_mcp_tool_call_seconds",
    "How long tool calls took, by tool.",
    ["tool"],
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
API_REQUESTS = Counter(
    "retab_mcp_api_requests",
    "Requests to the Retab API, by HTTP status (or 'unanswered').",
    ["status"],
    registry=REGISTRY,
)
ACTIVE_WAITS = Gauge("retab_mcp_active_waits", "Calls waiting on a run right now.", registry=REGISTRY)
POLLS_SAVED = Counter(
    "retab_mcp_polls_saved",
    "Polls no waiter had to make: one poll answered several waiters, or another replica's poll answered them.",
    registry=REGISTRY,
)
LEASE_CHANGES = Counter(
    "retab_mcp_lease_changes",
    "Times this replica took over the polling of a run (a lease it did not hold).",
    registry=REGISTRY,
)
REDIS_FALLBACKS = Counter(
    "retab_mcp_redis_fallbacks",
    "Times Redis could not be reached and this replica polled on its own.",
    registry=REGISTRY,
)

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
