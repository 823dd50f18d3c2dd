"""The plan of a run (``batchcopy plan``, ``run --dry-run``): read-only checks, no copy.

For every job: the source exists and its kind is known (a manual snapshot, or an instance
or disk with automatic snapshots); an automatic source has a snapshot with status Success
on the given date, or one at all for "latest"; the target name is free in its region (or
holds a copy of the job's own source snapshot, as :mod:`batchcopy.provenance` proves it,
which a run would skip); and each region answers. Only
read calls are made — one listing per target region, one look-up per distinct source.

The plan counts jobs per target region, the gigabytes they would add and what that costs
a month (Lightsail charges $0.05 per GB-month for snapshots), and lists every problem.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio

from batchcopy.errors import LightsailError
from batchcopy.jobs import AutoSnapshots, CopyJob, SnapshotInfo
from batchcopy.limits import Clock, RateLimiter, Sleep
from batchcopy.memo import Memo
from batchcopy.provenance import Source, conflict, pin
from batchcopy.retry import Guard, paced
from batchcopy.settings import OnExists, Settings

if TYPE_CHECKING:
    from batchcopy.shards import Shard

__all__ = ["GB_MONTH_USD", "Plan", "PlanProblem", "make_plan"]

GB_MONTH_USD = 0.05  # Lightsail's price for snapshot storage
MAX_PROBLEMS = 1000
PLAN_CONCURRENCY = 16

T = TypeVar("T")


class PlanAPI(Protocol):
    """The reads a plan needs, in one account, and the way to another account's;
    :class:`batchcopy.lightsail.LightsailClients` has them."""

    async def account(self, account: str) -> PlanAPI: ...

    async def find_snapshot(self, region: str, name: str) -> SnapshotInfo | None: ...

    def list_snapshots(self, region: str, guard: Guard) -> AsyncIterator[SnapshotInfo]: ...

    async def auto_snapshots(self, region: str, resource: str) -> AutoSnapshots | None:
        """The resource's automatic snapshots; None if there is no such resource."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanProblem:
    """Why one job would not go through, said in the manifest's terms."""

    line: int
    target: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.line}: {self.target}: {self.code}: {self.message}"


@dataclass(slots=True, kw_only=True)
class Plan:
    """What a run of the manifest would do."""

    total: int = 0
    per_region: Counter[str] = field(default_factory=Counter)  # jobs that would copy
    gigabytes: Counter[str] = field(default_factory=Counter)  # per target region
    unknown_size: int = 0  # jobs whose source size could not be read (automatic ones)
    skipped: int = 0  # targets already there, copied from the same source
    copying: int = 0  # of those, still being copied: a run reports them started, not skipped
    problems: list[PlanProblem] = field(default_factory=list)
    more_problems: int = 0

    @property
    def total_gb(self) -> int:
        return sum(self.gigabytes.values())

    @property
    def monthly_cost(self) -> float:
        """Added snapshot storage, in US dollars a month."""
        return round(self.total_gb * GB_MONTH_USD, 2)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add_problem(self, problem: PlanProblem) -> None:
        """Keep problems in manifest line order (jobs are checked side by side, so they are
        found in any order) and, past :data:`MAX_PROBLEMS`, the first lines' ones."""
        bisect.insort(self.problems, problem, key=lambda p: p.line)
        if len(self.problems) > MAX_PROBLEMS:
            self.problems.pop()
            self.more_problems += 1

    def to_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "per_region": dict(sorted(self.per_region.items())),
            "gigabytes": dict(sorted(self.gigabytes.items())),
            "total_gb": self.total_gb,
            "unknown_size": self.unknown_size,
            "monthly_cost_usd": self.monthly_cost,
            "skipped": self.skipped,
            "copying": self.copying,
            "problems": [
                {"line": p.line, "target": p.target, "code": p.code, "message": p.message}
                for p in self.problems
            ],
            "more_problems": self.more_problems,
        }


class _Planner:
    def __init__(self, api: PlanAPI, settings: Settings, clock: Clock, sleep: Sleep) -> None:
        self._api = api
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._budgets: dict[str, RateLimiter] = {}
        self._lookups = Memo()  # listings and sources, read once however many jobs ask
        self.plan = Plan()

    async def _read(self, where: str, call: Callable[[], Awaitable[T]]) -> T:
        """One read on the budget of ``where`` (a region, or account/region: limits are
        the account's), under the retry policy."""
        budget = self._budgets.get(where)
        if budget is None:
            rate = max(self._settings.rate, 5.0)
            budget = self._budgets[where] = RateLimiter(
                rate, max(1, int(rate)), max_rate=rate, clock=self._clock, sleep=self._sleep
            )
        return await paced(budget, call, self._settings.retry, clock=self._clock, sleep=self._sleep)

    async def targets(self, api: PlanAPI, job: CopyJob) -> dict[str, SnapshotInfo] | LightsailError:
        """The snapshots in ``job``'s lane (its target region, in its account), listed once."""
        region = job.target_region

        async def listing() -> object:
            found: dict[str, SnapshotInfo] = {}
            try:
                guard: Guard = lambda call: self._read(job.lane, call)  # noqa: E731
                async for info in api.list_snapshots(region, guard):
                    found[info.name] = info
            except LightsailError as exc:
                return exc
            return found

        return await self._lookups.get(("targets", job.lane), listing)  # type: ignore[return-value]

    async def check(self, job: CopyJob) -> None:
        problem = self._problem_for(job)
        try:
            api = await self._api.account(job.account)
        except LightsailError as exc:
            problem(exc.code, exc.message)
            return
        existing = await self.targets(api, job)
        if isinstance(existing, LightsailError):
            problem(
                "RegionUnavailable",
                f"{job.target_region} did not answer: {existing.code}: {existing.message}",
            )
            return
        try:
            pinned, source = await self._source(api, job)
        except LightsailError as exc:
            problem(exc.code, exc.message)
            return
        target = existing.get(job.target_snapshot_name)
        if target is not None:
            # The same rules a run applies to a target that is already there.
            code, message = conflict(pinned, target, source)
            if code:
                problem(code, message)
            elif target.state == "error":
                problem("TargetFailed", f"{job.target} exists in state error; delete it first")
            elif self._settings.on_exists is OnExists.FAIL:
                problem("TargetExists", f"{job.target} already exists (--on-exists fail)")
            else:
                self.plan.skipped += 1
                self.plan.copying += target.state not in ("available", "completed")
            return
        self.plan.per_region[job.target_region] += 1
        if source.size_in_gb is None:
            self.plan.unknown_size += 1
        else:
            self.plan.gigabytes[job.target_region] += source.size_in_gb

    async def _source(self, api: PlanAPI, job: CopyJob) -> tuple[CopyJob, Source]:
        """The job as a run would send it (use_latest pinned to a date) and its source
        snapshot; raises LightsailError with a problem's code and message when it will not
        do."""
        region = job.source_region
        where = f"{job.account}/{region}" if job.account else region
        if job.source_snapshot_name:
            name = job.source_snapshot_name

            async def find() -> object:
                try:
                    return await self._read(where, lambda: api.find_snapshot(region, name))
                except LightsailError as exc:
                    return exc

            found = await self._lookups.get(("snapshot", job.account, region, name), find)
            if isinstance(found, LightsailError):
                raise found
            if not isinstance(found, SnapshotInfo):
                raise LightsailError("SourceNotFound", f"{region}:{name} does not exist")
            if found.state not in ("available", "completed"):
                raise LightsailError(
                    "SourceNotReady",
                    f"{region}:{name} is {found.state or 'not ready'}, not copyable",
                )
            return job, Source.of(found)
        resource = job.source_resource_name or ""

        async def autos() -> object:
            try:
                return await self._read(where, lambda: api.auto_snapshots(region, resource))
            except LightsailError as exc:
                return exc

        found_autos = await self._lookups.get(("auto", job.account, region, resource), autos)
        if isinstance(found_autos, LightsailError):
            raise found_autos
        if found_autos is None:
            raise LightsailError("SourceNotFound", f"no instance or disk {resource} in {region}")
        assert isinstance(found_autos, AutoSnapshots)
        pinned = pin(job, found_autos)
        source = Source.automatic(pinned, found_autos)
        if source is not None:
            return pinned, source
        if job.use_latest:
            raise LightsailError(
                "NoAutoSnapshot", f"{resource} in {region} has no restorable automatic snapshot"
            )
        have = ", ".join(found_autos.restorable()) or "none"
        raise LightsailError(
            "NoAutoSnapshot",
            f"{resource} in {region} has no restorable automatic snapshot dated "
            f"{job.restore_date} (has: {have})",
        )

    def _problem_for(self, job: CopyJob) -> Callable[[str, str], None]:
        def add(code: str, message: str) -> None:
            self.plan.add_problem(
                PlanProblem(line=job.line, target=job.target, code=code, message=message)
            )

        return add


async def make_plan(
    jobs: Iterable[CopyJob],
    settings: Settings,
    *,
    api: PlanAPI | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
    shard: Shard | None = None,
) -> Plan:
    """Check every job with read-only calls and return the plan; nothing is copied.

    ``shard``: only the jobs of that shard's lanes (:mod:`batchcopy.shards`)."""
    import contextlib

    if shard is not None:
        from batchcopy.manifest import Manifest
        from batchcopy.shards import select, select_jobs

        if isinstance(jobs, Manifest):
            jobs = select(jobs, shard)[0].jobs()
        else:
            jobs = select_jobs(list(jobs), shard)[0]
        extra = f"{settings.user_agent_extra} {shard.tag}".strip()
        settings = dataclasses.replace(settings, user_agent_extra=extra)

    async with contextlib.AsyncExitStack() as stack:
        if api is None:
            from batchcopy.lightsail import LightsailClients  # aiobotocore is slow to import

            clients = await stack.enter_async_context(LightsailClients(settings))
        planner = _Planner(api or clients, settings, clock, sleep)
        slots = anyio.Semaphore(PLAN_CONCURRENCY)

        async def check(job: CopyJob) -> None:
            try:
                await planner.check(job)
            finally:
                slots.release()

        async with anyio.create_task_group() as tg:
            for job in jobs:
                planner.plan.total += 1
                await slots.acquire()
                tg.start_soon(check, job)
        return planner.plan
