"""The lifecycle statuses of a run (and of a result), as the API names them."""

PENDING, QUEUED, RUNNING = "pending", "queued", "running"
COMPLETED, ERROR, CANCELLED = "completed", "error", "cancelled"
KNOWN_STATUSES = (PENDING, QUEUED, RUNNING, COMPLETED, ERROR, CANCELLED)
TERMINAL_STATUSES = frozenset({COMPLETED, ERROR, CANCELLED})
