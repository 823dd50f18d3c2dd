"""A run under way: progress on stderr, the signals that stop it, and the exit its errors make."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections import Counter
from typing import TYPE_CHECKING

import typer

from batchcopy.cli.exits import (
    EXIT_CREDENTIALS,
    EXIT_USAGE,
    _fail,
    _unusable,
    _unwritten_metrics,
    _write_metrics,
)
from batchcopy.cli.render import _console
from batchcopy.errors import (
    BatchcopyError,
    CredentialsError,
    ManifestError,
    StorageError,
    unwrap,
)
from batchcopy.jobs import BASE_ACCOUNT, lane_parts, rates_by_region

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from anyio.abc import TaskStatus
    from rich.progress import Progress, TaskID

    from batchcopy.api import RunControl
    from batchcopy.engine import RegionCounters
    from batchcopy.jobs import JobResult
    from batchcopy.manifest import Manifest
    from batchcopy.report import Report

PLAIN_PROGRESS_EVERY = 5.0  # seconds between status lines when stderr is not a terminal
SLOWEST_SHOWN = 5  # accounts with the most jobs left, in a status line of a run over accounts


def _run_with_progress(
    go: Callable[[_Progress, RunControl], Awaitable[Report]],
    manifest: Manifest,
    *,
    quiet: bool,
    grace: float,
    metrics_file: Path | None = None,
) -> Report:
    """Run ``go`` under the progress display and the signal watch; return its report.

    A run that ends with an error exits with the code its report (if one was written: the
    run had started) says; that report's metrics are written too."""
    import anyio

    from batchcopy.api import RunControl

    controls: list[RunControl] = []

    def failed(message: str, code: int) -> typer.Exit:
        report = controls[0].report if controls else None
        if report is None:
            return _fail(message, code)
        if metrics_file is not None:
            _unwritten_metrics.pop("path", None)
            _write_metrics(report, metrics_file)
        return _fail(message, report.exit_code)

    async def main() -> Report:
        control = RunControl(grace=grace)
        controls.append(control)
        progress = _Progress(manifest, control, quiet=quiet)
        async with anyio.create_task_group() as tg, progress:
            # Watching before go() starts: it makes the report folder and journal at once,
            # and a signal then must stop the run, not kill it before its report exists.
            await tg.start(_watch_signals, control, progress)
            tg.start_soon(progress.keep_fresh)
            report = await go(progress, control)
            tg.cancel_scope.cancel()
        return report

    try:
        try:
            return anyio.run(main, backend="asyncio")
        except BaseExceptionGroup as group:
            if (error := unwrap(group, BatchcopyError)) is None:
                raise
            raise error from None
    except CredentialsError as exc:
        raise failed(_unusable(exc), EXIT_CREDENTIALS) from None
    except ManifestError as exc:
        # It passed validation before the run: it changed while the run was reading it.
        message = (
            f"batchcopy: the manifest changed during the run:\n{exc}\n"
            "The report holds what was done; fix the manifest and run again with --resume."
        )
        raise failed(message, 1) from None
    except StorageError as exc:  # a full disk mid-run: what was sent is in the journal
        raise failed(f"batchcopy: {exc}", 1) from None
    except BatchcopyError as exc:
        raise failed(f"batchcopy: {exc}", EXIT_USAGE) from None


async def _watch_signals(
    control: RunControl, progress: _Progress, *, task_status: TaskStatus[None]
) -> None:
    """First SIGINT/SIGTERM: stop gently; a second one: cancel now. Started (for
    ``tg.start``) once the handlers are installed."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if control.stopping.is_set():
                progress.say("batchcopy: cancelling now; writing the report and journal")
                control.cancel(128 + signum)
                return
            name = signal.Signals(signum).name
            again = "press Ctrl-C" if signum == signal.SIGINT else f"send {name}"
            progress.say(
                f"batchcopy: stopping; calls in flight get up to {control.grace:g} s "
                f"({again} again to cancel now)"
            )
            control.stop(128 + signum)


class _Progress:
    """Progress on stderr: on a terminal, live bars (one per target region and one overall:
    done/total, jobs/s, the region's current request rate, copy requests sent and accepted,
    throttles, ETA); otherwise a plain status line every few seconds, for CI logs and cron
    mail. With JSON logs, the status lines and one-off messages are JSON records too.

    Requests sent, copies accepted and throttles are read from the run as they happen
    (:attr:`RunControl.counters`), not from finished jobs, so a long ``--wait`` or a throttle
    storm shows while no job has finished yet."""

    def __init__(self, manifest: Manifest, control: RunControl, *, quiet: bool) -> None:
        from batchcopy.logs import stderr_format

        self._total = manifest.total
        self._per_region = dict(manifest.per_region)
        self._control = control
        self._quiet = quiet
        self._json = stderr_format() == "json"
        self._console = _console(stderr=True)
        self._live = not quiet and not self._json and self._console.is_terminal
        self._counts: Counter[str] = Counter()
        self._done: Counter[str] = Counter()  # by target region
        self._per_account = dict(manifest.per_account)
        self._done_by_account: Counter[str] = Counter()
        self._started = time.monotonic()
        self._last_line = self._started
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    async def __aenter__(self) -> _Progress:
        if self._live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            bars = Progress(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TextColumn("ETA {task.fields[eta]}"),
                console=self._console,
                transient=False,
            )
            self._tasks = {
                region: bars.add_task(region, total=count, note="", eta=_eta_text(None))
                for region, count in self._per_region.items()
            }
            self._tasks[""] = bars.add_task("all", total=self._total, note="", eta=_eta_text(None))
            bars.start()
            self._bars = bars
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._notes()
            self._bars.stop()
        elif not self._quiet and exc[0] is None:  # an error ends a run in its one line
            self._line()

    async def keep_fresh(self) -> None:
        """Refresh counts, rates and jobs/s every second, and print a plain line when it is
        due, whether or not jobs are finishing (a long --wait stays visible)."""
        import anyio

        while True:
            await anyio.sleep(1.0)
            if self._bars is not None:
                self._notes()
            elif not self._quiet and time.monotonic() - self._last_line >= PLAIN_PROGRESS_EVERY:
                self._line()

    def add(self, result: JobResult) -> None:
        region = result.job.target_region
        self._counts[result.status] += 1
        self._done[region] += 1
        self._done_by_account[result.job.account] += 1
        if self._bars is not None:
            self._bars.advance(self._tasks[region])
            self._bars.advance(self._tasks[""])

    def say(self, message: str) -> None:
        """A one-off message that does not garble the live display."""
        if self._bars is not None:
            self._bars.console.print(message, highlight=False)
        else:
            from batchcopy.logs import say

            say(message, level="warning")

    def _notes(self) -> None:
        assert self._bars is not None
        elapsed = max(1e-9, time.monotonic() - self._started)
        rates, counters = _by_region(self._control.rates, self._control.counters)
        for region, task in self._tasks.items():
            if not region:
                continue
            counts = counters.get(region)
            done = self._done[region]
            copying = counts.copying if counts else 0
            rate = f"{rates[region]:6.1f} req/s" if region in rates else " " * 12
            note = f"{done / elapsed:6.1f} jobs/s  {rate}  " + _activity(
                counts.sent if counts else 0,
                counts.accepted if counts else 0,
                copying,
                counts.throttled if counts else 0,
            )
            eta = self._eta(done, self._per_region[region], copying, elapsed)
            self._bars.update(task, note=note, eta=self._eta_text(eta))
        done, copying = self._done.total(), sum(c.copying for c in counters.values())
        note = f"{done / elapsed:6.1f} jobs/s  {self._counts['failed']} failed  " + _activity(
            sum(c.sent for c in counters.values()),
            sum(c.accepted for c in counters.values()),
            copying,
            sum(c.throttled for c in counters.values()),
        )
        eta = self._eta(done, self._total, copying, elapsed)
        self._bars.update(self._tasks[""], note=note, eta=self._eta_text(eta))

    def _line(self) -> None:
        from batchcopy.logs import say

        self._last_line = now = time.monotonic()
        elapsed = max(1e-9, now - self._started)
        counters = _by_region({}, self._control.counters)[1]
        done = self._done.total()
        sent = sum(c.sent for c in counters.values())
        accepted = sum(c.accepted for c in counters.values())
        copying = sum(c.copying for c in counters.values())
        throttled = sum(c.throttled for c in counters.values())
        failed = self._counts["failed"]
        eta = self._eta(done, self._total, copying, elapsed)
        copying_note = f" ({copying} copying)" if copying else ""
        behind = self._behind() if self._per_account else {}
        behind_note = "; most left: " + ", ".join(f"{a} {n}" for a, n in behind.items())
        say(
            f"batchcopy: {done} of {self._total} done, {sent} sent, {accepted} accepted"
            f"{copying_note}, {failed} failed, {throttled} throttled, "
            f"{done / elapsed:.1f} jobs/s, ETA {self._eta_text(eta)}"
            f"{behind_note if behind else ''}",
            logger="batchcopy.progress",
            fields={
                "done": done,
                "total": self._total,
                "failed": failed,
                "sent": sent,
                "accepted": accepted,
                "copying": copying,
                "throttled": throttled,
                "jobs_per_second": round(done / elapsed, 2),
                "eta_seconds": None if eta is None else round(eta),
                "stopping": self._control.stopping.is_set(),
                "regions": {
                    region: {"done": self._done[region], **dataclasses.asdict(counts)}
                    for region, counts in counters.items()
                },
                **({"accounts_behind": behind} if self._per_account else {}),
            },
        )

    def _behind(self) -> dict[str, int]:
        """The accounts with the most jobs left (at most SLOWEST_SHOWN), jobs left each."""
        left = {
            account or BASE_ACCOUNT: total - self._done_by_account[account]
            for account, total in self._per_account.items()
            if total > self._done_by_account[account]
        }
        return dict(sorted(left.items(), key=lambda item: -item[1])[:SLOWEST_SHOWN])

    def _eta(self, done: int, total: int, copying: int, elapsed: float) -> float | None:
        """None once the run is stopping: what is left will not be done at any pace."""
        return None if self._control.stopping.is_set() else _eta(done, total, copying, elapsed)

    def _eta_text(self, eta: float | None) -> str:
        return "stopping" if self._control.stopping.is_set() else _eta_text(eta)


def _by_region(
    rates: Mapping[str, float], counters: Mapping[str, RegionCounters]
) -> tuple[dict[str, float], dict[str, RegionCounters]]:
    """Lanes' rates and counters summed per target region: a run over many accounts shows
    a line per region, not one per account and region."""
    from batchcopy.engine import RegionCounters  # the engine loads only when a run does

    summed: dict[str, RegionCounters] = {}
    for lane, counts in counters.items():
        region = lane_parts(lane)[1]
        was = summed.get(region, RegionCounters())
        summed[region] = RegionCounters(
            sent=was.sent + counts.sent,
            accepted=was.accepted + counts.accepted,
            throttled=was.throttled + counts.throttled,
            copying=was.copying + counts.copying,
        )
    return rates_by_region(rates), summed


def _activity(sent: int, accepted: int, copying: int, throttled: int) -> str:
    copying_note = f" ({copying} copying)" if copying else ""
    return f"{sent} sent  {accepted} accepted{copying_note}  {throttled} throttled"


def _eta(done: int, total: int, copying: int, elapsed: float) -> float | None:
    """Seconds left at the run's average pace of finished jobs so far; None before any job
    has finished, and while copies being followed (``--wait``) make up half or more of what
    is left: when those end is up to Lightsail, not to the pace of the run (one copy left
    after 400 fast ones would otherwise be "a second" for minutes)."""
    left = total - done
    if left <= 0:
        return 0.0
    if done == 0 or 2 * copying >= left:
        return None
    return left * elapsed / done


def _eta_text(eta: float | None) -> str:
    if eta is None:
        return "--:--"
    minutes, seconds = divmod(round(eta), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
