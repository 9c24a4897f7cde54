"""One retry policy, for idempotent requests only.

Retried: what `errors.disposition` calls transient (408, 429, 5xx, connection errors and timeouts, a body
that cannot be read). Never retried: anything else, and any POST, since creating or cancelling twice is
not the same as once.

Delays grow exponentially with equal jitter: each between half and all of its exponential step. A
`Retry-After` header is obeyed when it asks for no more than `retry_after_cap_s`; when it asks for more, the
policy stops at once so the caller can say when to come back instead of blocking. Retrying also stops when
the time spent sleeping would pass `budget_s`. `sleep` and `jitter` are injectable so tests never wait.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import anyio

from ..base.config import Settings
from .errors import Disposition, RateLimitError, RetabError, disposition


def is_retryable(error: RetabError) -> bool:
    return disposition(error) is Disposition.TRANSIENT


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    retry_after_cap_s: float = 20.0
    budget_s: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def delay_before_retry(self, error: RetabError, attempt: int, slept_s: float) -> float | None:
        """Seconds to sleep before retry number `attempt` (1-based), or None to give up."""
        if attempt > self.max_retries or not is_retryable(error):
            return None
        retry_after = error.retry_after_s if isinstance(error, RateLimitError) else None
        if retry_after is not None:
            if retry_after > self.retry_after_cap_s:
                return None
            delay = retry_after
        else:
            ceiling = min(self.max_delay_s, self.initial_delay_s * 2 ** (attempt - 1))
            delay = ceiling * (0.5 + 0.5 * self.jitter())
        if slept_s + delay > self.budget_s:
            return None
        return delay

    @classmethod
    def from_settings(
        cls, settings: Settings, *, sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    ) -> RetryPolicy:
        return cls(max_retries=settings.max_retries, budget_s=settings.retry_budget_s, sleep=sleep)


NO_RETRY = RetryPolicy(max_retries=0)
