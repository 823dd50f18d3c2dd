"""The async API: run copy jobs and get a report, or a stream of results as they finish.

    import batchcopy

    manifest = batchcopy.load_manifest("jobs.csv")
    report = await batchcopy.copy_snapshots(manifest, batchcopy.Settings(rate=10))

    async with batchcopy.stream_copies(jobs, settings) as results:
        async for result in results:
            print(result.job.target, result.status)

Stopping: :meth:`RunControl.stop` stops dispatch and lets calls in flight finish within the
grace period, then cancels them; :meth:`RunControl.cancel` (or cancelling the caller)
cancels at once. Either way the report and journal are written; jobs never sent are
``not_started``. Credentials and the endpoint come from aiobotocore's usual chain unless
:class:`Settings` names them. asyncio is the backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchcopy.engine import Engine, RegionCounters, SnapshotAPI
from batchcopy.errors import (
    BatchcopyError,
    CredentialsError,
    EndpointUnreachableError,
    ManifestError,
    Problem,
    ReportDirError,
    SettingsError,
    unwrap,
)
from batchcopy.html_report import html_report_or_warn
from batchcopy.jobs import CopyJob, JobResult, Sent, Status, rates_by_region
from batchcopy.journal import JOURNAL_NAME, LOCK_NAME, Journal, check_account, job_digest
from batchcopy.manifest import Manifest
from batchcopy.ratestate import RateState, scope_of
from batchcopy.report import Report, ReportWriter, prepare_report_dir
from batchcopy.settings import Settings
from batchcopy.shards import Shard, refuse_other_report, select, select_jobs
from batchcopy.streams import each
from batchcopy.timeline import Timeline
from batchcopy.waiter import Waiter

__all__ = ["RunControl", "copy_snapshots", "stream_copies"]

log = logging.getLogger("batchcopy")


class RunControl:
    """Stops a run from outside: gently with :meth:`stop`, at once with :meth:`cancel`.

    ``grace`` is how long calls in flight may take to finish after :meth:`stop`.
    ``exit_code`` is what an interrupted run reports (130 for SIGINT, 143 for SIGTERM).
    ``report`` is the run's report once written, also when the run then raises (unusable
    credentials mid-run, say): what the run did, with the exit code that error means.
    """

    def __init__(self, *, grace: float = 30.0) -> None:
        self.grace = grace
        self.stopping = anyio.Event()
        self.cancelling = anyio.Event()
        self.exit_code: int | None = None
        self.report: Report | None = None
        self._engine: Engine | None = None
        self._waiter: Waiter | None = None

    def __repr__(self) -> str:
        state = (
            "cancelling"
            if self.cancelling.is_set()
            else "stopping"
            if self.stopping.is_set()
            else "running"
        )
        return f"<RunControl {state} grace={self.grace}s>"

    @property
    def rates(self) -> dict[str, float]:
        """Each target region's CopySnapshot rate right now, requests/s (empty before the
        run has started a region)."""
        return self._engine.rates if self._engine is not None else {}

    @property
    def counters(self) -> dict[str, RegionCounters]:
        """Each target region's copy requests sent, copies accepted, throttled requests and
        copies being followed (``wait``), counted as they happen, long before the jobs
        finish (empty before the run has started a region)."""
        if self._engine is None:
            return {}
        copying = self._waiter.pending if self._waiter is not None else {}
        return {
            region: dataclasses.replace(counts, copying=copying.get(region, 0))
            for region, counts in self._engine.counters.items()
        }

    def stop(self, exit_code: int = 130) -> None:
        """Send nothing new; give calls in flight ``grace`` seconds, then cancel them."""
        if self.exit_code is None:
            self.exit_code = exit_code
        self.stopping.set()

    def cancel(self, exit_code: int = 130) -> None:
        """Cancel everything now."""
        self.stop(exit_code)
        self.cancelling.set()


def _accounts_of(jobs: Manifest | Iterable[CopyJob]) -> Collection[str]:
    """The accounts the jobs name ("" for the base credentials'), over all of them."""
    if isinstance(jobs, Manifest):  # it names accounts only when some row names one
        return jobs.per_account or ({"": jobs.total} if jobs.total else {})
    return {job.account for job in jobs}


async def _refuse_written_twice(settings: Settings, accounts: Collection[str]) -> None:
    """SettingsError if rows name the base credentials' account by its id while others
    name no account: one account written two ways (see :func:`sessions.written_twice`)."""
    from batchcopy.sessions import written_twice, written_twice_problem

    if twice := await written_twice(settings, accounts):
        raise SettingsError(written_twice_problem(twice), field="account")


async def _check_account(journal: Journal, settings: Settings, *, force: bool) -> None:
    """Refuse (unless ``force``) to resume a journal whose rows without an account ran in
    another account than the credentials' now, or when STS cannot say whose they are."""
    recorded = journal.past.base_account
    if not recorded:
        log.warning(
            "%s does not say which account its rows without an account ran in (an older "
            "batchcopy wrote it, or STS did not answer then): the resume is not checked",
            journal.path,
        )
        return
    if not force:
        check_account(journal.path, recorded, await _base_account(settings))


async def _base_account(settings: Settings) -> str:
    """The base credentials' account, for the journal of a run with rows that name none
    (a resume with another account's credentials would copy them there); "" when STS
    cannot say: a new journal then records none, and a resume is refused."""
    from batchcopy.sessions import asked_identity

    try:
        return (await asked_identity(settings))["account"]
    except EndpointUnreachableError:
        # STS at the run's own endpoint, closed: the run ends on its first request anyway.
        log.debug("nothing listens where STS was asked whose the credentials are")
        return ""
    except CredentialsError:
        raise  # the run could not go on either
    except (BatchcopyError, KeyError) as exc:
        log.warning("the base credentials' account is not known (%s): not recorded", exc)
        return ""


@contextlib.asynccontextmanager
async def stream_copies(
    jobs: Iterable[CopyJob],
    settings: Settings | None = None,
    *,
    control: RunControl | None = None,
    api: SnapshotAPI | None = None,
    shard: Shard | None = None,
) -> AsyncIterator[AsyncIterator[JobResult]]:
    """Run ``jobs``; yield an async iterator of their results, each as it finishes.

    Leaving the block early cancels the jobs still running. ``api`` replaces the real
    Lightsail clients (for a different backend). ``shard``: only that shard's lanes.
    """
    if not isinstance(jobs, Manifest):  # a manifest has refused them itself
        jobs = list(jobs)
        _refuse_shared_targets(jobs)
    settings = settings or Settings()
    if api is None:
        await _refuse_written_twice(settings, _accounts_of(jobs))
    if shard is not None:
        if isinstance(jobs, Manifest):
            jobs = select(jobs, shard)[0].jobs()
        else:
            jobs = select_jobs(list(jobs), shard)[0]
        settings = _tagged(settings, shard)
    async with _running(jobs, settings, control or RunControl(), api) as live:
        yield live.results


# A run keeps thousands of requests' objects alive at once (each open job's coroutines,
# its request and answer), more with many accounts (lanes, their limiters, streams and
# tasks). A young generation smaller than that is collected over and over only to find its
# objects still in use: at the default threshold (700) the collector took a sixth of a
# 300-account run's CPU, at 10,000 still 3.8 s of 36 s (2.6 s of 32 s in one account), at
# 100,000 0.5 s (0.4 s) with the same peak memory (benchmarks/accounts.py, 300 accounts x
# 3 regions x 20 jobs). Garbage cycles wait a little longer to be freed: a few MB.
_RUN_GC_THRESHOLD = 100_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the collector's first threshold for the run, and put it back after (left as
    it is when the program set it higher, or turned collection off)."""
    first, second, third = gc.get_threshold()
    if first == 0 or first >= _RUN_GC_THRESHOLD:
        yield
        return
    gc.set_threshold(_RUN_GC_THRESHOLD, second, third)
    try:
        yield
    finally:
        gc.set_threshold(first, second, third)


@contextlib.asynccontextmanager
async def _running(
    jobs: Iterable[CopyJob],
    settings: Settings,
    control: RunControl,
    api: SnapshotAPI | None,
    *,
    journal: Journal | None = None,
    intended: Container[str] = frozenset(),
    timeline: Timeline | None = None,
) -> AsyncIterator[_Live]:
    """The engine (and, with ``settings.wait``, the waiter behind it) running in a task
    group, with the grace-period watch of ``control``; ``timeline`` records requests,
    throttles, rates and wait times as they come."""
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_fewer_collections())
        if api is None:
            from batchcopy.lightsail import LightsailClients  # aiobotocore is slow to import

            api = await stack.enter_async_context(LightsailClients(settings))
        memory = _rate_state(settings)
        engine = Engine(
            api,
            settings,
            journal=journal,
            intended=intended,
            stop=control.stopping,
            remembered=memory.load() if memory else None,
        )
        if memory is not None:
            # Also when the run ends in an error: what its lanes learned still holds.
            stack.callback(lambda: memory.save(engine.learned))
        control._engine = engine
        if timeline is not None:
            if (watch := getattr(api, "watch", None)) is not None:
                watch(timeline)
            timeline.rates = lambda: rates_by_region(engine.rates)
        waiter = (
            Waiter(api, settings, stop=control.stopping, timeline=timeline)
            if settings.wait
            else None
        )
        control._waiter = waiter
        send, receive = anyio.create_memory_object_stream[JobResult](4 * settings.max_in_flight)
        engine_scope, watch_scope = anyio.CancelScope(), anyio.CancelScope()

        async def run_engine() -> None:
            with engine_scope:
                if waiter is None:
                    await engine.run(jobs, send)
                else:
                    started, followed = anyio.create_memory_object_stream[JobResult](
                        4 * settings.max_in_flight
                    )
                    async with anyio.create_task_group() as pipeline:
                        pipeline.start_soon(engine.run, jobs, started)
                        pipeline.start_soon(waiter.run, followed, send)
            watch_scope.cancel()

        async def enforce_grace() -> None:
            with watch_scope:
                await control.stopping.wait()
                with anyio.move_on_after(control.grace):
                    await control.cancelling.wait()
                engine_scope.cancel()  # the results stream closes; the caller sees its end

        try:
            async with anyio.create_task_group() as tg, receive:
                tg.start_soon(run_engine)
                tg.start_soon(enforce_grace)
                yield _Live(receive, engine, waiter)
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Unusable credentials end the run wherever they surface: raise one, plainly;
            # and an error of the caller's own (in its loop, or on_result) comes out as itself.
            error = unwrap(group, CredentialsError) or unwrap(group, BaseException)
            if error is None:
                raise
            raise error from None


@dataclass(slots=True)
class _Live:
    """A running run: its results, and what engine and waiter know if it is cut short."""

    results: MemoryObjectReceiveStream[JobResult]
    engine: Engine
    waiter: Waiter | None

    def unfinished(self) -> tuple[dict[str, Sent], dict[str, JobResult]]:
        """Targets sent with no known outcome (with the requests sent for each, and the
        date a use_latest job was sent for), and results the engine handed on that were
        never reported (cut off on their way, or copies still being followed: those are
        in_progress, as a gentle stop reports them)."""
        known = {
            target: dataclasses.replace(result, status=Status.IN_PROGRESS)
            if self.waiter is not None and result.status is Status.STARTED
            else result
            for target, result in self.engine.handed_on.items()
        }
        return self.engine.unsettled, known


async def copy_snapshots(
    jobs: Manifest | Iterable[CopyJob],
    settings: Settings | None = None,
    *,
    report_dir: Path | str | None = None,
    resume: bool = False,
    force: bool = False,
    control: RunControl | None = None,
    on_result: Callable[[JobResult], None] | None = None,
    keep_results: bool = True,
    api: SnapshotAPI | None = None,
    shard: Shard | None = None,
) -> Report:
    """Run every job and return the report; with ``report_dir``, also write its files.

    ``jobs`` is a :class:`Manifest` (streamed, read again at the end to account for jobs
    that never ran) or any iterable of jobs. With ``report_dir`` a journal records each
    copy's intent before it is sent; ``resume`` continues the run recorded there: finished
    jobs are not run again, jobs sent without a known outcome are looked up, never re-sent
    blindly. A journal of another manifest is refused unless ``force``. ``on_result``
    sees each result as it arrives. The report is written even when the run is stopped or
    cancelled, and when the run ends with an error after it started; a run that ends with
    :class:`CredentialsError` before sending anything leaves no report (and no folder,
    if it made it).

    ``shard`` runs only that shard's lanes (:mod:`batchcopy.shards`): the report's total
    and rows are the shard's, and its summary and journal name the shard and assignment.
    """
    assignment = None
    settings = settings or Settings()
    if not isinstance(jobs, Manifest):  # a manifest has refused them itself
        jobs = list(jobs)
        _refuse_shared_targets(jobs)
    named = _accounts_of(jobs)
    if api is None:  # before a shard is chosen: the two ways may fall in different shards
        await _refuse_written_twice(settings, named)
    if isinstance(jobs, Manifest):
        if shard is not None:
            jobs, assignment = select(jobs, shard)
        name, total, sha256, stream = jobs.name, jobs.total, jobs.sha256, jobs.jobs
    else:
        listed = jobs
        rows = "\n".join(json.dumps(j.to_row(), sort_keys=True) for j in listed)
        sha256 = hashlib.sha256(rows.encode()).hexdigest()
        if shard is not None:
            listed, assignment = select_jobs(listed, shard)
        name, total, stream = "<api>", len(listed), lambda: iter(listed)
    part = (str(shard), assignment.digest) if shard and assignment else ("", "")
    control = control or RunControl()
    if resume and report_dir is None:
        raise ReportDirError("resuming needs the report folder of the run to resume")
    if report_dir is not None and not resume:
        refuse_other_report(Path(report_dir), sha256, *part)
    if shard is not None:
        settings = _tagged(settings, shard)
    made = _folder_to_make(Path(report_dir), resume=resume) if report_dir is not None else None
    directory = prepare_report_dir(Path(report_dir)) if report_dir is not None else None
    journal = None
    run_id = settings.run_id or _new_run_id()
    try:
        if directory is not None:
            # Rows that name no account run in the base credentials' one: a new journal
            # says which, a resume is checked against it (asked once the folder and the
            # journal are known to be usable: a refusal sends nothing).
            mine = jobs if isinstance(jobs, Manifest) else listed  # this shard's, if one
            unnamed = api is None and "" in _accounts_of(mine)
            base = await _base_account(settings) if unnamed and not resume else ""
            journal = Journal.open(
                directory,
                manifest=name,
                manifest_sha256=sha256,
                resume=resume,
                force=force,
                run_id=run_id,
                defaults=_defaults_of(jobs),
                shard=part[0],
                assignment_digest=part[1],
                base_account=base,
            )
            run_id = journal.past.run_id  # a resume keeps the first run's id
            if resume and unnamed:
                await _check_account(journal, settings, force=force)
        writer = ReportWriter(
            directory,
            manifest=name,
            manifest_sha256=sha256,
            total=total,
            keep_results=keep_results,
            run_id=run_id,
            shard=part[0],
            assignment_digest=part[1],
        )
    except BaseException:
        if journal is not None:
            journal.close()
        _unmake(directory, made=made, journal=journal, resume=resume)
        raise
    settings = dataclasses.replace(settings, run_id=run_id)
    finished = journal.past.finished if journal else {}
    intended = journal.past.intended if journal else set()
    live: _Live | None = None
    ended_by: BaseException | None = None
    said: set[tuple[str, str]] = set()  # errors logged in full once
    try:
        pending = (job for job in stream() if finished.get(job.target) != job_digest(job))
        running = _running(
            pending,
            settings,
            control,
            api,
            journal=journal,
            intended=intended,
            timeline=writer.timeline,
        )
        async with running as live:
            async for result in each(live.results):
                live.engine.handed_on.pop(result.job.target, None)
                _log_result(result, said)
                if journal is not None:
                    journal.outcome(result)
                writer.add(result)
                if on_result is not None:
                    on_result(result)
    except BaseException as exc:
        ended_by = exc
        raise
    finally:
        # Synchronous from here on, so no cancellation can cut the report short.
        try:
            unsettled, known = live.unfinished() if live else ({}, {})
            if journal is not None:
                journal.close()
            if (
                isinstance(ended_by, CredentialsError)
                and not writer.counts
                and not unsettled
                and not known
            ):
                # Nothing was sent: the run never started, so it leaves no report behind.
                writer.close()
                _unmake(directory, made=made, journal=journal, resume=resume)
            else:
                earlier = journal.earlier_results(known) if journal is not None else None
                try:
                    report = control.report = writer.finish(
                        _readable(stream()),
                        earlier=earlier if earlier is not None else known,
                        interrupted=unsettled,
                        exit_code=_exit_code(ended_by, control),
                        rates=live.engine.rates if live else None,
                        start_rate=settings.rate,
                        start_rates=live.engine.starts if live else None,
                        max_rate=settings.max_rate,
                        throttled_by_action=live.engine.throttled_by_action if live else None,
                        own=known,
                    )
                finally:
                    if earlier is not None:
                        earlier.close()
        finally:
            writer.close()  # only does something if finishing failed
            if directory is not None and control.report is not None:
                html_report_or_warn(directory)  # last: a view of the files written above
    return report


def _tagged(settings: Settings, shard: Shard) -> Settings:
    """``settings`` whose requests say which shard sent them (in the User-Agent)."""
    extra = f"{settings.user_agent_extra} {shard.tag}".strip()
    return dataclasses.replace(settings, user_agent_extra=extra)


def _rate_state(settings: Settings) -> RateState | None:
    """The rate state file the run remembers in, if any, as seen from where it calls."""
    if settings.rate_state is None:
        return None
    scope = scope_of(settings.endpoint_url, settings.profile)
    return RateState(settings.rate_state, scope=scope, max_age=settings.rate_state_max_age)


def _exit_code(ended_by: BaseException | None, control: RunControl) -> int | None:
    """The exit code a run reports: set by the error that ended it (unusable credentials:
    253; the manifest changing under the run: 1), else by a signal, else (None) by its
    results."""
    if isinstance(ended_by, CredentialsError):
        return CredentialsError.exit_code
    if isinstance(ended_by, BatchcopyError):
        return 1
    return control.exit_code


def _defaults_of(jobs: object) -> dict[str, str]:
    """The regions a manifest was given for rows that leave them out: part of what its
    jobs are, so a resume must give the same."""
    if not isinstance(jobs, Manifest):
        return {}
    given = {"source_region": jobs.source_region, "target_region": jobs.target_region}
    return {field: value for field, value in given.items() if value}


def _refuse_shared_targets(jobs: list[CopyJob]) -> None:
    """Jobs given in code obey the manifest's rule: each target once (two jobs sharing one
    would race for it, and the report keys results by target)."""
    first: dict[str, int] = {}
    problems = []
    for job in jobs:
        if job.target in first:
            line = first[job.target]
            message = f"{job.target} is already the target of line {line}; targets must be unique"
            problems.append(Problem(file="<api>", line=job.line, field="target", message=message))
        else:
            first[job.target] = job.line
    if problems:
        raise ManifestError(problems)


def _folder_to_make(directory: Path, *, resume: bool) -> Path | None:
    """The outermost folder of ``directory``'s path that the run is to make (None: it is
    there); a resume needs it there already."""
    if directory.exists():
        return None
    if resume:
        raise ReportDirError(f"{directory}: no such folder; give the report folder to resume")
    missing = directory.absolute()
    while not missing.parent.exists():
        missing = missing.parent
    return missing


def _unmake(
    directory: Path | None, *, made: Path | None, journal: Journal | None, resume: bool
) -> None:
    """Take back what a run that never started wrote: only with its own journal open is
    anything in the folder its own (another run's journal there refused this one, and its
    files are left alone): the row files, and the journal unless resumed (a resumed one
    holds the earlier runs). Then the folders the run made, if they are empty now."""
    if directory is None:
        return
    if journal is not None:
        names = [f"{name}.partial" for name in ("results.jsonl", "results.csv", "retry.csv")]
        if not resume:
            names += [JOURNAL_NAME, LOCK_NAME]
        for name in names:
            if not (directory / name).is_dir():  # a folder in a file's place is not the run's
                (directory / name).unlink(missing_ok=True)
    if made is not None:
        folder = directory.absolute()
        with contextlib.suppress(OSError):  # not empty: someone else put something there
            while True:
                folder.rmdir()
                if folder == made:
                    break
                folder = folder.parent


_ERRORS_REMEMBERED = 1000  # distinct errors logged once each; beyond, every one is logged


def _log_result(result: JobResult, said: set[tuple[str, str]]) -> None:
    """One log line per finished job, with its manifest line and target as fields. A
    failure is a warning the first time its error is seen; the rows it repeats on (every
    row of an account whose role cannot be assumed, say) say only its code, at info level:
    each row has it in full in the report."""
    level = logging.WARNING if result.status == "failed" else logging.INFO
    job = result.job
    detail = f" ({result.error_code}: {result.error_message})" if result.error_code else ""
    error = (result.error_code, result.error_message)
    if level == logging.WARNING and error in said:
        level, detail = logging.INFO, f" ({result.error_code}, as before)"
    elif level == logging.WARNING and len(said) < _ERRORS_REMEMBERED:
        said.add(error)
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "line %d: %s %s%s",
        job.line,
        job.target,
        result.status.value,
        detail,
        extra={
            "fields": {
                "line": job.line,
                "target": job.target,
                "status": result.status.value,
                "attempts": result.attempts,
                "error_code": result.error_code,
            }
        },
    )


def _readable(jobs: Iterable[CopyJob]) -> Iterator[CopyJob]:
    """The jobs as far as they can still be read: a manifest changed during the run must not
    also cost the report of what was done."""
    try:
        yield from jobs
    except ManifestError as exc:
        log.error("the manifest changed during the run; the report lacks rows after: %s", exc)


def _new_run_id() -> str:
    """A run id for the batchcopy:run-id tag: when, and a random part to tell runs apart."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
