"""The prune: list batchcopy's copies lane by lane, decide by a policy, delete the rest.

    import batchcopy

    policy = batchcopy.Policy(keep_daily=7, keep_weekly=4)
    report = await batchcopy.prune_snapshots(policy, delete=True, report_dir="prune-report")

A lane is one (account, target region), as in a run. Each lane is listed whole before
anything in it is decided: a listing that fails (or an account whose role cannot be
assumed) leaves its lane out, reported, and the prune exits 1; a part of a listing is
never taken for all of it, since the newest copy could be the part missing.

Without ``delete`` nothing is sent but reads: every candidate gets its plan row (kept,
skipped, would_delete). With ``delete`` and a report folder, the plan is journaled whole
before the first delete, each delete's intent is on disk before it is sent, and a resume
continues that plan (see :mod:`batchcopy.prune_journal`). Deletes go through the lane's
rate limiter (adaptive, as copies') under the retry policy; an ambiguous answer (a lost
response, a timeout) is settled by looking the snapshot up, never by deleting blindly
again, and a snapshot already gone is no failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

import anyio

from batchcopy.api import RunControl, _new_run_id
from batchcopy.errors import (
    LightsailError,
    OperationFailedError,
    ReportDirError,
    SettingsError,
    ThrottledError,
    TransientError,
)
from batchcopy.facts import lightsail_regions
from batchcopy.html_report import html_report_or_warn
from batchcopy.jobs import INTERRUPTED_CODE, SnapshotInfo, rates_by_region
from batchcopy.journal import refuse_journal
from batchcopy.limits import Clock, RateLimiter, Sleep
from batchcopy.prune import Candidate, PruneResult, PruneStatus, Scope, candidate, decide_prune
from batchcopy.prune_journal import PruneJournal
from batchcopy.prune_recheck import LOST, recheck
from batchcopy.prune_report import LaneFailure, PruneReport, summarize, write_prune_report
from batchcopy.report import prepare_report_dir
from batchcopy.retention import Policy
from batchcopy.retry import Guard, guarded
from batchcopy.settings import Settings
from batchcopy.timeline import DELETE_WRITES, Timeline, prune_outcome

__all__ = ["PruneAPI", "prune_snapshots"]

log = logging.getLogger("batchcopy")
T = TypeVar("T")

_LISTINGS_AT_ONCE = 32  # lanes listed side by side


class PruneAPI(Protocol):
    """What a prune needs of Lightsail (:class:`batchcopy.lightsail.LightsailClients`)."""

    async def account(self, account: str) -> PruneAPI: ...

    def list_snapshots(self, region: str, guard: Guard) -> AsyncIterator[SnapshotInfo]: ...

    async def find_snapshot(
        self, region: str, name: str, kind: str | None = None
    ) -> SnapshotInfo | None: ...

    async def delete_snapshot(self, region: str, name: str, kind: str) -> str | None: ...


async def prune_snapshots(
    policy: Policy | None,
    settings: Settings | None = None,
    *,
    scope: Scope | None = None,
    accounts: Sequence[str] = ("",),
    delete: bool = False,
    report_dir: Path | str | None = None,
    resume: bool = False,
    control: RunControl | None = None,
    on_result: Callable[[PruneResult], None] | None = None,
    now: dt.datetime | None = None,
    api: PruneAPI | None = None,
) -> PruneReport:
    """Prune the copies in ``scope`` (every target region of every account in ``accounts``
    unless it says less; "" is the base credentials' account) by ``policy``; return the
    report, and with ``report_dir`` write it there.

    Only ``delete`` sends deletes; with a ``report_dir`` they are journaled, and
    ``resume`` continues the prune recorded there (its policy and plan: ``policy`` may be
    None, or must be the same). ``on_result`` sees each candidate's row as it is settled.
    ``control`` stops the deletes: those not sent are ``not_started``."""
    settings = settings or Settings()
    control = control or RunControl()
    scope = scope or Scope()
    now = now or dt.datetime.now(dt.UTC)
    if resume and (report_dir is None or not delete):
        raise ReportDirError("resuming a prune needs its report folder, and delete")
    if policy is None and not resume:
        raise SettingsError("a prune needs a policy")
    directory = _folder(report_dir, resume=resume) if report_dir is not None else None
    journal = None
    if directory is not None and delete:
        wanted = policy.to_json() if policy is not None else {}
        run_id = settings.run_id or _new_run_id()
        journal = PruneJournal.open(
            directory,
            resume=resume,
            run_id=run_id,
            policy=wanted,
            scope=scope.to_json(),
            accounts=list(accounts),
        )
    try:
        policy = _policy_of(journal, policy)
        if journal is not None and resume:
            # The first run's scope and accounts: a plan it never finished is made again
            # by them, never by a resume's (which names none).
            past = journal.past
            recorded = Scope.from_json(past.scope or Scope().to_json())
            if scope.shard and scope.shard != recorded.shard:
                was = f"shard {recorded.shard}" if recorded.shard else "a whole prune"
                raise ReportDirError(
                    f"{directory} is the prune of {was}, not shard {scope.shard}; resume "
                    "each shard's prune with its own folder"
                )
            scope = recorded
            accounts = past.accounts or [""]
        # The prune's time series (timeline.json): its deletes, throttles and rates.
        timeline = Timeline(writes=DELETE_WRITES) if directory is not None else None
        pruning = _Prune(settings, control, journal, on_result, timeline=timeline)
        started = time.time()
        async with contextlib.AsyncExitStack() as stack:
            if api is None:
                from batchcopy.lightsail import LightsailClients  # slow to import

                api = await stack.enter_async_context(LightsailClients(settings))
            if timeline is not None and (watch := getattr(api, "watch", None)) is not None:
                watch(timeline)
            await pruning.run(api, policy, scope, accounts, now, delete=delete)
        report = summarize(
            pruning.results,
            pruning.failures,
            policy=policy,
            run_id=journal.past.run_id if journal is not None else "",
            delete=delete,
            requests=pruning.requests,
            throttles=pruning.throttles,
            seen=pruning.seen,
            started_at=started,
            interrupted=control.exit_code if control.stopping.is_set() else None,
        )
        if directory is not None and (delete or not resume):
            write_prune_report(directory, report, timeline)
            html_report_or_warn(directory)
        return report
    finally:
        if journal is not None:
            journal.close()


def _folder(report_dir: Path | str, *, resume: bool) -> Path:
    """The report folder, made if need be; a resume needs it there, and a new prune's
    folder must hold no journal (a plan written there would replace a run's report)."""
    if resume and not Path(report_dir).is_dir():
        raise ReportDirError(f"{report_dir}: no such folder; give the prune's report folder")
    directory = prepare_report_dir(Path(report_dir))
    if not resume:
        refuse_journal(directory)
    return directory


def _policy_of(journal: PruneJournal | None, policy: Policy | None) -> Policy:
    """The policy to prune by: a resumed prune's own; one given must be the same."""
    recorded = journal.past.policy if journal is not None else None
    if not recorded:
        if policy is None:
            raise SettingsError("a prune needs a policy")
        return policy
    planned = Policy.from_json(recorded)
    if policy is not None and policy != planned:
        raise SettingsError(
            f"this prune was planned with {planned}; resume it with that policy (or none), "
            "or start a new prune in another folder"
        )
    return planned


@dataclass(slots=True)
class _Tries:
    attempts: int = 0  # deletes sent
    ambiguous: bool = False  # one may have gone through unseen: look before sending again


@dataclass(slots=True)
class _Lane:
    api: PruneAPI
    limiter: RateLimiter
    slots: anyio.CapacityLimiter


class _Prune:
    """One prune under way: its rows, the lanes that failed, the requests it sent."""

    def __init__(
        self,
        settings: Settings,
        control: RunControl,
        journal: PruneJournal | None,
        on_result: Callable[[PruneResult], None] | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        timeline: Timeline | None = None,
    ) -> None:
        self._settings = settings
        self._control = control
        self._timeline = timeline
        self._lanes: dict[str, _Lane | LightsailError] = {}
        if timeline is not None:
            timeline.rates = self._rates
        self._journal = journal
        self._on_result = on_result
        self._clock = clock
        self._sleep = sleep
        self.results: dict[str, PruneResult] = {}
        self.failures: list[LaneFailure] = []
        self.requests = 0
        self.throttles = 0
        self.seen = 0  # batchcopy's copies listed, in scope or not

    async def run(
        self,
        api: PruneAPI,
        policy: Policy,
        scope: Scope,
        accounts: Sequence[str],
        now: dt.datetime,
        *,
        delete: bool,
    ) -> None:
        journal = self._journal
        resumed = journal is not None and journal.past.plan is not None
        if journal is not None and journal.past.plan is not None:
            plan = journal.past.plan  # a resume: the recorded plan, never a new one
            self.failures = [LaneFailure.from_json(f) for f in journal.past.lanes_failed]
        else:
            found = await self._unless_stopped(self._list(api, scope, accounts))
            if found is None:
                return  # stopped while listing: nothing was decided, nothing to report
            plan = [
                PruneResult.planned(candidate, decision, delete=delete)
                for candidate, decision in decide_prune(found, policy, now)
            ]
            plan.sort(key=lambda result: result.key)
            if journal is not None:
                journal.plan(plan, [failure.to_json() for failure in self.failures])
        todo: list[PruneResult] = []
        for planned in plan:
            done = journal.past.outcomes.get(planned.key) if journal is not None else None
            if done is not None:
                self._settle(done, record=False)
            elif planned.decision == "delete" and delete:
                todo.append(planned)
            else:
                self._settle(planned)
        for result in todo:  # every row is in the report, however the deletes end
            self.results.setdefault(result.key, result)
        if resumed and todo and journal is not None:
            checked = await self._unless_stopped(
                recheck(
                    api,
                    self._guard,
                    todo,
                    plan,
                    journal.past.intended,
                    self._settle,
                    self.failures,
                )
            )
            todo = checked if checked is not None else todo
        if todo and not self._control.stopping.is_set():
            await self._delete_all(api, todo)
        for result in todo:
            # Stopped before its delete was reached (waiting for a slot when a stop with
            # no grace cancelled it, or a stop before the deletes began): said like the rest.
            if self.results[result.key] is result:
                self._settle(self._interrupted(result, _Tries()))

    async def _unless_stopped(self, work: Awaitable[T]) -> T | None:
        """``await work``, or None if the prune is stopped first: reads have nothing to
        finish, so a stop cancels them at once."""
        done: list[T] = []
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await self._control.stopping.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            done.append(await work)
            tg.cancel_scope.cancel()
        return done[0] if done else None

    def _rates(self) -> dict[str, float]:
        """Each target region's delete rate now, requests/s, summed over its lanes."""
        lanes = self._lanes.items()
        return rates_by_region({k: v.limiter.rate for k, v in lanes if isinstance(v, _Lane)})

    def _settle(self, result: PruneResult, *, record: bool = True) -> None:
        """Keep ``result`` as its candidate's row (``record``: this prune's, journaled;
        else an earlier run's, taken from the journal)."""
        self.results[result.key] = result
        if self._timeline is not None:
            region, kind = result.found.snapshot.region, prune_outcome(result.status)
            if record:
                self._timeline.add(region, result.found.account, kind)
            else:
                self._timeline.add_earlier(region, kind)
        if record and self._journal is not None and result.decision == "delete":
            self._journal.outcome(result)
        if self._on_result is not None:
            self._on_result(result)

    async def _list(self, api: PruneAPI, scope: Scope, accounts: Sequence[str]) -> list[Candidate]:
        """Every candidate in scope, lane by lane; a lane that cannot be listed whole is a
        failure, and none of its snapshots is a candidate."""
        regions = [r for r in lightsail_regions() if not scope.regions or r in scope.regions]
        found: list[Candidate] = []
        at_once = anyio.CapacityLimiter(_LISTINGS_AT_ONCE)

        async def lane(account: str, region: str, reached: PruneAPI) -> None:
            async with at_once:
                try:
                    listed = [
                        made
                        async for info in reached.list_snapshots(region, self._guard)
                        if (made := candidate(info, account)) is not None
                    ]
                except LightsailError as exc:
                    self.failures.append(LaneFailure.of(account, region, exc))
                    return
                self.seen += len(listed)
                found.extend(scope.narrow(listed))

        lanes: dict[str, list[str]] = {}
        for account, region in scope.lanes(accounts, regions):
            lanes.setdefault(account, []).append(region)
        async with anyio.create_task_group() as tg:
            for account, in_scope in lanes.items():
                try:
                    reached = await api.account(account)
                except LightsailError as exc:
                    self.failures.append(LaneFailure.of(account, "", exc))
                    continue
                for region in in_scope:
                    tg.start_soon(lane, account, region, reached)
        return found

    async def _delete_all(self, api: PruneAPI, todo: Iterable[PruneResult]) -> None:
        """Delete ``todo`` lane by lane; a gentle stop lets deletes in flight finish within
        the grace period, then cancels them (their rows say so; --resume looks them up)."""
        lanes = self._lanes
        control = self._control
        deleting = anyio.CancelScope()

        async def enforce_grace() -> None:
            await control.stopping.wait()
            for lane in lanes.values():
                if isinstance(lane, _Lane):
                    lane.limiter.halt()  # deletes waiting for their slot are not sent
            with anyio.move_on_after(control.grace):
                await control.cancelling.wait()
            deleting.cancel()

        async def one(lane: _Lane, result: PruneResult) -> None:
            async with lane.slots:
                self._settle(await self._delete(lane, result))

        async with anyio.create_task_group() as watch:
            watch.start_soon(enforce_grace)
            with deleting:
                async with anyio.create_task_group() as tg:
                    for result in todo:
                        lane = lanes.get(result.lane)
                        if lane is None:
                            lane = lanes[result.lane] = await self._lane(api, result)
                        if isinstance(lane, LightsailError):  # its account cannot be reached
                            self._settle(_failed(result, lane, attempts=0))
                        else:
                            tg.start_soon(one, lane, result)
            watch.cancel_scope.cancel()

    async def _lane(self, api: PruneAPI, first: PruneResult) -> _Lane | LightsailError:
        """The lane ``first`` is deleted in: its account's clients (or why they cannot be
        had), its own rate limiter and in-flight cap."""
        settings = self._settings
        try:
            reached = await api.account(first.found.account)
        except LightsailError as exc:
            return exc
        limiter = RateLimiter(
            settings.rate,
            settings.burst,
            max_rate=settings.max_rate if settings.adaptive else None,
            limit=settings.max_rate,
            clock=self._clock,
            sleep=self._sleep,
        )
        return _Lane(
            api=reached,
            limiter=limiter,
            slots=anyio.CapacityLimiter(settings.max_in_flight),
        )

    async def _delete(self, lane: _Lane, planned: PruneResult) -> PruneResult:
        """One candidate's delete, to its final row."""
        tries = _Tries()
        journal = self._journal
        # Sent by an earlier run without a known outcome: look first, never delete blindly.
        tries.ambiguous = journal is not None and planned.key in journal.past.intended
        try:
            return await self._guard(lambda: self._attempt(lane, planned, tries))
        except LightsailError as exc:
            log.warning("%s: delete failed: %s", planned.key, exc)
            return _failed(planned, exc, attempts=tries.attempts)
        except anyio.get_cancelled_exc_class():
            self._settle(self._interrupted(planned, tries))  # no await: nothing to shield
            raise

    async def _attempt(self, lane: _Lane, planned: PruneResult, tries: _Tries) -> PruneResult:
        info = planned.found.snapshot
        if tries.ambiguous:
            found = await lane.api.find_snapshot(info.region, info.name, info.kind)
            if found is None:
                return self._done(planned, tries, PruneStatus.DELETED, LOST)
            if candidate(found, planned.found.account) is None:
                reason = "it no longer carries batchcopy's label; left alone"
                return replace(planned, status=PruneStatus.SKIPPED, reason=reason)
            tries.ambiguous = False  # still there: no earlier delete went through
        if self._control.stopping.is_set():
            return self._interrupted(planned, tries)
        await lane.limiter.acquire()
        if self._control.stopping.is_set():
            return self._interrupted(planned, tries)
        if tries.attempts == 0 and self._journal is not None:
            await self._journal.intent(planned)
        tries.attempts += 1
        self.requests += 1
        sent = self._clock()
        try:
            try:
                operation = await lane.api.delete_snapshot(info.region, info.name, info.kind)
            finally:
                lane.limiter.timed(self._clock() - sent)
        except ThrottledError:
            self.throttles += 1
            lane.limiter.throttled()
            raise
        except TransientError as exc:
            tries.ambiguous |= exc.ambiguous
            raise
        except OperationFailedError:
            # A delete that failed may still have gone through: the snapshot says.
            if await lane.api.find_snapshot(info.region, info.name, info.kind) is None:
                return self._done(planned, tries, PruneStatus.DELETED, "")
            raise
        lane.limiter.succeeded()
        if operation is None:
            # NotFound: gone already, or an answer not to be believed: the snapshot says.
            if await lane.api.find_snapshot(info.region, info.name, info.kind) is not None:
                raise TransientError(
                    "NotFoundException",
                    "the delete was answered NotFound, but the snapshot is still there",
                    ambiguous=False,
                )
            reason = "already gone when its delete was sent"
            return self._done(planned, tries, PruneStatus.GONE, reason)
        return self._done(planned, tries, PruneStatus.DELETED, "", operation)

    def _done(
        self,
        planned: PruneResult,
        tries: _Tries,
        status: PruneStatus,
        reason: str,
        operation: str = "",
    ) -> PruneResult:
        return replace(
            planned,
            status=status,
            reason=reason or planned.reason,
            operation_id=operation,
            attempts=tries.attempts,
        )

    def _interrupted(self, planned: PruneResult, tries: _Tries) -> PruneResult:
        reason = "the prune was stopped before its delete"
        if tries.attempts:
            reason = "the prune was stopped during its delete; --resume looks it up"
        return replace(
            planned,
            status=PruneStatus.NOT_STARTED,
            reason=reason,
            error_code=INTERRUPTED_CODE,
            attempts=tries.attempts,
        )

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        return await guarded(call, self._settings.retry, clock=self._clock, sleep=self._sleep)


def _failed(planned: PruneResult, exc: LightsailError, *, attempts: int) -> PruneResult:
    return replace(
        planned,
        status=PruneStatus.FAILED,
        reason=str(exc),
        error_code=exc.code,
        attempts=attempts,
    )
