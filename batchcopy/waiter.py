"""Following accepted copies to their end (``--wait``).

A copy Lightsail accepted is not a copy that exists. The waiter sits between the engine and
the report: results that are not ``started`` pass straight through; started ones wait in
their target region's lane until the snapshot is ``available`` (instance) or ``completed``
(disk) — ``succeeded`` — or ``error`` — ``failed``, with the operation's errorCode and
errorDetails — or until ``wait_timeout`` runs out — ``in_progress``.

Each region has one poller and its own read budget (``wait_read_rate`` calls per second),
separate from the copy rate, so waiting on a thousand copies does not slow the copies that
are still being made; copying and waiting overlap. A poller checks quickly at first and
then less and less often. With few copies pending it reads each target; with many, one
paginated listing of the region's snapshots answers for all of them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchcopy.errors import LightsailError, PermanentError, ThrottledError, TransientError
from batchcopy.jobs import JobResult, SnapshotInfo, Status
from batchcopy.limits import Clock, RateLimiter, Sleep
from batchcopy.retry import Guard, paced
from batchcopy.settings import Settings
from batchcopy.streams import each, put
from batchcopy.timeline import Timeline

__all__ = ["Waiter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_CHECK = 1.0  # seconds after a copy is accepted
SLOWEST_CHECK = 30.0
BACKOFF = 1.5
FEW = 20  # up to this many pending copies in a region are read one by one
MISSES = 2  # a target is gone only when this many looks in a row do not find it
SHORTEST_ROUND = 5.0  # seconds a round of reads may always take
_DONE = {"available", "completed"}
# Refusals of the account's keys (expired beyond renewal, a role no longer assumable): they
# say nothing of the copies being followed.
_KEYS_REFUSED = frozenset(
    {"ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException", "AssumeRoleFailed"}
)


class WaitAPI(Protocol):
    """What the waiter needs of Lightsail in one account, and the way to another account's;
    :class:`batchcopy.lightsail.LightsailClients` is one."""

    async def account(self, account: str) -> WaitAPI: ...

    async def find_snapshot(self, region: str, name: str) -> SnapshotInfo | None: ...

    def list_snapshots(self, region: str, guard: Guard) -> AsyncIterator[SnapshotInfo]: ...

    async def get_operation(self, region: str, operation_id: str) -> dict[str, str]: ...


@dataclass(slots=True)
class _Lane:
    key: str  # the region, or account/region
    region: str
    api: WaitAPI  # the lane's account's
    budget: RateLimiter
    pending: dict[str, tuple[JobResult, float]] = field(
        default_factory=dict
    )  # name -> (result, give up at)
    wake: anyio.Event = field(default_factory=anyio.Event)
    misses: dict[str, int] = field(default_factory=dict)
    closed: bool = False
    since: dict[str, float] = field(default_factory=dict)  # name -> accepted at (clock)


class Waiter:
    """Turns ``started`` results into ``succeeded``, ``failed`` or ``in_progress`` ones.

    ``timeline``, if given, is told how long each copy that finished took, from its
    acceptance (its result reaching the waiter) to the waiter seeing it done, and its size.
    """

    def __init__(
        self,
        api: WaitAPI,
        settings: Settings,
        *,
        stop: anyio.Event,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        wall: Clock = time.time,
        timeline: Timeline | None = None,
    ) -> None:
        self._api = api
        self._timeline = timeline
        self._settings = settings
        self._stop = stop
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._lanes: dict[str, _Lane] = {}

    @property
    def pending(self) -> dict[str, int]:
        """How many accepted copies each lane (``region``, ``account/region``) is following
        right now."""
        return {key: len(lane.pending) for key, lane in sorted(self._lanes.items())}

    async def run(
        self, incoming: MemoryObjectReceiveStream[JobResult], out: MemoryObjectSendStream[JobResult]
    ) -> None:
        """Pass results on from ``incoming`` to ``out``, following the started ones."""
        async with incoming, out, anyio.create_task_group() as tg:
            async for result in each(incoming):
                if result.status is not Status.STARTED:
                    await put(out, result)
                    continue
                job = result.job
                lane = self._lanes.get(job.lane)
                if lane is None:
                    rate = self._settings.wait_read_rate  # at most; a throttle slows it
                    budget = RateLimiter(
                        rate, 2, max_rate=rate, clock=self._clock, sleep=self._sleep
                    )
                    # The engine reached the account before it could start this copy.
                    api = await self._api.account(job.account)
                    lane = _Lane(key=job.lane, region=job.target_region, api=api, budget=budget)
                    self._lanes[job.lane] = lane
                    tg.start_soon(self._poll, lane, out.clone())
                give_up_at = self._clock() + self._settings.wait_timeout
                lane.pending[result.job.target_snapshot_name] = (result, give_up_at)
                lane.since[result.job.target_snapshot_name] = self._clock()
                lane.wake.set()
            for lane in self._lanes.values():
                lane.closed = True
                lane.wake.set()

    async def _poll(self, lane: _Lane, out: MemoryObjectSendStream[JobResult]) -> None:
        interval = FIRST_CHECK
        async with out:
            while True:
                if not lane.pending:
                    if lane.closed:
                        return
                    await lane.wake.wait()
                    lane.wake = anyio.Event()
                    interval = FIRST_CHECK
                    continue
                with anyio.move_on_after(interval):
                    await self._stop.wait()
                # Once the run stops, no more reading: what is pending is in progress. A round
                # of reads (slow listings, hanging reads retried) ends when the first pending
                # copy's wait runs out (but gets SHORTEST_ROUND, so a copy is read once more
                # at its timeout), so --wait-timeout holds whatever the service does.
                states: dict[str, SnapshotInfo | None] = {}
                first_give_up = min(give_up_at for _, give_up_at in lane.pending.values())
                try:
                    if not self._stop.is_set():
                        budget = max(first_give_up - self._clock(), SHORTEST_ROUND)
                        with anyio.move_on_after(budget):
                            states = await self._states(lane)
                except PermanentError as exc:
                    if exc.code in _KEYS_REFUSED:
                        # The account's keys, not the copies: they stay followed, and end
                        # in_progress if the keys never come back (a resume looks).
                        log.warning("cannot follow copies in %s now: %s", lane.key, exc)
                        states = {}
                    else:
                        # Reading is refused (AccessDenied, say): waiting longer cannot help.
                        log.warning("cannot follow copies in %s: %s", lane.key, exc)
                        await self._refused(lane, out, exc)
                        continue
                now = self._clock()
                for name, (result, give_up_at) in list(lane.pending.items()):
                    gone = name in states and states[name] is None
                    lane.misses[name] = lane.misses.get(name, 0) + 1 if gone else 0
                    final = await self._settle(
                        lane,
                        result,
                        gone=lane.misses[name] >= MISSES,
                        target=states.get(name),
                        timed_out=now >= give_up_at,
                    )
                    if final is not None:
                        accepted = lane.since.pop(name, now)
                        target = states.get(name)
                        if self._timeline is not None and final.status is Status.SUCCEEDED:
                            assert target is not None  # seen done
                            self._timeline.waited(target.size_in_gb, now - accepted)
                        await out.send(final)
                        del lane.pending[name]
                        lane.misses.pop(name, None)
                interval = min(interval * BACKOFF, SLOWEST_CHECK)

    async def _refused(
        self, lane: _Lane, out: MemoryObjectSendStream[JobResult], exc: PermanentError
    ) -> None:
        """Fail every copy the lane follows: reading them is refused."""
        for name, (result, _) in list(lane.pending.items()):
            await out.send(
                dataclasses.replace(
                    result,
                    status=Status.FAILED,
                    error_code=exc.code,
                    error_message=f"accepted, but it cannot be followed: {exc.message}",
                    finished_at=self._wall(),
                )
            )
            del lane.pending[name]
            lane.since.pop(name, None)

    async def _states(self, lane: _Lane) -> dict[str, SnapshotInfo | None]:
        """The current snapshot of every pending target (None: it is gone); targets left out
        could not be read this time."""
        try:
            if len(lane.pending) <= FEW:
                states: dict[str, SnapshotInfo | None] = {}
                for name in list(lane.pending):
                    look = functools.partial(lane.api.find_snapshot, lane.region, name)
                    states[name] = await self._read(lane, look)
                return states
            found: dict[str, SnapshotInfo | None] = dict.fromkeys(lane.pending)
            async for info in lane.api.list_snapshots(
                lane.region, lambda call: self._read(lane, call)
            ):
                if info.name in found:
                    found[info.name] = info
            return found
        except (ThrottledError, TransientError):
            return {}  # could not look this time; the next check tries again

    async def _settle(
        self,
        lane: _Lane,
        result: JobResult,
        *,
        gone: bool,
        target: SnapshotInfo | None,
        timed_out: bool,
    ) -> JobResult | None:
        """The final result, or None to keep waiting. ``gone``: look-ups found no snapshot
        ``MISSES`` times in a row."""
        wall = self._wall()
        if gone:
            return dataclasses.replace(
                result,
                status=Status.FAILED,
                error_code="TargetMissing",
                finished_at=wall,
                error_message=f"{result.job.target} disappeared while the copy was followed",
            )
        if target is not None and target.state in _DONE:
            return dataclasses.replace(result, status=Status.SUCCEEDED, finished_at=wall)
        if target is not None and target.state == "error":
            code, details = await self._failure(lane, result)
            return dataclasses.replace(
                result,
                status=Status.FAILED,
                error_code=code,
                error_message=details,
                finished_at=wall,
            )
        if timed_out or self._stop.is_set():
            return dataclasses.replace(result, status=Status.IN_PROGRESS, finished_at=wall)
        return None

    async def _failure(self, lane: _Lane, result: JobResult) -> tuple[str, str]:
        """The failed operation's errorCode and errorDetails, when it can be read."""
        if result.operation_id:
            try:
                operation = await lane.api.get_operation(lane.region, result.operation_id)
            except LightsailError:
                pass
            else:
                code = operation.get("errorCode") or "CopyFailed"
                return code, operation.get("errorDetails") or "the copy operation failed"
        return "CopyFailed", f"{result.job.target} ended in state error"

    async def _read(self, lane: _Lane, call: Callable[[], Awaitable[T]]) -> T:
        """One read on the region's waiting budget, under the retry policy."""
        return await paced(
            lane.budget, call, self._settings.retry, clock=self._clock, sleep=self._sleep
        )
