"""The engine: jobs in, one lane per account and target region, results out.

One anyio task group. The dispatcher reads jobs (a stream: the manifest is never held in
memory) and hands each to its lane (:attr:`CopyJob.lane`: the target region, in the job's
account, since Lightsail's limits belong to the account that calls) through a bounded
memory stream, so a slow lane holds the reader back instead of piling jobs up. A lane
first reaches its account (an assumed role, once per account; an account that cannot be
reached fails its jobs, the others go on) and lists the snapshots that already exist in its
region (one paginated listing, not one call per job), then runs its jobs under the lane's
rate limit and an in-flight cap that follows the rate (the limiter's
:meth:`~batchcopy.limits.RateLimiter.in_flight`, never above ``max_in_flight``). A lane
that is done lets its listing go, so a run over hundreds of accounts stays small.

Lightsail's CopySnapshot has no idempotency token, so the target name is the key: after an
ambiguous failure (5xx, timeout, dropped connection) the next step is to look the target
up, and only an absent target is sent again. :meth:`Engine._judge` decides what a target
that exists means: not provably a copy of this job's source snapshot (see
:mod:`batchcopy.provenance`), a conflict; in ``error`` state, a failure; possibly made by
this job (after an ambiguous attempt, or sent by an interrupted run), ours (``started``,
``reconciled``); still being copied, ``started``; otherwise it was there before: ``skipped``.

Expected failures become a failed :class:`JobResult`; anything else is a bug and cancels
the task group. asyncio is the backend (aiobotocore needs it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchcopy.errors import (
    LightsailError,
    OperationFailedError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from batchcopy.jobs import (
    INTERRUPTED_CODE,
    INTERRUPTED_MESSAGE,
    AutoSnapshots,
    CopyJob,
    JobResult,
    Sent,
    SnapshotInfo,
    Status,
)
from batchcopy.journal import Journal, crash_point
from batchcopy.limits import Clock, RateLimiter, Sleep
from batchcopy.memo import Memo
from batchcopy.provenance import (
    RUN_TAG,
    SOURCE_TAG,
    Source,
    conflict,
    is_reserved,
    pin,
    source_label,
)
from batchcopy.ratestate import LearnedRate
from batchcopy.retry import Guard, guarded
from batchcopy.settings import MIN_RATE, OnExists, Settings
from batchcopy.streams import each, put

__all__ = ["Engine", "RegionCounters", "SnapshotAPI"]

log = logging.getLogger(__name__)

INTERRUPTED = LightsailError(INTERRUPTED_CODE, INTERRUPTED_MESSAGE)
NOT_TAGGED = f"{INTERRUPTED_CODE}: the run stopped before the copy was tagged"

T = TypeVar("T")


class SnapshotAPI(Protocol):
    """What the engine needs of Lightsail in one account; :class:`batchcopy.lightsail.
    LightsailClients` is one. :meth:`account` gives another account's (raising a
    :class:`LightsailError` when it cannot be reached)."""

    async def account(self, account: str) -> SnapshotAPI: ...

    async def copy_snapshot(self, job: CopyJob) -> str: ...

    async def find_snapshot(self, region: str, name: str) -> SnapshotInfo | None: ...

    def list_snapshots(self, region: str, guard: Guard) -> AsyncIterator[SnapshotInfo]: ...

    async def auto_snapshots(self, region: str, resource: str) -> AutoSnapshots | None: ...

    async def get_operation(self, region: str, operation_id: str) -> dict[str, str]: ...

    async def tag_resource(self, region: str, name: str, tags: dict[str, str]) -> None: ...


_READY = frozenset({"available", "completed"})

# A copy found after an ambiguous attempt is ours only if it is not older than the attempt,
# allowing this much difference between our clock and the service's (NTP keeps clocks far
# closer; five minutes covers a machine that lost its time sync for a while).
CLOCK_SKEW = 300.0

# A lane whose limit an earlier run found starts this far below it: under it, even if the
# limit fell a little since, and close enough to reach it within a second or two.
KNOWN_START = 0.95

# Jobs read ahead of the lanes, in all (each lane's queue is unbounded, the whole is not):
# a lane that goes slowly (a throttled account, one whose role cannot be assumed yet)
# holds up the reading of every other lane's jobs only once this many wait.
QUEUED = 4096


@dataclass(slots=True)
class _Lane:
    region: str
    api: SnapshotAPI  # the lane's account's
    limiter: RateLimiter
    slots: anyio.CapacityLimiter  # borrowed on behalf of each job, so it can be resized
    ceiling: int  # max_in_flight
    existing: dict[str, SnapshotInfo] = field(default_factory=dict)
    # Counted as they happen, for live progress (a job's own counts come with its result).
    sent: int = 0
    accepted: int = 0
    throttled: int = 0

    def fit(self, share: int) -> None:
        """Resize the in-flight cap to what the current rate and latency need, within the
        lane's ``share`` of its region's jobs open at once."""
        self.slots.total_tokens = min(self.limiter.in_flight(self.ceiling), share)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionCounters:
    """What a lane's copies (a target region's, in an account) have come to so far, counted
    as it happens.

    ``sent``: CopySnapshot requests sent (retries included); ``accepted``: copies Lightsail
    accepted (or that were found made after a lost answer); ``throttled``: requests turned
    away by throttling; ``copying``: accepted copies being followed to their end (``wait``).
    """

    sent: int = 0
    accepted: int = 0
    throttled: int = 0
    copying: int = 0


@dataclass(slots=True)
class _Tries:
    attempts: int = 0
    throttles: int = 0
    ambiguous: bool = False  # some request may have landed: look the target up first
    unresolved: bool = False  # ... and no look-up since has found it absent


class Engine:
    """Runs copy jobs against a :class:`SnapshotAPI` and sends one result per job.

    ``clock`` and ``sleep`` drive rate limits and retries; ``wall`` stamps results. With a
    ``journal``, each job's intent is on disk before its first CopySnapshot. ``intended``
    names targets an interrupted earlier run may have sent. Once ``stop`` is set nothing
    new is sent. ``remembered``: what earlier runs learned, by lane (see
    :mod:`batchcopy.ratestate`); a lane with an entry starts from it, unless the settings
    chose the rate (``rate_chosen``) or fix it.
    """

    def __init__(
        self,
        api: SnapshotAPI,
        settings: Settings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        wall: Clock = time.time,
        journal: Journal | None = None,
        intended: Container[str] = frozenset(),
        stop: anyio.Event | None = None,
        remembered: Mapping[str, LearnedRate] | None = None,
    ) -> None:
        self._api = api
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._journal = journal
        self._intended = intended
        self._stop = stop or anyio.Event()
        self._lookups = Memo()  # source snapshots and automatic snapshots, read once
        # Targets sent in this run whose result is not out yet, with the requests sent for
        # each and the date a use_latest job was sent for: if the run is cut short, they
        # are reported as interrupted, not as never started.
        self.unsettled: dict[str, Sent] = {}
        # Results handed on but not yet reported (the caller pops them once reported): a
        # run cut short still knows what they were.
        self.handed_on: dict[str, JobResult] = {}
        self._lanes: dict[str, _Lane] = {}
        # Writes in flight per target region, whatever their account (--max-in-flight; see
        # _room): many accounts' lanes of one region would otherwise each hold requests
        # open from the start (hundreds at once), for nothing a single account's run does
        # not get with a few. Each lane's jobs open at once are within a share of it.
        self._region_slots: dict[str, anyio.CapacityLimiter] = {}
        self._running: Counter[str] = Counter()  # lanes sending, per target region
        self._queued = anyio.Semaphore(QUEUED)  # taken per job read, given back as it starts
        self._remembered = remembered or {}
        self._starts: dict[str, tuple[float, str]] = {}

    @property
    def throttled_by_action(self) -> dict[str, int]:
        """Requests the service throttled, by action, when the API counts them."""
        counted: dict[str, int] = getattr(self._api, "throttled", {})
        return dict(counted)

    @property
    def rates(self) -> dict[str, float]:
        """The CopySnapshot rate of each lane (``region``, or ``account/region``) now, or
        when it ended, requests/s."""
        return {key: lane.limiter.rate for key, lane in sorted(self._lanes.items())}

    @property
    def starts(self) -> dict[str, tuple[float, str]]:
        """Each lane's CopySnapshot rate at its start, requests/s, and why: "remembered"
        (an earlier run's), "rate" (chosen in the settings) or "default"."""
        return dict(sorted(self._starts.items()))

    @property
    def learned(self) -> dict[str, LearnedRate]:
        """What each lane that ran learned, for the next run to start from."""
        learned = {}
        for key, lane in sorted(self._lanes.items()):
            if (reached := lane.limiter.learned()) is not None:
                rate, throttled = reached
                burst = lane.limiter.bucket() if throttled else 1
                learned[key] = LearnedRate(
                    rate=rate, throttled=throttled, burst=burst, at=self._wall()
                )
        return learned

    def _start(self, key: str) -> tuple[float, LearnedRate | None, str]:
        """A lane's first rate, what it knows of the service (None: it slow-starts) and
        why. A remembered limit is started just below; a rate reached without a throttle
        is only a floor, so the start is the higher of it and the settings' rate."""
        settings = self._settings
        given = "rate" if settings.rate_chosen else "default"
        entry = self._remembered.get(key)
        if entry is None or settings.rate_chosen or not settings.adaptive:
            return settings.rate, None, given
        if entry.throttled:
            # Started under --max-rate; the limiter keeps the rate there, and a run held
            # under the remembered limit so leaves it as it was (RateLimiter.learned).
            start = KNOWN_START * min(entry.rate, settings.max_rate)
            return max(MIN_RATE, start), entry, "remembered"
        if entry.rate <= settings.rate:
            return settings.rate, None, given
        return min(entry.rate, settings.max_rate), None, "remembered"

    @property
    def counters(self) -> dict[str, RegionCounters]:
        """Each lane's requests sent, copies accepted and throttles, so far."""
        return {
            key: RegionCounters(sent=lane.sent, accepted=lane.accepted, throttled=lane.throttled)
            for key, lane in sorted(self._lanes.items())
        }

    async def run(
        self, jobs: Iterable[CopyJob], results: MemoryObjectSendStream[JobResult]
    ) -> None:
        """Run every job; send each result to ``results`` and close it at the end."""
        senders: dict[str, MemoryObjectSendStream[CopyJob]] = {}
        async with results, anyio.create_task_group() as tg:
            try:
                for job in jobs:
                    if self._stop.is_set():
                        break  # the rest become not_started in the report
                    send = senders.get(job.lane)
                    if send is None:
                        send, receive = anyio.create_memory_object_stream[CopyJob](math.inf)
                        senders[job.lane] = send
                        tg.start_soon(self._lane, job, receive, results.clone())
                    try:
                        self._queued.acquire_nowait()
                    except anyio.WouldBlock:
                        await self._queued.acquire()
                    send.send_nowait(job)
            finally:
                for send in senders.values():
                    send.close()

    async def _lane(
        self,
        first: CopyJob,
        jobs: MemoryObjectReceiveStream[CopyJob],
        results: MemoryObjectSendStream[JobResult],
    ) -> None:
        """Run the jobs of ``first``'s lane; all come through ``jobs``."""
        region = first.target_region
        async with jobs, results:
            try:
                api = await self._api.account(first.account)
            except LightsailError as exc:
                await self._fail_all(jobs, results, exc)
                return
            await self._run_lane(first.lane, region, api, jobs, results)
            self._lanes[first.lane].existing.clear()  # a run of many lanes keeps few

    async def _fail_all(
        self,
        jobs: MemoryObjectReceiveStream[CopyJob],
        results: MemoryObjectSendStream[JobResult],
        exc: LightsailError,
    ) -> None:
        """Fail every job of a lane that cannot run. A job an interrupted run may have sent
        stays to be looked up: not final."""
        async for job in each(jobs):
            self._queued.release()
            failed = self._result(job, Status.FAILED, _Tries(), error=exc)
            unknown = self._sent_before(job)
            await put(results, dataclasses.replace(failed, outcome_unknown=unknown))

    async def _run_lane(
        self,
        key: str,
        region: str,
        api: SnapshotAPI,
        jobs: MemoryObjectReceiveStream[CopyJob],
        results: MemoryObjectSendStream[JobResult],
    ) -> None:
        settings = self._settings
        rate, known, why = self._start(key)
        self._starts[key] = (rate, why)
        limiter = RateLimiter(
            rate,
            settings.burst,
            max_rate=settings.max_rate if settings.adaptive else None,
            limit=settings.max_rate,  # a fixed rate's burst stays within the cap too
            known_limit=known.rate if known else None,
            known_burst=known.burst if known else 1,
            clock=self._clock,
            sleep=self._sleep,
        )
        lane = _Lane(
            region=region,
            api=api,
            limiter=limiter,
            slots=anyio.CapacityLimiter(1),  # fitted once the lane starts sending
            ceiling=settings.max_in_flight,
        )
        self._lanes[key] = lane
        async with anyio.create_task_group() as tg:
            try:
                async for info in api.list_snapshots(region, self._guarded):
                    lane.existing[info.name] = info
            except LightsailError as exc:
                # Without the listing nothing in this region can be run safely.
                said = f"listing the snapshots in {region} failed, so this run sent no copy there"
                failed = LightsailError(exc.code, f"{said}: {exc.message}", status=exc.status)
                await self._fail_all(jobs, results, failed)
                return
            self._running[region] += 1
            try:
                await self._feed(lane, jobs, results, tg)
            finally:
                self._running[region] -= 1

    async def _feed(
        self,
        lane: _Lane,
        jobs: MemoryObjectReceiveStream[CopyJob],
        results: MemoryObjectSendStream[JobResult],
        tg: TaskGroup,
    ) -> None:
        """Start each of a lane's jobs in ``tg`` as the lane's cap lets."""
        lane.fit(self._share(lane.region))
        async for job in each(jobs):
            self._queued.release()
            slot = object()  # borrowed here, given back by the job's own task
            try:  # a free slot is taken without a trip through the event loop
                lane.slots.acquire_on_behalf_of_nowait(slot)
            except anyio.WouldBlock:
                await lane.slots.acquire_on_behalf_of(slot)
            if self._stop.is_set():
                lane.slots.release_on_behalf_of(slot)
                continue  # drain without starting: these become not_started
            tg.start_soon(self._job, lane, job, slot, results)

    def _share(self, region: str) -> int:
        """A lane's share of its region's jobs open at once: a job holds its lane's slot
        while it waits for the lane's pace, so one lane must not take them all."""
        return max(1, math.ceil(self._settings.max_in_flight / max(1, self._running[region])))

    async def _write(self, lane: _Lane, request: Callable[[], Awaitable[T]]) -> T:
        """One of ``lane``'s writes (a copy or its tags), sent in its region's room, its
        round trip timed for the lane's latency (the wait for room left out)."""
        async with self._room(lane.region):
            sent = self._clock()
            try:
                return await request()
            finally:
                lane.limiter.timed(self._clock() - sent)

    def _room(self, region: str) -> anyio.CapacityLimiter:
        """The region's room for writes in flight (``max_in_flight``), whatever their
        account: taken for the request only, once the lane's pace let it go, so a slow lane
        (a throttled account) waiting for its turn holds none of it."""
        room = self._region_slots.get(region)
        if room is None:
            room = self._region_slots[region] = anyio.CapacityLimiter(self._settings.max_in_flight)
        return room

    async def _job(
        self,
        lane: _Lane,
        job: CopyJob,
        slot: object,
        results: MemoryObjectSendStream[JobResult],
    ) -> None:
        try:
            result = await self._run_job(lane, job)
        finally:
            lane.fit(self._share(lane.region))
            lane.slots.release_on_behalf_of(slot)
        self.handed_on[job.target] = result
        self.unsettled.pop(job.target, None)
        await put(results, result)

    async def _run_job(self, lane: _Lane, job: CopyJob) -> JobResult:
        """Copy ``job``, or judge its target if it exists, then tag what stands. Its result
        names ``job`` as the manifest has it (use_latest), whatever date was copied."""
        try:
            pinned = await self._guarded(lambda: self._pinned(lane, job))
        except LightsailError as exc:
            return self._result(job, Status.FAILED, _Tries(), started=self._wall(), error=exc)
        existing = lane.existing.get(job.target_snapshot_name)
        if existing is None:
            result = await self._copy(lane, pinned)
        else:
            # A target listed before we sent anything is ours only if an interrupted run
            # sent it.
            result = await self._existing(lane, pinned, existing, ours=self._sent_before(job))
        sent = result.attempts or self._sent_before(job) or existing is not None
        # As written (use_latest), with the date it was sent for when its copy may exist.
        result = dataclasses.replace(
            result,
            job=job,
            sent_date=(pinned.restore_date or "") if job.use_latest and sent else "",
        )
        if result.status is Status.STARTED and (result.attempts or result.reconciled):
            lane.accepted += 1
        if result.status not in (Status.STARTED, Status.SKIPPED):
            return result
        # Known before tagging: a run cut short while tagging still reports the copy, as
        # not tagged yet, so that a resume tags it.
        self.handed_on[job.target] = dataclasses.replace(result, tag_error=NOT_TAGGED)
        self.unsettled.pop(job.target, None)
        # Targets found already there are copies of the same source too: tagging them
        # finishes tagging that failed before (or that an interrupted run never did).
        made_before = existing if existing is not None and not result.reconciled else None
        return await self._tag(lane, result, made_before, source_label(pinned))

    async def _pinned(self, lane: _Lane, job: CopyJob) -> CopyJob:
        """``job`` with its source pinned: for use_latest, the latest restorable automatic
        snapshot's date now, so the copy is of a known date and its label says which (a
        label "latest" would fit every night's copy). Unchanged if there is none: then
        Lightsail answers the job as it stands."""
        if not job.use_latest:
            return job
        if self._journal is not None and (sent := self._journal.past.dates.get(job.target)):
            # An interrupted run sent it for this date: whatever is latest now, its copy,
            # if it was made, is of that one.
            return dataclasses.replace(job, restore_date=sent, use_latest=False)
        return pin(job, await self._autos(lane, job))

    async def _copy(self, lane: _Lane, job: CopyJob) -> JobResult:
        started = self._wall()
        sent_before = self._sent_before(job)
        tries = _Tries(ambiguous=sent_before, unresolved=sent_before)
        try:
            return await self._guarded(lambda: self._attempt(lane, job, tries, started))
        except LightsailError as exc:
            result = self._result(job, Status.FAILED, tries, started=started, error=exc)
            if not tries.unresolved:
                return result
            # The last request may have made the copy: not final; a resume looks it up.
            message = f"{result.error_message} (the copy may have been made; --resume looks)"
            return dataclasses.replace(result, outcome_unknown=True, error_message=message)

    async def _attempt(self, lane: _Lane, job: CopyJob, tries: _Tries, started: float) -> JobResult:
        """One try at a job: look the target up first if an earlier try may have made it,
        then one CopySnapshot under the region's rate. Throttles and faults are raised for
        the retry policy."""
        if tries.ambiguous:
            found = await lane.api.find_snapshot(job.target_region, job.target_snapshot_name)
            if found is not None:
                return await self._existing(lane, job, found, tries, started, ours=True)
            tries.unresolved = False  # absent now: no earlier request made it
        await lane.limiter.acquire()
        if self._stop.is_set():
            lane.limiter.halt()  # the jobs queued behind this one stop without waiting
            return self._stopped(job, tries, started)
        if tries.attempts == 0 and self._journal is not None:
            await self._journal.intent(job)
        # Counted as sent before the answer: a run cut short while it trickles in still
        # reports the request, and the date it was sent for.
        tries.attempts += 1
        self.unsettled[job.target] = Sent(attempts=tries.attempts, date=job.restore_date or "")
        lane.sent += 1
        try:
            operation_id = await self._write(lane, lambda: lane.api.copy_snapshot(job))
            if self._journal is not None:
                self._journal.accepted(job, operation_id, tries.attempts)
            crash_point("after-response")
        except ThrottledError:
            log.debug("%s: throttled (attempt %d)", job.target, tries.attempts)
            tries.throttles += 1
            lane.throttled += 1
            lane.limiter.throttled()
            raise
        except TransientError as exc:
            log.debug("%s: %s (attempt %d)", job.target, exc, tries.attempts)
            tries.ambiguous |= exc.ambiguous
            tries.unresolved |= exc.ambiguous
            raise
        except OperationFailedError:
            # A failed operation may still have left its target (in state error, say): the
            # failure is final only once the target is known to be absent.
            tries.unresolved = True
            found = await lane.api.find_snapshot(job.target_region, job.target_snapshot_name)
            if found is not None:
                return await self._existing(lane, job, found, tries, started, ours=True)
            tries.unresolved = False
            raise
        except PermanentError as exc:
            if "already in use" not in exc.message:
                raise
            found = await lane.api.find_snapshot(job.target_region, job.target_snapshot_name)
            if found is None:
                raise  # the name belongs to an instance or disk
            # Ours if an earlier attempt of ours, whose answer was lost, made it; otherwise
            # made since the listing (by an overlapping run, say).
            result = await self._existing(lane, job, found, tries, started, ours=tries.ambiguous)
            if tries.attempts > 1 and result.error_code == "TargetExists":
                # Only throttles came before (an ambiguous try would have made it ours).
                # Lightsail throttles before doing any work, so a throttled request made
                # nothing and the copy is not taken for ours; but a throttle answered by
                # something in between after the service took the request cannot be ruled
                # out, so this is not final either: the journal holds the intent, and a
                # resume (or retry.csv) judges the target as one this job may have made.
                message = (
                    f"{result.error_message} (an earlier request of this job was throttled; "
                    "--resume looks again)"
                )
                return dataclasses.replace(result, outcome_unknown=True, error_message=message)
            return result
        lane.limiter.succeeded()
        return self._result(job, Status.STARTED, tries, started=started, operation_id=operation_id)

    async def _tag(
        self, lane: _Lane, result: JobResult, made_before: SnapshotInfo | None, label: str
    ) -> JobResult:
        """Tag a copy of ``result``'s job: provenance (``label``, always), the user's tags
        and the source's (``copy_tags``). ``made_before``: the target as listed, when an
        earlier run made it; it keeps its run id, and tags it has already are not sent
        again. A failure is noted on the result; the copy stands."""
        job = result.job
        had = dict(made_before.tags) if made_before is not None else {}
        tags: dict[str, str] = {}
        try:
            if self._settings.copy_tags and job.source_snapshot_name:
                source = await self._guarded(lambda: self._source_snapshot(lane, job))
                # A source that is itself a copy has provenance of its own: not this copy's.
                tags.update(
                    (k, v) for k, v in (source.tags if source else ()) if not is_reserved(k)
                )
            tags.update(self._settings.tags)
            # Provenance last, so nothing overwrites it; an earlier run's id stays.
            tags[SOURCE_TAG] = label
            if self._settings.run_id and RUN_TAG not in had:
                tags[RUN_TAG] = self._settings.run_id
            if made_before is not None and tags.items() <= had.items():
                return result

            async def tag() -> None:
                # TagResource is a write: it spends the copy budget, and the region's rate
                # learns from it as from a copy (the counts in the report are copies' only).
                await lane.limiter.acquire()
                try:
                    await self._write(
                        lane,
                        lambda: lane.api.tag_resource(
                            job.target_region, job.target_snapshot_name, tags
                        ),
                    )
                except ThrottledError:
                    log.debug("%s: tagging throttled", job.target)
                    lane.limiter.throttled()
                    raise
                lane.limiter.succeeded()

            await self._guarded(tag)
        except LightsailError as exc:
            log.warning("%s: tagging failed: %s", job.target, exc)
            return dataclasses.replace(result, tag_error=f"{exc.code}: {exc.message}")
        return result

    def _stopped(self, job: CopyJob, tries: _Tries, started: float) -> JobResult:
        """The result of a job the run stopped before its next request."""
        if not tries.ambiguous:
            return self._result(job, Status.NOT_STARTED, tries)  # nothing reached Lightsail
        return self._result(job, Status.FAILED, tries, started=started, error=INTERRUPTED)

    async def _existing(
        self,
        lane: _Lane,
        job: CopyJob,
        target: SnapshotInfo,
        tries: _Tries | None = None,
        started: float | None = None,
        *,
        ours: bool,
    ) -> JobResult:
        """The result for a job whose target exists. ``ours``: this job may have made it."""
        tries = tries or _Tries()
        started = self._wall() if started is None else started
        try:
            source = await self._guarded(lambda: self._source(lane, job))
        except LightsailError as exc:
            return self._result(job, Status.FAILED, tries, started=started, error=exc)
        if ours and (missing := _unreadable(target, source)):
            return self._cannot_tell(job, tries, started, missing)
        if ours and tries.attempts and target.created_at < started - CLOCK_SKEW:
            # Not there when the region was listed, found after our request, yet made well
            # before it: the clocks differ by more than CLOCK_SKEW, or another run made it
            # meanwhile. Which, only a person can tell: not skipped, not a conflict, not final.
            if target.created_at and not conflict(job, target, source, ours=True)[0]:
                return self._skewed(job, target, tries, started)
            ours = False
        return self._judge(job, target, source, ours=ours, tries=tries, started=started)

    def _cannot_tell(self, job: CopyJob, tries: _Tries, started: float, missing: str) -> JobResult:
        """The result for a target this job may have made whose evidence cannot be read:
        not a conflict (it may be our copy), not ours (it may not be): not final."""
        error = LightsailError(
            "CannotTell",
            f"{job.target} exists, but Lightsail's answer has no valid {missing}, so "
            "batchcopy cannot tell whether this job made it; --resume looks again",
        )
        result = self._result(job, Status.FAILED, tries, started=started, error=error)
        return dataclasses.replace(result, outcome_unknown=True)

    def _skewed(
        self, job: CopyJob, target: SnapshotInfo, tries: _Tries, started: float
    ) -> JobResult:
        ahead = round(started - target.created_at)
        error = LightsailError(
            "ClockSkew",
            f"{job.target} appeared after our request, yet Lightsail dates it {ahead} s before "
            f"it (more than the {CLOCK_SKEW:g} s allowed): this machine's clock is off, or "
            "another run made it meanwhile; check the clock (NTP), then --resume looks again",
        )
        result = self._result(job, Status.FAILED, tries, started=started, error=error)
        return dataclasses.replace(result, outcome_unknown=True)

    def _judge(
        self,
        job: CopyJob,
        target: SnapshotInfo,
        source: Source | None,
        *,
        ours: bool,
        tries: _Tries,
        started: float,
    ) -> JobResult:
        """What an existing target means for ``job`` (see the module docstring)."""
        error = None
        code, message = conflict(job, target, source, ours=ours)
        if code:
            error = LightsailError(code, message)
        elif target.state == "error":
            error = LightsailError(
                "TargetFailed",
                f"{job.target} exists in state error (a copy that failed); delete it and run "
                "the job again",
            )
        elif ours:
            # Ours: reconciled, unless the journal says its answer came (a run cut short
            # after it): then no answer was lost, and the row keeps what the answer said.
            answered = self._journal.past.accepted.get(job.target) if self._journal else None
            if answered is None:
                return self._result(job, Status.STARTED, tries, started=started, reconciled=True)
            operation_id, attempts = answered
            result = self._result(job, Status.STARTED, tries, started=started)
            return dataclasses.replace(
                result, operation_id=operation_id, attempts=max(attempts, tries.attempts)
            )
        elif self._settings.on_exists is OnExists.FAIL:
            error = LightsailError(
                "TargetExists",
                f"{job.target} already exists, copied from the same source; "
                "run with --on-exists skip to count it as done",
            )
        elif target.state not in _READY:
            # A copy of this source still being made (by an earlier run cut short, say): not
            # done, so not skipped; started, as a copy this run sent would be, and with
            # --wait followed to its end. No answer was lost: not reconciled.
            return self._result(job, Status.STARTED, tries, started=started)
        else:
            return self._result(job, Status.SKIPPED, tries, started=started)
        return self._result(job, Status.FAILED, tries, started=started, error=error)

    async def _source(self, lane: _Lane, job: CopyJob) -> Source | None:
        """What is known of ``job``'s source snapshot; None when it does not exist."""
        if job.source_snapshot_name:
            found = await self._source_snapshot(lane, job)
            return Source.of(found) if found else None
        return Source.automatic(job, await self._autos(lane, job))

    async def _autos(self, lane: _Lane, job: CopyJob) -> AutoSnapshots | None:
        """The automatic snapshots of ``job``'s source resource, looked up once however many
        jobs copy them."""
        region, resource = job.source_region, job.source_resource_name or ""
        autos = await self._lookups.get(
            ("auto", job.account, region, resource),
            lambda: lane.api.auto_snapshots(region, resource),
        )
        assert autos is None or isinstance(autos, AutoSnapshots)
        return autos

    async def _source_snapshot(self, lane: _Lane, job: CopyJob) -> SnapshotInfo | None:
        """``job``'s source snapshot, looked up once however many jobs copy it."""
        region, name = job.source_region, job.source_snapshot_name or ""
        found = await self._lookups.get(
            ("snapshot", job.account, region, name), lambda: lane.api.find_snapshot(region, name)
        )
        assert found is None or isinstance(found, SnapshotInfo)
        return found

    def _sent_before(self, job: CopyJob) -> bool:
        """Whether an earlier run may have sent ``job`` (its journal's intent, or a retry
        row that says so): its target is looked up first and judged as possibly ours."""
        return job.sent_before or job.target in self._intended

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one call under the retry policy."""
        return await guarded(call, self._settings.retry, clock=self._clock, sleep=self._sleep)

    def _result(
        self,
        job: CopyJob,
        status: Status,
        tries: _Tries,
        *,
        started: float = 0.0,
        operation_id: str = "",
        reconciled: bool = False,
        error: LightsailError | None = None,
    ) -> JobResult:
        return JobResult(
            job=job,
            status=status,
            attempts=tries.attempts,
            throttles=tries.throttles,
            reconciled=reconciled,
            operation_id=operation_id,
            error_code=error.code if error else "",
            error_message=error.message if error else "",
            started_at=started,
            finished_at=self._wall() if started else 0.0,
        )


def _unreadable(target: SnapshotInfo, source: Source | None) -> str:
    """The evidence a target possibly made by this job lacks, named as the answer's field
    (creation times that are absent or no time at all read as 0); "" when it is all there.
    Without it, neither "ours" nor "not ours" can be said."""
    if not target.created_at:
        return "createdAt"
    if not target.origin:
        return "fromInstanceName" if target.kind == "instance" else "fromDiskName"
    if source is not None and not source.created_at:
        return "createdAt for the source"
    return ""
