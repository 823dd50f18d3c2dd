"""The report of a run: counts as results arrive, then summary.json, results.jsonl, results.csv.

Rows are written as results arrive (in completion order; each carries its manifest line),
so memory does not grow with the manifest. The files are written under temporary names and
renamed into place when the run ends, so a reader never sees half a report. Every job gets
exactly one row: jobs that never produced a result (the run was stopped) are added as
``not_started`` when the report is finished.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from batchcopy.errors import ReportDirError, StorageError
from batchcopy.jobs import (
    BASE_ACCOUNT,
    INTERRUPTED_CODE,
    INTERRUPTED_MESSAGE,
    MANIFEST_FIELDS,
    SENT_BEFORE,
    CopyJob,
    JobResult,
    Sent,
    Status,
)
from batchcopy.journal import crash_point, refuse_journal
from batchcopy.timeline import TIMELINE_NAME, Timeline, copy_outcome

__all__ = [
    "FORMAT_VERSION",
    "Report",
    "ReportWriter",
    "Summary",
    "check_report_dir",
    "prepare_report_dir",
]

FORMAT_VERSION = 1
REPORT_FILES = (
    "summary.json",
    "results.jsonl",
    "results.csv",
    "retry.csv",
    "journal.jsonl",
    "prune.jsonl",
    TIMELINE_NAME,
)
# Jobs worth running again: retry.csv lists them in manifest form.
RETRY_STATUSES = frozenset({Status.FAILED, Status.NOT_STARTED, Status.IN_PROGRESS})
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
RESULT_COLUMNS = [
    "line",
    *MANIFEST_FIELDS,
    "status",
    "attempts",
    "throttles",
    "reconciled",
    "operation_id",
    "error_code",
    "error_message",
    "started_at",
    "finished_at",
    "duration",
    "tag_error",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """The totals of a run, as summary.json holds them."""

    manifest: str
    manifest_sha256: str
    total: int
    counts: dict[str, int]  # by status, every status present
    by_region: dict[str, dict[str, int]]  # target region -> status -> count
    attempts: int
    throttles: int
    reconciled: int
    tag_failures: int
    rates: dict[str, float]  # each target region's CopySnapshot rate at the end, requests/s
    started_at: float
    finished_at: float
    exit_code: int
    report_dir: str | None = None
    start_rate: float | None = None  # each region's CopySnapshot rate at the start, requests/s
    # Each lane's CopySnapshot rate at its start and why: {"rate": 4.75, "source":
    # "remembered" (an earlier run's), "rate" (chosen: --rate) or "default"}.
    start_rates: dict[str, dict[str, float | str]] = field(default_factory=dict)
    max_rate: float | None = None  # the cap no region's rate went above, requests/s
    format_version: int = FORMAT_VERSION
    run_id: str = ""  # the journal's, kept across resumes; the batchcopy:run-id tag
    # Jobs this run brought to an outcome: not those it never sent, cut off in flight, or
    # took from an earlier run's journal. jobs_per_second counts these.
    finished: int = 0
    # Account -> status -> count, when rows name accounts ("base": rows that do not).
    by_account: dict[str, dict[str, int]] = field(default_factory=dict)
    # Requests the service throttled, by action: copies, tags, reads (listings, look-ups,
    # --wait), each spending a budget of its own.
    throttled_by_action: dict[str, int] = field(default_factory=dict)
    # A shard's run ("I/N", batchcopy.shards) and the digest of the assignment it is part
    # of; "" for a whole run. ``total`` and every count are then the shard's.
    shard: str = ""
    assignment_digest: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @property
    def jobs_per_second(self) -> float:
        """Jobs finished per second; 0 when the run finished none (no rate to speak of)."""
        return self.finished / self.duration if self.finished and self.duration > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "run_id": self.run_id,
            "manifest": self.manifest,
            "manifest_sha256": self.manifest_sha256,
            "total": self.total,
            "counts": self.counts,
            "by_region": self.by_region,
            "by_account": self.by_account,
            "attempts": self.attempts,
            "throttles": self.throttles,
            "throttled_by_action": self.throttled_by_action,
            "reconciled": self.reconciled,
            "tag_failures": self.tag_failures,
            "rates": self.rates,
            "start_rate": self.start_rate,
            "start_rates": self.start_rates,
            "max_rate": self.max_rate,
            "started_at": round(self.started_at, 3),
            "finished_at": round(self.finished_at, 3),
            "duration": round(self.duration, 3),
            "finished": self.finished,
            "jobs_per_second": round(self.jobs_per_second, 2),
            "exit_code": self.exit_code,
            "report_dir": self.report_dir,
            **(
                {"shard": self.shard, "assignment_digest": self.assignment_digest}
                if self.shard
                else {}
            ),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What :func:`batchcopy.copy_snapshots` returns: the summary and every result."""

    summary: Summary
    results: tuple[JobResult, ...] = field(repr=False)

    @property
    def exit_code(self) -> int:
        return self.summary.exit_code


def prepare_report_dir(directory: Path) -> Path:
    """Create ``directory`` if needed and prove it writable, before any API call is made.

    A symlink as the folder or in place of any report file is refused: the report must land
    where the user asked, not wherever a link points."""
    _refuse_links(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _probe(directory)
    except OSError as exc:
        raise _unwritable(directory, exc) from None
    return directory


def check_report_dir(directory: Path) -> str:
    """Whether a new run could use ``directory`` as its report folder, found without
    creating it: :func:`prepare_report_dir`'s rules and a new journal's. Returns what was
    found; raises :class:`ReportDirError` ("what is wrong; what to do").

    An existing ``directory`` must be a writable folder without a journal; a missing one
    must be makeable, as ``mkdir -p`` would: its nearest existing parent a writable folder.
    """
    _refuse_links(directory)
    where = directory
    try:
        if directory.is_dir():
            refuse_journal(directory)
            _probe(directory)
            return f"{directory} is writable"
        if directory.exists():
            raise ReportDirError(f"{directory} is not a folder; choose another --report-dir")
        where = next(p for p in directory.absolute().parents if p.exists())
        if not where.is_dir():
            raise ReportDirError(
                f"{directory} cannot be made: {where} is not a folder; choose another --report-dir"
            )
        _probe(where)
    except OSError as exc:
        raise _unwritable(where, exc) from None
    return f"{directory} can be made in {where}"


def _unwritable(where: Path, exc: OSError) -> ReportDirError:
    reason = exc.strerror or str(exc)
    return ReportDirError(
        f"{where}: cannot write the report here ({reason}); choose another folder with --report-dir"
    )


def _refuse_links(directory: Path) -> None:
    """A symlink as the folder or in place of any report file is refused: the report must
    land where the user asked, not wherever a link points."""
    for path in (directory, *(directory / name for name in REPORT_FILES)):
        if path.is_symlink():
            raise ReportDirError(f"{path} is a symbolic link; give a real folder with --report-dir")


def _probe(directory: Path) -> None:
    """Write, sync and remove a file in ``directory``; raises OSError if it cannot."""
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-") as probe:
        probe.write(b"ok")
        probe.flush()
        os.fsync(probe.fileno())


class ReportWriter:
    """Collects results into counts and, with a folder, into the report files."""

    def __init__(
        self,
        directory: Path | None,
        *,
        manifest: str,
        manifest_sha256: str,
        total: int,
        keep_results: bool = False,
        wall: Any = time.time,
        run_id: str = "",
        shard: str = "",
        assignment_digest: str = "",
    ) -> None:
        self._shard = (shard, assignment_digest)
        self._directory = directory
        self._run_id = run_id
        self._manifest = manifest
        self._sha256 = manifest_sha256
        self._total = total
        self._wall = wall
        self.started_at = wall()
        self.counts: Counter[str] = Counter()
        self.by_region: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.by_account: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.attempts = self.throttles = self.reconciled = self.tag_failures = 0
        self.interrupted = 0  # failed as Interrupted: sent, outcome cut off
        self._done: set[int] = set()  # hashes of finished targets, to find the unfinished
        self._kept: list[JobResult] | None = [] if keep_results else None
        self._jsonl: IO[str] | None = None
        self._csv: IO[str] | None = None
        self._csv_writer: Any = None
        self._retry: IO[str] | None = None
        self._retry_writer: Any = None
        self.retry_rows = 0
        # The run's time series (timeline.json), written with the report.
        self.timeline = Timeline(clock=wall) if directory is not None else None
        if directory is not None:
            self._jsonl = _create(directory / "results.jsonl.partial")
            self._csv = _create(directory / "results.csv.partial", newline="")
            self._csv_writer = csv.DictWriter(self._csv, RESULT_COLUMNS)
            self._csv_writer.writeheader()
            self._retry = _create(directory / "retry.csv.partial", newline="")
            self._retry_writer = csv.DictWriter(self._retry, (*MANIFEST_FIELDS, SENT_BEFORE))
            self._retry_writer.writeheader()

    def add(self, result: JobResult, *, earlier: bool = False) -> None:
        """Count one result and write its row. ``earlier``: an earlier run's (a resume's),
        counted apart in the time series."""
        if self.timeline is not None:
            if earlier:
                self.timeline.add_earlier(result.job.target_region, copy_outcome(result.status))
            else:
                self.timeline.add_result(result)
        self._done.add(hash(result.job.target))
        self.counts[result.status] += 1
        self.by_region[result.job.target_region][result.status] += 1
        self.by_account[result.job.account or BASE_ACCOUNT][result.status] += 1
        self.attempts += result.attempts
        self.throttles += result.throttles
        self.reconciled += result.reconciled
        self.tag_failures += bool(result.tag_error)
        self.interrupted += result.error_code == INTERRUPTED_CODE
        if self._kept is not None:
            self._kept.append(result)
        if self._jsonl is not None:
            row = result.to_row()
            try:
                self._jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")
                self._csv_writer.writerow({k: _inert(v) for k, v in row.items()})
                if result.status in RETRY_STATUSES or result.tag_error:
                    sent = _sent_before(result)
                    self._retry_writer.writerow({**result.retry_job().to_row(), SENT_BEFORE: sent})
                    self.retry_rows += 1
            except OSError as exc:
                raise StorageError(self._directory, exc) from exc

    def finish(
        self,
        jobs: Iterable[CopyJob] = (),
        *,
        earlier: Mapping[str, JobResult] | None = None,
        interrupted: Mapping[str, Sent] | Container[str] = (),
        exit_code: int | None = None,
        rates: Mapping[str, float] | None = None,
        start_rate: float | None = None,
        max_rate: float | None = None,
        throttled_by_action: Mapping[str, int] | None = None,
        start_rates: Mapping[str, tuple[float, str]] | None = None,
        own: Container[str] = (),
    ) -> Report:
        """Write the files and return the report.

        ``jobs`` is the whole run's job stream, read once more: a job with no result gets
        the one ``earlier`` holds for its target (an earlier run's, or a copy still being
        followed) if there is one, ``failed`` (Interrupted) if its target is in
        ``interrupted`` (sent, outcome unknown; a mapping also gives the requests sent and
        the date each use_latest job was sent for), else ``not_started``. ``exit_code``
        overrides the computed one (an interrupted run's 130 or 143). ``own`` names the
        targets in ``earlier`` that are this run's (handed on, never reported): the others
        are earlier runs', kept out of the time series' buckets."""
        earlier = earlier or {}
        finished = self.counts.total() - self.counts[Status.NOT_STARTED] - self.interrupted
        if len(self._done) < self._total:
            for job in jobs:
                if hash(job.target) in self._done:
                    continue
                known = earlier.get(job.target)
                if known is not None and known.job.to_row() == job.to_row():
                    # The manifest's job as it is now (its line may have moved).
                    self.add(dataclasses.replace(known, job=job), earlier=job.target not in own)
                elif job.target in interrupted:
                    sent = interrupted[job.target] if isinstance(interrupted, Mapping) else Sent()
                    self.add(
                        JobResult(
                            job=job,
                            status=Status.FAILED,
                            attempts=sent.attempts,
                            error_code=INTERRUPTED_CODE,
                            error_message=INTERRUPTED_MESSAGE,
                            sent_date=sent.date,
                        )
                    )
                else:
                    self.add(JobResult(job=job, status=Status.NOT_STARTED))
        finished_at = self._wall()
        ok = all(Status(s).ok for s, n in self.counts.items() if n) and not self.tag_failures
        summary = Summary(
            manifest=self._manifest,
            manifest_sha256=self._sha256,
            total=self._total,
            counts={s.value: self.counts.get(s, 0) for s in Status},
            by_region={
                region: {s.value: c.get(s, 0) for s in Status if c.get(s, 0)}
                for region, c in sorted(self.by_region.items())
            },
            by_account={}
            if set(self.by_account) <= {BASE_ACCOUNT}
            else {
                account: {s.value: c.get(s, 0) for s in Status if c.get(s, 0)}
                for account, c in sorted(self.by_account.items())
            },
            attempts=self.attempts,
            throttles=self.throttles,
            reconciled=self.reconciled,
            tag_failures=self.tag_failures,
            rates={region: round(rate, 2) for region, rate in (rates or {}).items()},
            started_at=self.started_at,
            finished_at=finished_at,
            exit_code=exit_code if exit_code is not None else 0 if ok else 1,
            report_dir=str(self._directory) if self._directory else None,
            start_rate=start_rate,
            start_rates={
                lane: {"rate": round(rate, 2), "source": source}
                for lane, (rate, source) in (start_rates or {}).items()
            },
            max_rate=max_rate,
            run_id=self._run_id,
            finished=finished,
            throttled_by_action=dict(throttled_by_action or {}),
            shard=self._shard[0],
            assignment_digest=self._shard[1],
        )
        if self._directory is not None:
            try:
                self._close_rows()
                crash_point("report-write")
                if self.timeline is not None:
                    _write_atomically(
                        self._directory / TIMELINE_NAME,
                        json.dumps(self.timeline.to_json(), separators=(",", ":")) + "\n",
                    )
                _write_atomically(
                    self._directory / "summary.json",
                    json.dumps(summary.to_json(), indent=2) + "\n",
                )
            except OSError as exc:
                raise StorageError(self._directory, exc) from exc
        return Report(summary=summary, results=tuple(self._kept or ()))

    def _close_rows(self) -> None:
        """Move the row files into place; retry.csv only if some job needs another run."""
        directory = self._directory
        assert directory is not None
        files = (
            (self._jsonl, "results.jsonl"),
            (self._csv, "results.csv"),
            (self._retry, "retry.csv"),
        )
        for handle, name in files:
            assert handle is not None
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            if name == "retry.csv" and not self.retry_rows:
                (directory / "retry.csv.partial").unlink()
                (directory / name).unlink(missing_ok=True)  # a resume fixed what it listed
                continue
            os.replace(directory / f"{name}.partial", directory / name)

    def close(self) -> None:
        """Release the files without finishing (used when a run dies of a bug)."""
        for handle in (self._jsonl, self._csv, self._retry):
            if handle is not None and not handle.closed:
                with contextlib.suppress(OSError):  # a full disk: its buffer is lost
                    handle.close()
                if not handle.closed:
                    with contextlib.suppress(OSError):
                        os.close(handle.fileno())


def _sent_before(result: JobResult) -> str:
    """retry.csv's sent_before for ``result``: "true" when its copy may exist, made by this
    job without its label (its outcome unknown, cut off, or left untagged), so that running
    the row again judges the target as possibly its own, as a resume would. (A copy still
    in progress carries its label: it needs no such column.)"""
    maybe = (
        result.outcome_unknown
        or result.error_code == INTERRUPTED_CODE
        or bool(result.tag_error)
        or result.job.sent_before
    )
    return "true" if maybe else ""


def _inert(value: object) -> object:
    """A CSV cell a spreadsheet will show, not run (results.jsonl keeps the raw value)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _create(path: Path, newline: str | None = None) -> IO[str]:
    """A new owner-only file for writing; an existing symlink in its place is refused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ReportDirError(f"{path}: cannot write the report ({exc.strerror})") from None
    return os.fdopen(fd, "w", encoding="utf-8", newline=newline)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
