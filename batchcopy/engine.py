"""The engine: jobs in, one lane per target region, results out.

One anyio task group. The dispatcher reads jobs (a stream: the manifest is never held in
memory) and hands each to its target region's lane through a bounded memory stream, so a
slow region holds the reader back instead of piling jobs up. A lane first lists the
snapshots that already exist in its region (one paginated listing, not one call per job),
then runs its jobs under the region's rate limit and in-flight cap.

Lightsail's CopySnapshot has no idempotency token, so the target name is the key: after an
ambiguous failure (5xx, timeout, dropped connection) the next step is to look the target
up. A target that exists and was made from the same source is ours (``reconciled``); one
made from another source is a conflict; only an absent target is sent again.

Expected failures become a failed :class:`JobResult`; anything else is a bug and cancels
the task group. asyncio is the backend (aiobotocore needs it).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchcopy.errors import LightsailError, PermanentError, ThrottledError, TransientError
from batchcopy.jobs import (
    INTERRUPTED_CODE,
    INTERRUPTED_MESSAGE,
    CopyJob,
    JobResult,
    SnapshotInfo,
    Status,
)
from batchcopy.journal import Journal, crash_point
from batchcopy.limits import Clock, RateLimiter, Sleep
from batchcopy.retry import Guard, retrying
from batchcopy.settings import OnExists, Settings

__all__ = ["Engine", "SnapshotAPI"]

log = logging.getLogger(__name__)

INTERRUPTED = LightsailError(INTERRUPTED_CODE, INTERRUPTED_MESSAGE)

T = TypeVar("T")


class SnapshotAPI(Protocol):
    """What the engine needs of Lightsail; :class:`batchcopy.lightsail.LightsailClients` is one."""

    async def copy_snapshot(self, job: CopyJob) -> str: ...

    async def find_snapshot(self, region: str, name: str) -> SnapshotInfo | None: ...

    def list_snapshots(self, region: str, guard: Guard) -> AsyncIterator[SnapshotInfo]: ...


class _Found(enum.Enum):
    ABSENT = "absent"
    OURS = "ours"  # exists and was made from this job's source
    OTHER = "other"  # exists, made from something else


@dataclass(slots=True)
class _Lane:
    region: str
    limiter: RateLimiter
    slots: anyio.Semaphore
    existing: dict[str, SnapshotInfo] = field(default_factory=dict)


@dataclass(slots=True)
class _Tries:
    attempts: int = 0
    throttles: int = 0
    ambiguous: bool = False


class Engine:
    """Runs copy jobs against a :class:`SnapshotAPI` and sends one result per job.

    ``clock`` and ``sleep`` drive rate limits and retries; ``wall`` stamps results.
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
    ) -> None:
        self._api = api
        self._journal = journal
        self._intended = intended  # targets an earlier, interrupted run may have sent
        self._stop = stop or anyio.Event()
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._sources: dict[tuple[str, str], SnapshotInfo | None] = {}
        self.throttles: Counter[str] = Counter()  # per target region, for progress displays
        self.in_flight: Counter[str] = Counter()
        # Targets sent in this run whose result is not out yet: if the run is cut short,
        # they are reported as interrupted, not as never started.
        self.unsettled: set[str] = set()

    async def run(
        self, jobs: Iterable[CopyJob], results: MemoryObjectSendStream[JobResult]
    ) -> None:
        """Run every job; send each result to ``results`` and close it at the end."""
        buffer = max(64, 2 * self._settings.max_in_flight)
        senders: dict[str, MemoryObjectSendStream[CopyJob]] = {}
        async with results, anyio.create_task_group() as tg:
            try:
                for job in jobs:
                    if self._stop.is_set():
                        break  # the rest become not_started in the report
                    send = senders.get(job.target_region)
                    if send is None:
                        send, receive = anyio.create_memory_object_stream[CopyJob](buffer)
                        senders[job.target_region] = send
                        tg.start_soon(self._lane, job.target_region, receive, results.clone())
                    await send.send(job)
            finally:
                for send in senders.values():
                    send.close()

    async def _lane(
        self,
        region: str,
        jobs: MemoryObjectReceiveStream[CopyJob],
        results: MemoryObjectSendStream[JobResult],
    ) -> None:
        settings = self._settings
        lane = _Lane(
            region=region,
            limiter=RateLimiter(
                settings.rate, settings.burst, clock=self._clock, sleep=self._sleep
            ),
            slots=anyio.Semaphore(settings.max_in_flight),
        )
        async with jobs, results, anyio.create_task_group() as tg:
            try:
                async for info in self._api.list_snapshots(region, self._guarded):
                    lane.existing[info.name] = info
            except LightsailError as exc:
                # Without the listing nothing in this region can be run safely.
                async for job in jobs:
                    await results.send(self._result(job, Status.FAILED, _Tries(), error=exc))
                return
            async for job in jobs:
                await lane.slots.acquire()
                if self._stop.is_set():
                    lane.slots.release()
                    continue  # drain without starting: these become not_started
                tg.start_soon(self._job, lane, job, results)

    async def _job(
        self, lane: _Lane, job: CopyJob, results: MemoryObjectSendStream[JobResult]
    ) -> None:
        self.in_flight[lane.region] += 1
        try:
            existing = lane.existing.get(job.target_snapshot_name)
            if existing is None:
                result = await self._copy(lane, job)
            elif job.target in self._intended:
                # An interrupted run sent this copy: the listing shows whether it landed.
                same = await self._guarded(lambda: self._same_source(job, existing))
                found = _Found.OURS if same else _Found.OTHER
                result = self._settled(job, found, _Tries(ambiguous=True), self._wall())
            else:
                result = await self._already_there(job, existing)
        finally:
            self.in_flight[lane.region] -= 1
            lane.slots.release()
        self.unsettled.discard(job.target)
        await results.send(result)

    async def _copy(self, lane: _Lane, job: CopyJob) -> JobResult:
        started = self._wall()
        tries = _Tries(ambiguous=job.target in self._intended)
        try:
            async for attempt in retrying(
                self._settings.retry, clock=self._clock, sleep=self._sleep
            ):
                with attempt:
                    if tries.ambiguous:
                        found = await self._look_up(job)
                        if found is not _Found.ABSENT:
                            return self._settled(job, found, tries, started)
                    await lane.limiter.acquire()
                    if self._stop.is_set():
                        return self._stopped(job, tries, started)
                    if tries.attempts == 0 and self._journal is not None:
                        self.unsettled.add(job.target)
                        await self._journal.intent(job)
                    tries.attempts += 1
                    try:
                        operation_id = await self._api.copy_snapshot(job)
                        crash_point("after-response")
                    except ThrottledError:
                        log.debug("%s: throttled (attempt %d)", job.target, tries.attempts)
                        tries.throttles += 1
                        self.throttles[lane.region] += 1
                        raise
                    except TransientError as exc:
                        log.debug("%s: %s (attempt %d)", job.target, exc, tries.attempts)
                        tries.ambiguous |= exc.ambiguous
                        raise
                    except PermanentError as exc:
                        if "already in use" not in exc.message:
                            raise
                        found = await self._look_up(job)
                        if found is _Found.ABSENT:
                            raise  # the name belongs to an instance or disk
                        if tries.ambiguous:
                            # Our earlier attempt, whose answer was lost, may hold the name.
                            return self._settled(job, found, tries, started)
                        # Made since the listing (by an overlapping run, say).
                        return self._existing_target(job, found is _Found.OURS, tries, started)
                    return self._result(
                        job, Status.STARTED, tries, started=started, operation_id=operation_id
                    )
        except LightsailError as exc:
            return self._result(job, Status.FAILED, tries, started=started, error=exc)
        raise AssertionError("the retry loop ends by returning or raising")  # pragma: no cover

    def _stopped(self, job: CopyJob, tries: _Tries, started: float) -> JobResult:
        """The result of a job the run stopped before its next request."""
        if not tries.ambiguous:
            return self._result(job, Status.NOT_STARTED, tries)  # nothing reached Lightsail
        return self._result(job, Status.FAILED, tries, started=started, error=INTERRUPTED)

    def _settled(self, job: CopyJob, found: _Found, tries: _Tries, started: float) -> JobResult:
        """The result once a look-up after an ambiguous attempt has decided the job."""
        if found is _Found.OURS:
            return self._result(job, Status.STARTED, tries, started=started, reconciled=True)
        conflict = LightsailError("TargetExists", self._conflict_message(job))
        return self._result(job, Status.FAILED, tries, started=started, error=conflict)

    async def _already_there(self, job: CopyJob, existing: SnapshotInfo) -> JobResult:
        started = self._wall()
        try:
            same = await self._guarded(lambda: self._same_source(job, existing))
        except LightsailError as exc:
            return self._result(job, Status.FAILED, _Tries(), started=started, error=exc)
        return self._existing_target(job, same, _Tries(), started)

    def _existing_target(
        self, job: CopyJob, same: bool, tries: _Tries, started: float
    ) -> JobResult:
        """The result for a target that was there before this job sent anything."""
        if not same:
            error = LightsailError("TargetExists", self._conflict_message(job))
        elif self._settings.on_exists is OnExists.FAIL:
            error = LightsailError(
                "TargetExists",
                f"{job.target} already exists, copied from the same source; "
                "run with --on-exists skip to count it as done",
            )
        else:
            return self._result(job, Status.SKIPPED, tries, started=started)
        return self._result(job, Status.FAILED, tries, started=started, error=error)

    @staticmethod
    def _conflict_message(job: CopyJob) -> str:
        return (
            f"{job.target} already exists and was not copied from "
            f"{job.source_region}:{job.source_name}; choose another target name or delete it"
        )

    async def _look_up(self, job: CopyJob) -> _Found:
        info = await self._api.find_snapshot(job.target_region, job.target_snapshot_name)
        if info is None:
            return _Found.ABSENT
        return _Found.OURS if await self._same_source(job, info) else _Found.OTHER

    async def _same_source(self, job: CopyJob, target: SnapshotInfo) -> bool:
        """Whether ``target`` looks like a copy of ``job``'s source: same kind, origin, size."""
        if job.source_resource_name:
            return target.origin == job.source_resource_name
        assert job.source_snapshot_name
        key = (job.source_region, job.source_snapshot_name)
        if key not in self._sources:
            self._sources[key] = await self._api.find_snapshot(*key)
        source = self._sources[key]
        return source is not None and (source.kind, source.origin, source.size_in_gb) == (
            target.kind,
            target.origin,
            target.size_in_gb,
        )

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one read under the retry policy."""
        async for attempt in retrying(self._settings.retry, clock=self._clock, sleep=self._sleep):
            with attempt:
                return await call()
        raise AssertionError("the retry loop ends by returning or raising")  # pragma: no cover

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
