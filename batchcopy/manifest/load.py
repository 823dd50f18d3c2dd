"""Loading a manifest: check every row once, then :class:`Manifest` reads its jobs again."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from batchcopy.errors import ManifestError, Problem
from batchcopy.jobs import CopyJob
from batchcopy.manifest.csvfile import _csv_items, _delimiter_of
from batchcopy.manifest.fields import _check, _defaults, _Invalid, _Issue, _Row, _value
from batchcopy.manifest.files import (
    _Digest,
    _format_of,
    _Lines,
    _readable_twice,
    _snapshot,
    _stamp,
    _too_large,
    _unreadable,
)
from batchcopy.manifest.jsonfile import _json_items, _jsonl_items
from batchcopy.manifest.tally import _Tally


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A manifest that passed every check: where it is, what it holds, and its jobs on demand."""

    # The file read again: a private copy of the manifest as checked (the file's, or stdin's
    # or a pipe's spooled), removed at exit; never the file the user may still be editing.
    path: Path
    name: str  # as messages name it: the path as given, or "<stdin>"
    format: str  # "csv" | "json" | "jsonl"
    sha256: str
    total: int  # jobs, so a row fanning out to three regions counts three
    per_region: Mapping[str, int]  # jobs per target region, sorted by region
    # Jobs per account ("": rows without one), sorted; empty when no row names an account.
    per_account: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    source_region: str | None = None  # the defaults given to load_manifest
    target_region: str | None = None
    # The file as checked (inode, size, modification time): read again only while it is so.
    stamp: tuple[int, int, int] = (0, 0, 0)
    # A shard's part (batchcopy.shards.select): only jobs of these lanes; None: every job.
    lanes: frozenset[str] | None = None

    def jobs(self) -> Iterator[CopyJob]:
        """Read the file again and yield its jobs in file order.

        A row naming several target regions yields a job for each, in the order written, all
        with the row's line. Raises ManifestError if a row no longer passes: the file changed
        after it was checked.
        """
        defaults = _defaults(self.source_region, self.target_region)
        changed = Problem(file=self.name, line=0, field="", message="changed since it was checked")
        try:
            with self.path.open("rb") as file:
                for item in _items(file, self.format, hashlib.sha256(), frozenset(defaults)):
                    if self.stamp != (0, 0, 0) and _stamp(file) != self.stamp:
                        # Rewritten, or rows added, since it was checked: what is read now is
                        # not what was checked, so nothing more of it is run.
                        raise ManifestError([changed])
                    checked = [item] if isinstance(item, _Issue) else _check(item, defaults)
                    for job in checked:  # all jobs or all issues, never both
                        if not isinstance(job, CopyJob):
                            issues = [i for i in checked if isinstance(i, _Issue)]
                            problems = [Problem(file=self.name, **i._asdict()) for i in issues]
                            raise ManifestError([*problems, changed])
                        if self.lanes is None or job.lane in self.lanes:
                            yield job
        except OSError as exc:
            raise ManifestError([_unreadable(self.name, exc), changed]) from exc


def load_manifest(
    source: str | Path,
    *,
    source_region: str | None = None,
    target_region: str | None = None,
    stdin: BinaryIO | None = None,
) -> Manifest:
    """Read and check the whole manifest without holding its rows in memory.

    ``source`` is a path, or ``"-"`` for ``stdin`` (default ``sys.stdin.buffer``). Streams
    (stdin, or a pipe given by path) are spooled to a temporary file, removed when the process
    exits, so :meth:`Manifest.jobs` can read them again. ``source_region`` and
    ``target_region`` fill rows that leave them out; ``target_region`` may name several
    regions separated by ``;``, like a manifest's cell.

    Raises ManifestError listing every problem (up to MAX_PROBLEMS; the rest are counted).
    """
    from_stdin = isinstance(source, str) and source == "-"
    name = "<stdin>" if from_stdin else str(source)
    tally = _Tally(name)
    defaults = _defaults(source_region, target_region)
    for field, region in defaults.items():
        try:
            _value(field, region)
        except _Invalid as exc:
            tally.add([_Issue(0, field, f"the default {message}") for message in exc.args])
    path, spooled, copied, fmt, digest = None, False, False, "csv", hashlib.sha256()
    try:
        if not tally.problems:
            path, spooled = _readable_twice(source, stdin, from_stdin)
            if not spooled:
                # Checked, hashed and run from one fixed copy (see files.py).
                copy, changed = _snapshot(path)
                copied, path = copy != path, copy
                if changed:
                    tally.problems.append(
                        Problem(file=name, line=0, field="", message=_CHANGED_WHILE_CHECKED)
                    )
            with path.open("rb") as file:
                stamp = _stamp(file)
                fmt = _format_of("" if from_stdin else Path(name).suffix, file)
                if too_large := _too_large(file, fmt, exact=not spooled):
                    tally.add(_Issue(0, "", too_large))
                else:
                    for item in _items(file, fmt, digest, frozenset(defaults)):
                        tally.add(item if isinstance(item, _Issue) else _check(item, defaults))
                if _stamp(file) != stamp:
                    tally.problems.append(
                        Problem(file=name, line=0, field="", message=_CHANGED_WHILE_CHECKED)
                    )
    except OSError as exc:
        tally.problems.append(_unreadable(name, exc))
    if tally.total == 0 and not tally.problems:
        tally.add(_Issue(0, "", "no jobs: a manifest needs at least one"))
    if tally.problems:
        if (spooled or copied) and path is not None:
            path.unlink(missing_ok=True)
        raise ManifestError(tally.problems, more=tally.more)
    assert path is not None  # no problems means the file was read
    return Manifest(
        path=path,
        name=name,
        format=fmt,
        sha256=digest.hexdigest(),
        total=tally.total,
        per_region=MappingProxyType(dict(sorted(tally.per_region.items()))),
        per_account=MappingProxyType(
            dict(sorted(tally.per_account.items())) if set(tally.per_account) - {""} else {}
        ),
        source_region=source_region or None,
        target_region=target_region or None,
        stamp=stamp,
    )


_CHANGED_WHILE_CHECKED = "changed while it was being checked; run again once it is written"


def _items(
    file: BinaryIO, fmt: str, digest: _Digest, defaulted: frozenset[str]
) -> Iterator[_Row | _Issue]:
    """The one parser: rows and problems in file order, hashing every byte read."""
    if fmt == "json":
        return _json_items(file, digest)
    if fmt == "jsonl":
        return _jsonl_items(_Lines(file, digest))
    delimiter = _delimiter_of(file)
    return _csv_items(_Lines(file, digest), defaulted, delimiter)
