"""Starting a paid run: at most one start in flight per (key partition, subject), here and across replicas.

Retab takes no idempotency key: a start is a POST that creates a run billed to the user. Two callers that
both list "nothing going" and both post make two runs; a caller whose answer is lost must find its run
without claiming someone else's. So a start is a critical section, `StartGate.hold(subject)`, where the
subject names what is started (an experiment; a workflow's evals and their scope):
- in this process, one anyio lock per subject;
- across replicas (Redis configured), redis-py's `Lock` on `start-lock:<partition>:<subject>`, with a lease
  longer than any tool call may last (`LEASE_S`, renewed by nothing: the call deadline ends the section
  first). Just before the POST the lease is extended, which fails if another replica holds the lock now
  (this one stalled past its lease): that is the fencing check, and a start that fails it sends nothing.
  With Redis configured but not answering, nothing starts: a duplicate run costs the user money, a refused
  start only a retry (`StartRefusedError`).

Under the lock, the subject's `StartRecord` (in this process, and in Redis, signed, for the other replicas)
says what the starts of this server did: the runs they made, newest first, so that the next caller sees a
run just started even before Retab lists it; and a POST whose outcome is unknown (`pending`), so that the
next caller finds out what became of it before sending another.

`start_once` is the whole procedure, for any kind of run: list, maybe return the run already going, post
once, and when the answer is lost, reconcile. Reconciliation claims a run only when it can prove it is
this start's: listed now and not before the POST, created no earlier than the POST was sent (allowing
`CLOCK_SKEW_S`), and made by no other start of ours. One such run is ours; none means nothing was seen
(`StartUnknownError`: the caller is told how to check before trying again, and the next start here checks
first); more than one (someone started one in Retab's dashboard at the same moment) is `ambiguous`: all
are named and none is claimed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import anyio

from ..api.errors import RetabError, outcome_unknown
from ..base.clock import Clock
from .sharing import PREFIX, RedisHub

logger = logging.getLogger(__name__)

LEASE_S = 120.0  # longer than any call (RETAB_MCP_CALL_DEADLINE_S, 45 s by default): the deadline ends a section first
CLOCK_SKEW_S = 120.0  # how far Retab's clock and ours may disagree when a run's created_at is read
RECORD_TTL_S = 3_600  # a subject's record in Redis outlives any start worth reconciling
STARTED_KEPT = 20  # runs of a subject started here, remembered, newest first
RECONCILE_READS = 3  # listings after an answer was lost: a run just created may take a moment to be listed
RECONCILE_PAUSE_S = 1.0
SUBJECTS_KEPT = 10_000  # records kept in this process, most recent first


class StartRefusedError(RetabError):
    """Nothing was started because this server could not make sure it would start only one run."""


class StartUnknownError(RetabError):
    """The start was sent, its answer was lost, and no run that could be its own has been listed since."""

    def __init__(self, subject: str, cause: RetabError) -> None:
        self.subject = subject
        self.cause = cause
        super().__init__(f"the start of {subject} may or may not have reached Retab ({cause})")


class Lifecycled(Protocol):
    @property
    def is_terminal(self) -> bool: ...


class Timed(Protocol):
    @property
    def created_at(self) -> datetime | None: ...


class StartableRun(Protocol):
    """What the procedure needs of a run, whatever its kind."""

    @property
    def id(self) -> str: ...

    @property
    def lifecycle(self) -> Lifecycled: ...

    @property
    def timing(self) -> Timed: ...


RunT = TypeVar("RunT", bound=StartableRun)
Kind = Literal["started", "found_after_lost_answer", "already_running", "ambiguous"]


@dataclass(frozen=True)
class Started(Generic[RunT]):
    """What a start came to: the run started, found or already going; or, when ambiguous, the runs that
    appeared (none of them claimed)."""

    kind: Kind
    run: RunT | None
    appeared: list[RunT] = field(default_factory=list)  # pyright: ignore[reportUnknownVariableType]


@dataclass
class PendingStart:
    """A POST sent whose outcome is not known: when, and what was listed just before."""

    sent_wall_t: float  # epoch seconds, by this server's clock
    listed_before: list[str]


@dataclass
class StartRecord:
    started: list[str] = field(default_factory=list[str])  # run ids, newest first
    pending: PendingStart | None = None

    def add(self, run_id: str) -> None:
        self.started = [run_id, *(r for r in self.started if r != run_id)][:STARTED_KEPT]

    def to_json(self) -> dict[str, Any]:
        pending = None
        if self.pending is not None:
            pending = {"sent_wall_t": self.pending.sent_wall_t, "listed_before": self.pending.listed_before}
        return {"started": self.started, "pending": pending}

    @classmethod
    def from_json(cls, data: Any) -> StartRecord:
        """A record read back; anything that does not fit is an empty record."""
        try:
            raw = cast(dict[str, Any], data)
            started = [str(r) for r in cast(list[Any], raw.get("started") or [])]
            pending_raw = cast(dict[str, Any] | None, raw.get("pending"))
            pending = None
            if pending_raw is not None:
                before = [str(r) for r in cast(list[Any], pending_raw["listed_before"])]
                pending = PendingStart(float(pending_raw["sent_wall_t"]), before)
        except (AttributeError, KeyError, TypeError, ValueError):
            return cls()
        return cls(started[:STARTED_KEPT], pending)


class Section:
    """Inside `StartGate.hold`: the subject's record, and the fencing check before anything is sent."""

    def __init__(self, gate: StartGate, subject: str, record: StartRecord, lock: Any) -> None:
        self._gate = gate
        self.subject = subject
        self.record = record
        self._lock = lock  # redis-py's Lock with replicas, else None

    async def sending(self, pending: PendingStart) -> None:
        """Say that a POST is about to go: check the lock is still ours (else nothing may be sent) and
        keep the pending start in the record, so that whoever holds the lock next reconciles first."""
        if self._lock is not None:
            from redis.exceptions import LockError

            try:
                await self._lock.extend(LEASE_S, replace_ttl=True)
            except LockError:
                raise StartRefusedError(
                    f"this server lost its hold on starting {self.subject} (it was too slow, and another replica "
                    "may be starting it now), so nothing was sent"
                ) from None
            except Exception as error:  # Redis went away under the lock
                raise self._gate.redis_refusal(error) from None
        self.record.pending = pending
        await self.save()

    async def save(self) -> None:
        await self._gate.save(self.subject, self.record)


class StartGate:
    """The starts of one key partition. `hub` is the link to Redis when replicas share it."""

    def __init__(self, *, partition: str, hub: RedisHub | None = None) -> None:
        self._partition = partition
        self._hub = hub
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}  # subject -> (lock, callers holding or waiting)
        self._records: dict[str, StartRecord] = {}

    @asynccontextmanager
    async def hold(self, subject: str, *, wait_s: float) -> AsyncGenerator[Section]:
        """The critical section for starting `subject`; waits up to `wait_s` for a start in flight to end."""
        lock, waiting = self._locks.get(subject, (anyio.Lock(), 0))
        self._locks[subject] = (lock, waiting + 1)
        try:
            with anyio.move_on_after(wait_s) as waited:
                await lock.acquire()
            if waited.cancelled_caught:
                raise StartRefusedError(f"another start of {subject} from this server is still in flight") from None
            try:
                async with self._across_replicas(subject, wait_s) as shared_lock:
                    yield Section(self, subject, await self._load(subject), shared_lock)
            finally:
                lock.release()
        finally:
            lock_now, waiting_now = self._locks[subject]
            if waiting_now <= 1:
                del self._locks[subject]
            else:
                self._locks[subject] = (lock_now, waiting_now - 1)

    @asynccontextmanager
    async def _across_replicas(self, subject: str, wait_s: float) -> AsyncGenerator[Any]:
        if self._hub is None:
            yield None
            return
        from redis.asyncio.lock import Lock

        lock = Lock(
            self._hub.client,
            self._key("start-lock", subject),
            timeout=LEASE_S,
            sleep=0.05,
            blocking_timeout=wait_s,
            raise_on_release_error=False,
        )
        try:
            acquired = await lock.acquire()
        except Exception as error:  # Redis down or slow: refuse rather than risk a second run
            raise self.redis_refusal(error) from None
        if not acquired:
            raise StartRefusedError(f"another replica is still starting {subject}")
        try:
            yield lock
        finally:
            try:
                await lock.release()
            except Exception as error:  # the lease ends by itself; the record already says what happened
                logger.warning("Could not release the start lock of %s (%s)", subject, type(error).__name__)

    def redis_refusal(self, error: BaseException) -> StartRefusedError:
        assert self._hub is not None
        return StartRefusedError(
            f"Redis at {self._hub.where} does not answer ({type(error).__name__}), and without it this replica "
            "cannot make sure another one is not starting the same run at this moment"
        )

    def _key(self, kind: str, subject: str) -> str:
        return f"{PREFIX}:{kind}:{self._partition}:{subject}"

    async def _load(self, subject: str) -> StartRecord:
        if self._hub is None:
            return self._records.get(subject) or StartRecord()
        try:
            stored = await self._hub.client.get(self._key("start", subject))
        except Exception as error:
            raise self.redis_refusal(error) from None
        payload = self._hub.signer.open(self._key("start", subject), stored) if stored else None
        return StartRecord.from_json(payload) if payload is not None else StartRecord()

    async def save(self, subject: str, record: StartRecord) -> None:
        self._records.pop(subject, None)
        self._records[subject] = record
        while len(self._records) > SUBJECTS_KEPT:
            del self._records[next(iter(self._records))]
        if self._hub is None:
            return
        sealed = self._hub.signer.seal(self._key("start", subject), record.to_json())
        try:
            await self._hub.client.set(self._key("start", subject), sealed, ex=RECORD_TTL_S)
        except Exception as error:
            raise self.redis_refusal(error) from None


@dataclass(frozen=True)
class StartCalls(Generic[RunT]):
    """How to read and start runs of one subject: the API calls the procedure makes."""

    list_recent: Callable[[], Awaitable[Sequence[RunT]]]  # the subject's latest runs, newest first
    get: Callable[[str], Awaitable[RunT]]
    create: Callable[[], Awaitable[RunT]]  # the POST: sent once, never retried


async def start_once(
    section: Section, calls: StartCalls[RunT], *, clock: Clock, allow_concurrent: bool
) -> Started[RunT]:
    """Start a run of `section.subject` unless one is going (or `allow_concurrent`), inside the section.

    Raises what the API answered when it refused (nothing was started), StartUnknownError when the answer
    was lost and no run of ours was listed since, StartRefusedError when the lock was lost before sending.
    """
    record = section.record
    listed = list(await calls.list_recent())
    if record.pending is not None:
        # An earlier start's answer was lost and nothing was seen then: look again before sending another.
        appeared = _appeared(listed, record.pending, record)
        record.pending = None
        if len(appeared) > 1:
            await section.save()
            return Started("ambiguous", None, appeared)
        if appeared:
            record.add(appeared[0].id)
        await section.save()
    if not allow_concurrent:
        going = await _going(listed, record, calls)
        if going is not None:
            return Started("already_running", going)
    pending = PendingStart(clock.wall_at(clock.now()).timestamp(), [run.id for run in listed])
    await section.sending(pending)
    try:
        run = await calls.create()
    except RetabError as error:
        if not outcome_unknown(error):
            record.pending = None  # a refusal is an answer: nothing was started
            await section.save()
            raise
        return await _reconcile(section, calls, clock, pending, error)
    record.pending = None
    record.add(run.id)
    await section.save()
    return Started("started", run)


async def _going(listed: list[RunT], record: StartRecord, calls: StartCalls[RunT]) -> RunT | None:
    """The newest run still going: one listed, or one started here that Retab does not list yet."""
    going = next((run for run in listed if not run.lifecycle.is_terminal), None)
    if going is not None:
        return going
    shown = {run.id for run in listed}
    for run_id in record.started[:3]:  # only the latest few can still be missing from a listing
        if run_id in shown:
            continue
        try:
            run = await calls.get(run_id)
        except RetabError:
            continue
        if not run.lifecycle.is_terminal:
            return run
    return None


async def _reconcile(
    section: Section, calls: StartCalls[RunT], clock: Clock, pending: PendingStart, error: RetabError
) -> Started[RunT]:
    record = section.record
    for attempt in range(RECONCILE_READS):
        if attempt:
            await clock.sleep(RECONCILE_PAUSE_S)
        try:
            listed = list(await calls.list_recent())
        except RetabError:
            continue  # a failed read is "not seen yet"
        appeared = _appeared(listed, pending, record)
        if len(appeared) > 1:
            record.pending = None
            await section.save()
            return Started("ambiguous", None, appeared)
        if appeared:
            record.pending = None
            record.add(appeared[0].id)
            await section.save()
            return Started("found_after_lost_answer", appeared[0])
    # Still pending in the record: the next start of this subject looks again before sending.
    raise StartUnknownError(section.subject, error)


def _appeared(listed: list[RunT], pending: PendingStart, record: StartRecord) -> list[RunT]:
    """Runs that can be the pending start's: not listed before it, not another start of ours, and created no
    earlier than it was sent (by Retab's clock, allowing for skew). A run without a creation time counts."""
    before, ours = set(pending.listed_before), set(record.started)
    earliest = pending.sent_wall_t - CLOCK_SKEW_S
    return [
        run
        for run in listed
        if run.id not in before
        and run.id not in ours
        and (run.timing.created_at is None or run.timing.created_at.timestamp() >= earliest)
    ]
