"""The journal: a durable, append-only record of a run's intents and outcomes, for resume.

It is JSON Lines in the report folder (``journal.jsonl``), chosen over SQLite because the
access pattern is pure appending and one read at resume: a line per record needs no schema,
no library and no locking, a human can read it with ``tail``, and a crash can only tear the
last line, which reading simply ignores. Durability comes from ``fsync``:

- an *intent* is on disk before its CopySnapshot is sent. Intents from concurrent jobs are
  flushed together (group commit: one fsync covers every record written before it started),
  so the cost is one fsync per batch, not one per job;
- *outcomes* are written as they come and synced with the next batch or at close. Losing
  one to a crash is safe: its job has an intent and no outcome, so a resume looks the
  target up instead of sending again.

Records::

    {"type": "run", "version": 1, "manifest": ..., "manifest_sha256": ..., "at": ...}
    {"type": "intent", "target": "eu-west-1/web-1-copy", "line": 7}
    {"type": "outcome", "target": "eu-west-1/web-1-copy", "row": {...results.csv row...}}
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio
import anyio.to_thread

from batchcopy.errors import ReportDirError, StorageError
from batchcopy.facts import is_valid_date
from batchcopy.jobs import INTERRUPTED_CODE, CopyJob, JobResult, Status

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "JOURNAL_NAME",
    "PRUNE_JOURNAL_NAME",
    "Journal",
    "JournalMismatch",
    "RecordFile",
    "check_account",
    "crash_point",
    "damaged",
    "open_held",
    "records",
    "refuse_if_held",
    "refuse_journal",
]

JOURNAL_NAME = "journal.jsonl"
PRUNE_JOURNAL_NAME = "prune.jsonl"  # a prune's: batchcopy.prune_journal
LOCK_NAME = ".batchcopy.lock"  # held by the run writing the folder; names its pid
VERSION = 1
# A run record is well under this; a journal no bigger, with no whole record, was cut
# short before its first record was on disk.
_HEADER_MAX = 4096
_BLOCK = 65536  # bytes read at a time from a journal's end


def refuse_journal(directory: Path) -> None:
    """Raise :class:`ReportDirError` if ``directory`` holds a run's journal: a new run there
    would mix two runs' records, and --resume is the way to continue that one.

    A folder a run still holds says so first: "resume it" would only be refused again.
    A prune's journal is refused as a run's is."""
    # A prune resumes only with --yes (it continues deletes): the line must name it.
    refusals = (
        (JOURNAL_NAME, "a run's", f"--resume {directory}"),
        (PRUNE_JOURNAL_NAME, "a prune's", f"batchcopy prune --resume {directory} --yes"),
    )
    for name, whose, resume in refusals:
        if (directory / name).exists():
            refuse_if_held(directory)
            raise ReportDirError(
                f"{directory} already holds {whose} journal; resume it with {resume}, or "
                "choose another --report-dir"
            )


class JournalMismatch(ReportDirError):
    """The journal was written for a different manifest."""


@dataclass(slots=True)
class _Past:
    """What an earlier run of this journal got done."""

    # Targets with an outcome, and a digest of the job it was for: a job the manifest now
    # words differently (a resume --force of an edited manifest) is not done.
    finished: dict[str, bytes] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # where each target's outcome is
    intended: set[str] = field(default_factory=set)  # targets with an intent but no outcome
    # Of those, the ones whose copy Lightsail accepted (its answer came: recorded as it
    # arrives), with its operation id and the requests sent: found again, they are not
    # answers a crash lost.
    accepted: dict[str, tuple[str, int]] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)  # automatic snapshot dates sent
    torn: bool = False  # the last line was cut short by a crash
    run_id: str = ""  # the first run's id, kept across resumes (the batchcopy:run-id tag)
    # The shard ("I/N", "" for a whole run) and assignment digest its run record names;
    # None: no run record (cut short before it reached the disk).
    shard: tuple[str, str] | None = None
    # The account rows without one ran in (the base credentials'); "" if not known.
    base_account: str = ""


class RecordFile:
    """An append-only JSON Lines file of records in a report folder whose lock it holds:
    records are appended as they come, :meth:`sync` returns once every record written so
    far is on disk (group commit: one fsync per batch), :meth:`close` lets the folder go."""

    def __init__(self, path: Path, handle: IO[str], lock: IO[str]) -> None:
        self.path = path
        self._handle = handle
        self._lock = lock
        self._written = 0  # records written
        self._synced = 0  # records known to be on disk
        self._syncing: anyio.Event | None = None

    def append(self, record: dict[str, Any]) -> None:
        try:
            self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise StorageError(self.path, exc) from exc
        self._written += 1

    def sync_now(self) -> None:
        """Every record written so far on disk, before going on (blocking)."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise StorageError(self.path, exc) from exc
        self._synced = self._written

    async def sync(self) -> None:
        """Return once every record written so far is on disk (one fsync per batch)."""
        wanted = self._written
        while self._synced < wanted:
            if self._syncing is not None:
                await self._syncing.wait()
                continue
            self._syncing = done = anyio.Event()
            batch = self._written
            try:
                self._handle.flush()
                await anyio.to_thread.run_sync(os.fsync, self._handle.fileno())
                self._synced = batch
            except OSError as exc:
                raise StorageError(self.path, exc) from exc
            finally:
                self._syncing = None
                done.set()

    def close(self) -> None:
        """Flush and sync everything; the file stays on disk for a later resume. A write
        that fails now (a full disk) loses only records not yet synced, which a resume
        treats as never written (a torn last line is dropped)."""
        if not self._handle.closed:
            try:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError:
                log.info("%s: the last records could not be written", self.path)
            with contextlib.suppress(OSError):
                self._handle.close()
            if not self._handle.closed:  # its buffer would not flush: drop it with the fd
                with contextlib.suppress(OSError):
                    os.close(self._handle.fileno())
        self._lock.close()  # the folder is free for the next run


class Journal(RecordFile):
    """An open journal. Use :meth:`open`; then ``await intent(job)`` before each copy."""

    def __init__(self, path: Path, handle: IO[str], past: _Past, lock: IO[str]) -> None:
        super().__init__(path, handle, lock)
        self.past = past

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        manifest: str,
        manifest_sha256: str,
        resume: bool,
        force: bool = False,
        run_id: str = "",
        defaults: dict[str, str] | None = None,
        shard: str = "",
        assignment_digest: str = "",
        base_account: str = "",
    ) -> Journal:
        """Open the journal in ``directory``: a new one, or (``resume``) the one there.

        A journal made for a different manifest, or for the same one with other
        ``defaults`` (the source and target regions given for rows that leave them out: they
        change the jobs), is refused unless ``force``. A journal of another shard
        (``shard`` "I/N" and the assignment's digest; "" for a whole run) is always
        refused: its jobs are another process's. ``base_account``: the account a new
        run's rows without an account run in, recorded for :func:`check_account`.
        """
        defaults = defaults or {}
        path = directory / JOURNAL_NAME
        past = _Past()
        if resume and not path.exists():
            raise ReportDirError(f"{directory}: no {JOURNAL_NAME} to resume from")
        if not resume:
            refuse_journal(directory)

        def read() -> _Past:
            past = _read(path, manifest_sha256, force=force, defaults=defaults)
            _check_shard(path, past, shard, assignment_digest)
            return past

        handle, lock, earlier = open_held(directory, path, read if resume else None)
        past = earlier or past
        past.run_id = past.run_id or run_id
        past.base_account = past.base_account or base_account  # a resume keeps the first
        journal = cls(path, handle, past, lock)
        journal.append(
            {
                "type": "run",
                "version": VERSION,
                "manifest": manifest,
                "manifest_sha256": manifest_sha256,
                "defaults": defaults,
                **({"shard": shard, "assignment_digest": assignment_digest} if shard else {}),
                "resume": resume,
                "run_id": past.run_id,
                **({"base_account": past.base_account} if past.base_account else {}),
                "at": round(time.time(), 3),
            }
        )
        # On disk before anything is sent: a crash during the listings that come first
        # leaves a journal that can be resumed, not an empty file that can be neither
        # resumed nor replaced.
        journal.sync_now()
        crash_point("journal-opened")
        return journal

    async def intent(self, job: CopyJob) -> None:
        """Record that ``job`` is about to be sent; returns once that is on disk."""
        crash_point("before-intent")
        record: dict[str, Any] = {"type": "intent", "target": job.target, "line": job.line}
        if job.restore_date:
            # The date a use_latest job was pinned to: a resume copies and labels the same.
            record["date"] = job.restore_date
        self.append(record)
        await self.sync()
        crash_point("after-intent")

    def accepted(self, job: CopyJob, operation_id: str, attempts: int) -> None:
        """Record that Lightsail accepted ``job``'s copy (its answer came), as it arrives.

        Flushed to the OS, not synced: it only has to outlive the process (kill -9), so
        that a resume keeps the operation id and does not count the copy as reconciled.
        A power cut that loses it costs only that label: the copy is looked up anyway."""
        self.append(
            {
                "type": "accepted",
                "target": job.target,
                "operation": operation_id,
                "attempts": attempts,
            }
        )
        try:
            self._handle.flush()
        except OSError as exc:
            raise StorageError(self.path, exc) from exc

    def outcome(self, result: JobResult) -> None:
        """Record a job's final result (synced with the next batch, or at close).

        Not-started, in-progress, interrupted and untagged jobs are not final: a resume must
        still run, follow, look up or tag them, so they are not recorded as finished."""
        if result.status in (Status.STARTED, Status.IN_PROGRESS) and (
            result.tag_error or not result.status.final
        ):
            # Accepted, but tagging or following it is left to do: a resume that finds the
            # copy knows its answer came, so it is not counted as reconciled.
            self.append(
                {
                    "type": "accepted",
                    "target": result.job.target,
                    "operation": result.operation_id,
                    "attempts": result.attempts,
                }
            )
        if (
            not result.status.final
            or result.error_code == INTERRUPTED_CODE
            or result.tag_error
            or result.outcome_unknown
        ):
            return
        record = {"type": "outcome", "target": result.job.target, "row": result.to_row()}
        if result.sent_date:
            record["date"] = result.sent_date  # what a later retry.csv pins the job to
        self.append(record)

    def earlier_results(self, first: Mapping[str, JobResult] | None = None) -> EarlierResults:
        """The outcomes earlier runs recorded, by target, read from the journal when asked
        for (each was checked when the journal was opened): a resume of a million jobs holds
        where each outcome is, not the outcomes (reading them all back cost ~3.6 KB a job).
        ``first`` answers before the journal (this run's own results). Close it when done."""
        return EarlierResults(self.path, self.past.outcomes, first or {})


def open_held(
    directory: Path, path: Path, read: Callable[[], T] | None
) -> tuple[IO[str], IO[str], T | None]:
    """Hold ``directory``'s lock; then, for a resume (``read``), read the journal at
    ``path`` and mend its torn end; then open it for appending. Returns the handle, the
    lock and what ``read`` gave; the lock is let go if any of that fails."""
    lock = _lock(directory)
    try:
        earlier = read() if read is not None else None
        if read is not None:
            _mend_tail(path)  # or the next record would be glued onto the last line
        return _open_append(path), lock, earlier
    except BaseException:
        lock.close()
        raise


def _lock(directory: Path) -> IO[str]:
    """Hold the report folder for this run (released when the process ends, however it
    ends): two runs writing one folder would mix their journals and reports."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise ReportDirError(f"{path}: cannot open the folder's lock ({exc.strerror})") from None
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = handle.read().strip()
        handle.close()
        raise _in_use(directory, holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def refuse_if_held(directory: Path) -> None:
    """Raise :class:`ReportDirError` naming the pid if a run holds ``directory``'s lock;
    looks without creating the lock file and lets go at once."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return  # no lock file (or none readable): no run has held it, or _lock will say
    with os.fdopen(fd, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise _in_use(directory, handle.read().strip()) from None


def _in_use(directory: Path, holder: str) -> ReportDirError:
    return ReportDirError(
        f"{directory} is in use by another batchcopy run (pid {holder or 'unknown'}); wait for "
        "it to end, or choose another --report-dir"
    )


def _open_append(path: Path) -> IO[str]:
    """Open for appending, owner-only, refusing a symlink in the journal's place."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ReportDirError(f"{path}: cannot open the journal ({exc.strerror})") from None
    return os.fdopen(fd, "a", encoding="utf-8")


def _mend_tail(path: Path) -> None:
    """Make the journal end on a line boundary before appending: a last record that is whole
    but lacks its newline gets one; a fragment a crash left is dropped."""
    with path.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        start = _last_line_start(handle, end)
        if start == end:
            return
        handle.seek(start)
        if _parses(handle.read()):
            handle.write(b"\n")
        else:
            handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())


def _last_line_start(handle: IO[bytes], end: int) -> int:
    """Where the last line of a file ``end`` bytes long begins (``end`` if it ends with a
    newline), read back from the end a block at a time: a long journal stays on disk."""
    at = end
    while at > 0:
        size = min(_BLOCK, at)
        handle.seek(at - size)
        newline = handle.read(size).rfind(b"\n")
        if newline >= 0:
            return at - size + newline + 1
        at -= size
    return 0


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


_TYPES = frozenset({"run", "intent", "outcome", "accepted"})
_FINAL = frozenset(s.value for s in Status if s.final)


class EarlierResults(Mapping[str, JobResult]):
    """Earlier runs' results by target, each read from its journal line when looked up."""

    def __init__(self, path: Path, offsets: dict[str, int], first: Mapping[str, JobResult]) -> None:
        self._path = path
        self._offsets = offsets
        self._first = first
        self._handle: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"<EarlierResults {len(self._offsets)} in {self._path}>"

    def __getitem__(self, target: str) -> JobResult:
        if target in self._first:
            return self._first[target]
        offset = self._offsets[target]
        if self._handle is None:
            self._handle = self._path.open("rb")
        self._handle.seek(offset)
        record = json.loads(self._handle.readline())
        date = record.get("date")
        sent = date if isinstance(date, str) and is_valid_date(date) else ""
        return dataclasses.replace(JobResult.from_row(record["row"]), sent_date=sent)

    def __iter__(self) -> Iterator[str]:
        yield from self._first
        yield from (t for t in self._offsets if t not in self._first)

    def __len__(self) -> int:
        return len(self._first) + sum(t not in self._first for t in self._offsets)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> EarlierResults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def job_digest(job: CopyJob) -> bytes:
    """8 bytes that tell one job's fields (not its line) from another's."""
    text = json.dumps(job.to_row(), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def records(
    path: Path, checked: Callable[[Path, int, Any], dict[str, Any]] | None = None
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Every whole record with its line number and byte offset, read a line at a time (a
    journal of a million jobs is not held in memory). A last line a crash cut short is
    passed over; any other line that is not a record of batchcopy's is damage: ``checked``
    (a run journal's check by default) returns the record or raises :func:`damaged`."""
    checked = checked or _checked
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReportDirError(f"{path}: cannot read the journal ({exc.strerror})") from None
    offset = 0
    with handle:
        for number, line in enumerate(handle, start=1):
            at, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                if not line.endswith(b"\n"):  # only the last, unterminated line may be torn
                    continue
                raise damaged(path, number, "not a JSON record") from None
            yield number, at, checked(path, number, record)


def _checked(path: Path, number: int, record: Any) -> dict[str, Any]:
    """``record`` if it has the shape its type promises; else the journal is damaged."""
    if not isinstance(record, dict) or record.get("type") not in _TYPES:
        raise damaged(path, number, "not a batchcopy record")
    if record["type"] == "run":
        return record
    target = record.get("target")
    if not isinstance(target, str) or target.count("/") not in (1, 2):
        raise damaged(path, number, "no target [account/]region/name")
    if record["type"] == "outcome":
        row = record.get("row")
        try:
            result = JobResult.from_row(row) if isinstance(row, dict) else None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise damaged(path, number, f"its result does not read ({exc})") from None
        if result is None or result.job.target != target:
            raise damaged(path, number, "its result is not its target's")
    if record["type"] == "accepted":
        operation, attempts = record.get("operation", ""), record.get("attempts", 0)
        if not isinstance(operation, str):
            raise damaged(path, number, "its operation is not text")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise damaged(path, number, "its attempts are not a count")
    return record


def damaged(path: Path, number: int, what: str) -> ReportDirError:
    return ReportDirError(
        f"{path}:{number}: journal damaged: {what}; it cannot be resumed safely (nothing was "
        "sent). Start a new --report-dir, or repair or remove that line"
    )


def _torn(path: Path) -> bool:
    """Whether the journal's last line was cut short by a crash."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def _regions(defaults: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Default regions as sets: ``--target-region b --target-region a`` makes the jobs
    ``a;b`` makes."""
    return {field: frozenset(value.split(";")) for field, value in defaults.items()}


def check_account(path: Path, recorded: str, now: str) -> None:
    """Refuse to resume the journal at ``path``, whose rows without an account ran in
    account ``recorded``, with credentials of another account, ``now`` ("" when STS could
    not say whose they are: then they cannot be shown to be the same)."""
    if recorded == now:
        return
    first = f"{path} was written by a run whose rows without an account ran in account {recorded}"
    if not now:
        raise JournalMismatch(
            f"{first}, and STS cannot say whose these credentials are: resume once it "
            "answers, or --force"
        )
    raise JournalMismatch(
        f"{first}; these credentials are account {now}'s, and the same rows would copy "
        "into it: resume with the credentials of the first run, or --force"
    )


def _read(path: Path, manifest_sha256: str, *, force: bool, defaults: dict[str, str]) -> _Past:
    lines = records(path)
    first = next(lines, None)
    if first is None and path.stat().st_size <= _HEADER_MAX:
        # Empty, or a torn first line: a crash before the run record reached the disk (as
        # versions before 0.1 could leave); nothing was sent, so there is nothing to redo.
        return _Past(torn=_torn(path))
    if first is None or first[2].get("type") != "run":
        raise ReportDirError(f"{path}: not a batchcopy journal")
    line, _, header = first
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise damaged(path, line, "its run record has no version batchcopy writes")
    if version > VERSION:
        raise ReportDirError(
            f"{path} was written by a newer batchcopy (journal version {version}; this one "
            f"reads version {VERSION}); resume it with that batchcopy"
        )
    made_with = header.get("defaults") or {}
    if not isinstance(made_with, dict) or not all(isinstance(v, str) for v in made_with.values()):
        raise damaged(path, line, "its run record's defaults are not region names")
    made_for = header.get("manifest_sha256")
    if made_for != manifest_sha256 and not force:
        raise JournalMismatch(
            f"{path} was written for a different manifest (sha256 {str(made_for)[:12]}..., this "
            f"one is {manifest_sha256[:12]}...); use the manifest it was made for, or --force"
        )
    if _regions(made_with) != _regions(defaults) and not force:
        said = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in made_with.items()) or "none"
        now = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in defaults.items()) or "none"
        raise JournalMismatch(
            f"{path} was written with the defaults {said}, this run gives {now}: they change "
            "the jobs; give the same, or --force"
        )
    past = _Past(torn=_torn(path), run_id=str(header.get("run_id") or ""))
    if isinstance(base := header.get("base_account"), str):
        past.base_account = base
    past.shard = (str(header.get("shard") or ""), str(header.get("assignment_digest") or ""))
    for _, offset, record in lines:  # every line is checked before anything is sent
        target = record.get("target", "")
        if record["type"] == "intent":
            past.intended.add(target)
            if isinstance(date := record.get("date"), str) and is_valid_date(date):
                past.dates[target] = date
        elif record["type"] == "outcome":
            row = record["row"]
            if (
                row.get("status") not in _FINAL
                or row.get("error_code") == INTERRUPTED_CODE
                or row.get("tag_error")
            ):
                # Not an outcome batchcopy writes (Journal.outcome): the job is not done.
                # One cut off after it was sent is looked up, as for an intent.
                if row.get("status") != Status.NOT_STARTED:
                    past.intended.add(target)
                continue
            past.intended.discard(target)  # the set stays as small as what is unfinished
            past.accepted.pop(target, None)
            past.finished[target] = job_digest(CopyJob.from_row(record["row"]))
            past.outcomes[target] = offset
        elif record["type"] == "accepted" and target not in past.finished:
            past.accepted[target] = (record.get("operation", ""), record.get("attempts", 0))
    past.intended -= past.finished.keys()
    past.accepted = {t: a for t, a in past.accepted.items() if t in past.intended}
    past.dates = {t: d for t, d in past.dates.items() if t in past.intended}
    return past


def _check_shard(path: Path, past: _Past, shard: str, assignment_digest: str) -> None:
    """Refuse to resume another shard's journal (or a whole run's as a shard, or back)."""
    if past.shard is None:
        return  # cut short before its first record: nothing was sent
    was, digest = past.shard
    if was != shard:
        said = f"shard {was}" if was else "a whole run (no --shard)"
        now = f"shard {shard}" if shard else "a whole run"
        raise JournalMismatch(
            f"{path} is the journal of {said}, this run is {now}; resume each shard with "
            "its own report folder and the same --shard"
        )
    if digest != assignment_digest:
        raise JournalMismatch(
            f"{path} is the journal of shard {was} of another assignment (digest "
            f"{digest[:12]}..., this one is {assignment_digest[:12]}...): the manifest's "
            "lanes or the shard count changed; resume with the manifest and --shard it ran with"
        )


# -- deterministic crash points, for the crash tests ------------------------------------------

_CRASH_ENV = "BATCHCOPY_TEST_CRASH_AT"
_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die by SIGKILL here if ``BATCHCOPY_TEST_CRASH_AT`` says ``name:N`` and this is the
    N-th time; ``name:N:SIGTERM`` (or another signal's name) sends that signal instead and
    goes on. A test-only switch: it lets tests kill or stop a run at an exact boundary."""
    wanted = os.environ.get(_CRASH_ENV)
    if not wanted or not wanted.startswith(name + ":"):
        return
    _, count, *how = wanted.split(":")
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(count):
        os.kill(os.getpid(), signal.Signals[how[0]] if how else signal.SIGKILL)
