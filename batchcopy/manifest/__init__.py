"""Manifests: the snapshot copies to make, read from CSV, JSON or JSON Lines.

A manifest holds one row per CSV row (after a header row), per object in a JSON array, or per
line of JSON Lines; a row makes one job per target region. A JSON document may also be
``{"defaults": {...}, "jobs": [...]}``, where defaults fill the fields a row leaves out. Fields
are spelled in snake_case or camelCase; an empty value or null is absent. As spreadsheets save
them, a CSV header may also use any case, spaces or hyphens (``Source Region``) and separate
its columns with ";" or tabs instead of commas: the header line alone decides, and in a file
separated by ";" a cell listing several target regions is quoted (``"eu-west-1;ap-south-1"``).

  field (or its camelCase form)         meaning
  source_region                         where the source lives (may come from a default)
  target_region                         where copies are made (may come from a default):
                                        one region, or several separated by ";"
                                        (eu-west-1;ap-south-1) or, in JSON, as a list;
                                        each is its own job, all on the row's line
  source_snapshot_name                  a manual snapshot to copy, or
  source_resource_name                  the instance or disk whose automatic snapshot to copy
  restore_date                          automatic only: that day's snapshot, YYYY-MM-DD, or
  use_latest_restorable_auto_snapshot   automatic only: true for the latest one
  target_snapshot_name                  the copy's name: unique per target region, the job's key
                                        (so a row fanning out makes one copy in each region)

Names follow :data:`batchcopy.facts.NAME_RULE`, regions are those botocore lists for
Lightsail (a row names each target region once), booleans are true/false, yes/no or 1/0. The
extension (``.csv``, ``.json``, ``.jsonl``, ``.ndjson``) names the format; otherwise (stdin
too) the first bytes decide.

Memory stays flat however long a manifest is: CSV and JSON Lines are streamed a line at a time,
a JSON document (smaller, by :data:`MAX_JSON_BYTES`) is decoded one row at a time, a row
makes at most one job per Lightsail region, and finding duplicates keeps only an 8-byte digest
per target (per job, so a fanned-out row costs one per region). Checking and
:meth:`Manifest.jobs` share one parser, so each rule is written once.
"""

from __future__ import annotations

import atexit
import csv
import difflib
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, BinaryIO, NamedTuple, Protocol

from batchcopy.errors import ManifestError, Problem
from batchcopy.facts import NAME_RULE, is_valid_date, is_valid_name, lightsail_regions
from batchcopy.jobs import CopyJob

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_FILE_BYTES",
    "MAX_JSON_BYTES",
    "MAX_PROBLEMS",
    "Manifest",
    "load_manifest",
]

MAX_FILE_BYTES = 2 * 1024**3  # CSV and JSON Lines, streamed
MAX_JSON_BYTES = 256 * 1024**2  # a JSON document, read whole
MAX_FIELD_CHARS = 1024
MAX_PROBLEMS = 1000

# A valid line is a few KiB; the cap bounds memory when a file has no newlines or a CSV quote is
# left open (it is csv's field size limit too).
_MAX_LINE_BYTES = 1024**2
_BOM = b"\xef\xbb\xbf"
_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_KINDS = {"csv": "CSV", "json": "JSON", "jsonl": "JSON Lines"}
_REGIONS = ("source_region", "target_region")
_LATEST = "use_latest_restorable_auto_snapshot"
_SOURCES = "source_snapshot_name (a manual snapshot) or source_resource_name (automatic ones)"


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class _Issue(NamedTuple):
    """A problem before it is given the manifest's name."""

    line: int
    field: str
    message: str


class _Row(NamedTuple):
    """One job as written: canonical field -> raw value (str from CSV, any JSON value)."""

    line: int
    values: dict[str, object]


class _Invalid(Exception):
    """A value breaks its field's rules; each argument is a message saying how."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A manifest that passed every check: where it is, what it holds, and its jobs on demand."""

    path: Path  # the file to read again; for stdin or a pipe, a spooled copy removed at exit
    name: str  # as messages name it: the path as given, or "<stdin>"
    format: str  # "csv" | "json" | "jsonl"
    sha256: str
    total: int  # jobs, so a row fanning out to three regions counts three
    per_region: Mapping[str, int]  # jobs per target region, sorted by region
    source_region: str | None = None  # the defaults given to load_manifest
    target_region: str | None = None
    # The file as checked (inode, size, modification time): read again only while it is so.
    stamp: tuple[int, int, int] = (0, 0, 0)

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
    path, spooled, fmt, digest = None, False, "csv", hashlib.sha256()
    try:
        if not tally.problems:
            path, spooled = _readable_twice(source, stdin, from_stdin)
            with path.open("rb") as file:
                stamp = _stamp(file)
                fmt = _format_of("" if from_stdin else Path(name).suffix, file)
                size = os.fstat(file.fileno()).st_size
                limit = MAX_JSON_BYTES if fmt == "json" else MAX_FILE_BYTES
                if size > limit:
                    tally.add(_Issue(0, "", _too_large(size, limit, fmt, exact=not spooled)))
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
        if spooled and path is not None:
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
        source_region=source_region or None,
        target_region=target_region or None,
        stamp=stamp,
    )


_CHANGED_WHILE_CHECKED = "changed while it was being checked; run again once it is written"


def _stamp(file: BinaryIO) -> tuple[int, int, int]:
    """What tells one state of an open file from another: inode, size, modification time."""
    info = os.fstat(file.fileno())
    return info.st_ino, info.st_size, info.st_mtime_ns


class _Tally:
    """What checking accumulates: problems (capped), job counts and the duplicate index."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.more = 0
        self.total = 0
        self.per_region: Counter[str] = Counter()
        self._first_lines = _FirstLines()

    def add(self, checked: _Issue | Sequence[CopyJob | _Issue]) -> None:
        for item in [checked] if isinstance(checked, _Issue) else checked:
            if isinstance(item, CopyJob):
                self._count(item)
            elif len(self.problems) < MAX_PROBLEMS:
                self.problems.append(Problem(file=self.name, **item._asdict()))
            else:
                self.more += 1

    def _count(self, job: CopyJob) -> None:
        digest = hashlib.blake2b(job.target.encode(), digest_size=8).digest()
        first = self._first_lines.setdefault(int.from_bytes(digest), job.line)
        if first != job.line:
            message = f"{job.target} is already the target of line {first}; targets must be unique"
            self.add(_Issue(job.line, "target_snapshot_name", message))
            return
        self.total += 1
        self.per_region[job.target_region] += 1


class _FirstLines:
    """64-bit digest -> the line it was first seen on, in two flat arrays (open addressing).

    About 24 bytes a target; a dict of int to int costs over 100, which alone would take a
    million-row manifest past its memory budget.
    """

    def __init__(self) -> None:
        self._keys = array("Q", bytes(8 * 1024))  # 0 marks an empty slot
        self._lines = array("I", bytes(4 * 1024))
        self._used = 0

    def setdefault(self, key: int, line: int) -> int:
        key = key or 1
        keys, mask = self._keys, len(self._keys) - 1
        slot = key & mask
        while found := keys[slot]:
            if found == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot], self._lines[slot] = key, line
        self._used += 1
        if self._used * 2 > len(keys):  # stay at least half empty, so probes stay short
            self._grow()
        return line

    def _grow(self) -> None:
        old = zip(self._keys, self._lines, strict=True)
        size = 2 * len(self._keys)
        self._keys, self._lines = array("Q", bytes(8 * size)), array("I", bytes(4 * size))
        self._used = 0
        for key, line in old:
            if key:
                self.setdefault(key, line)


# -- the rules --------------------------------------------------------------------------------


def _defaults(source_region: str | None, target_region: str | None) -> dict[str, str]:
    given = {"source_region": source_region, "target_region": target_region}
    return {field: value for field, value in given.items() if value}


def _check(row: _Row, defaults: Mapping[str, str]) -> list[CopyJob] | list[_Issue]:
    """A row's jobs, one per target region in the order written; or every rule it breaks."""
    issues: list[_Issue] = []
    text: dict[str, str] = {}
    broken: set[str] = set()  # already reported, so "missing" is not said as well
    latest = False
    for field in _FIELDS:
        try:
            value = _value(field, row.values.get(field))
            if value is None and field in defaults:
                value = _value(field, defaults[field])
        except _Invalid as exc:
            issues += (_Issue(row.line, field, message) for message in exc.args)
            broken.add(field)
            continue
        if isinstance(value, bool):
            latest = value
        elif value is not None:
            text[field] = value
    issues += (_Issue(row.line, f, m) for f, m in _conflicts(text, latest, broken))
    if issues:
        return issues
    return [
        CopyJob(
            line=row.line,
            source_region=text["source_region"],
            target_region=region,
            target_snapshot_name=text["target_snapshot_name"],
            source_snapshot_name=text.get("source_snapshot_name"),
            source_resource_name=text.get("source_resource_name"),
            restore_date=text.get("restore_date"),
            use_latest=latest,
        )
        for region in text["target_region"].split(_SEPARATOR)
    ]


def _conflicts(text: dict[str, str], latest: bool, broken: set[str]) -> Iterator[tuple[str, str]]:
    """The rules between fields: what is missing, and what cannot go together."""
    for field in (*_REGIONS, "target_snapshot_name"):
        if field not in text and field not in broken:
            hint = "set it on the job or give a default" if field in _REGIONS else "name the copy"
            yield field, f"missing: {hint}"
    snapshot, resource = text.get("source_snapshot_name"), text.get("source_resource_name")
    date = text.get("restore_date")
    if snapshot and resource:
        yield "source_snapshot_name", f"give {_SOURCES}, not both"
    elif resource and date and latest:
        yield "restore_date", f"give restore_date or {_LATEST}=true, not both"
    elif resource and not (date or latest or {"restore_date", _LATEST} & broken):
        yield "restore_date", f"missing: an automatic snapshot needs it or {_LATEST}=true"
    elif snapshot:
        for field, given in (("restore_date", date), (_LATEST, latest)):
            if given:
                yield field, "only for automatic snapshots (source_resource_name); remove it"
    elif not (resource or {"source_snapshot_name", "source_resource_name"} & broken):
        yield "source_snapshot_name", f"missing: give {_SOURCES}"
    target, source_region = text.get("target_snapshot_name"), text.get("source_region")
    regions = text.get("target_region", "").split(_SEPARATOR)
    if snapshot and target == snapshot and source_region in regions:
        yield (
            "target_snapshot_name",
            (f"the source itself in {source_region}: a copy needs a name of its own there"),
        )


def _value(field: str, raw: object) -> str | bool | None:
    """The value of one field (None if absent), or _Invalid saying which rules it breaks.

    target_region's value is its regions joined by ";", each checked, none twice.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) and field == _LATEST:
        return raw
    if isinstance(raw, list) and field == "target_region":
        return _regions(raw, written=None)
    if not isinstance(raw, str):
        wanted = {_LATEST: "true or false", "target_region": "a string or a list of strings"}
        raise _Invalid(f"must be {wanted.get(field, 'a string')}, not {_kind(raw)}")
    value = raw.strip()
    if not value:
        return None
    if len(value) > MAX_FIELD_CHARS:
        raise _Invalid(f"too long ({len(value)} characters; the limit is {MAX_FIELD_CHARS})")
    return _RULES[field](value)


def _region(value: str) -> str:
    regions = lightsail_regions()
    if value in regions:
        return value
    close = difflib.get_close_matches(value, regions, n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    raise _Invalid(
        f"{_quote(value)} is not a Lightsail region{guess}; valid ones include "
        f"{', '.join(regions[:3])}; `aws lightsail get-regions` lists them all"
    )


def _targets(value: str) -> str:
    return _regions(value.split(_SEPARATOR), written=value)


def _regions(parts: Sequence[object], *, written: str | None) -> str:
    """The target regions joined by ";", in the order written; _Invalid says each part's fault.

    ``parts`` is a JSON list, or ``written`` (a cell or string) split at each ";".
    """
    limit = len(lightsail_regions())
    if not parts:
        raise _Invalid("must not be an empty list: give one region or more, or leave it out")
    if len(parts) > limit:  # so a huge list is one problem, not one per entry
        raise _Invalid(
            f"has {len(parts)} entries, but Lightsail has {limit} regions; name each region once"
        )
    regions: list[str] = []
    messages: list[str] = []
    seen: set[str] = set()
    for number, part in enumerate(parts, start=1):
        if not isinstance(part, str):
            messages.append(f"entry {number} must be a string, not {_kind(part)}")
            continue
        region = part.strip()
        if not region and written is not None:
            messages.append(
                f"{_quote(written)} has an empty entry; separate regions with single "
                "semicolons, like eu-west-1;ap-south-1"
            )
        elif not region:
            messages.append(f"entry {number} is empty; give a region or remove it")
        elif len(region) > MAX_FIELD_CHARS:
            messages.append(
                f"entry {number} is too long ({len(region)} characters; the limit is "
                f"{MAX_FIELD_CHARS})"
            )
        elif region in seen:
            messages.append(f"{_quote(region)} is listed twice; name each region once")
        else:
            seen.add(region)
            try:
                regions.append(_region(region))
            except _Invalid as exc:
                messages += exc.args
    if messages:
        raise _Invalid(*dict.fromkeys(messages))  # "a;;" or "a;a;a" need saying only once
    return _SEPARATOR.join(regions)


def _name(value: str) -> str:
    if is_valid_name(value):
        return value
    raise _Invalid(f"{_quote(value)} is not a valid name: {NAME_RULE}")


def _date(value: str) -> str:
    if is_valid_date(value):
        return value
    raise _Invalid(f"{_quote(value)} is not a real date written YYYY-MM-DD, like 2026-11-20")


def _boolean(value: str) -> bool:
    if value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    raise _Invalid(f"{_quote(value)} is not true or false (nor yes/no, 1/0)")


_SEPARATOR = ";"  # between target regions; no region name holds one
_RULES: dict[str, Callable[[str], str | bool]] = {
    "source_region": _region,
    "target_region": _targets,
    "source_snapshot_name": _name,
    "source_resource_name": _name,
    "restore_date": _date,
    _LATEST: _boolean,
    "target_snapshot_name": _name,
}
_FIELDS = tuple(_RULES)  # in the order reports and CopyJob.to_row use


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


_SPELLINGS = {spelling: field for field in _FIELDS for spelling in (field, _camel(field))}
_ACCEPTED = ", ".join(_FIELDS) + " (or camelCase)"


def _words(name: str) -> str:
    """A column name as snake_case words: "Source Region", "sourceRegion", "SOURCE-REGION"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return "_".join(word for word in re.split(r"[\s_-]+", spaced.lower()) if word)


def _column(name: str) -> str | None:
    """The field a CSV column names, in any case, its words joined by "_", "-", spaces or humps.

    Spreadsheets title-case and space their headers; JSON keys, written by programs, stay
    snake_case or camelCase (_SPELLINGS).
    """
    field = _words(name)
    return field if field in _RULES else None


# The CSV separators a header may use, first preferred (a tie goes to ","), as messages say them.
_DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
_QUOTE_REGIONS = (
    "; in a file with semicolons between columns, quote a cell that lists several regions: "
    '"eu-west-1;ap-south-1"'
)


def _quote(value: str) -> str:
    # ASCII escapes keep control characters and lone surrogates off the terminal.
    return json.dumps(value if len(value) <= 60 else value[:60] + "...")


def _kind(value: object) -> str:
    kinds = {bool: "true/false", dict: "an object", list: "an array", str: "a string"}
    return "null" if value is None else kinds.get(type(value), "a number")


# -- reading ----------------------------------------------------------------------------------


def _readable_twice(
    source: str | Path, stdin: IO[bytes] | None, from_stdin: bool
) -> tuple[Path, bool]:
    """The file itself, or a spooled copy of a stream; and whether it is a copy."""
    if from_stdin:
        return _spool(stdin or sys.stdin.buffer), True
    path = Path(source)
    with path.open("rb") as file:
        if stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return path, False
        return _spool(file), True  # a pipe, such as bash's <(command)


def _spool(stream: IO[bytes]) -> Path:
    left = max(MAX_FILE_BYTES, MAX_JSON_BYTES) + 1  # a byte over the limit says "too large"
    with tempfile.NamedTemporaryFile(prefix="batchcopy-", suffix=".manifest", delete=False) as f:
        path = Path(f.name)
        atexit.register(path.unlink, missing_ok=True)
        while left > 0 and (chunk := stream.read(min(left, _MAX_LINE_BYTES))):
            f.write(chunk)
            left -= len(chunk)
    return path


def _format_of(suffix: str, file: BinaryIO) -> str:
    """The format the extension names or, failing that, the one the first bytes suggest."""
    if fmt := _SUFFIXES.get(suffix.lower()):
        return fmt
    head = file.read(_MAX_LINE_BYTES)
    file.seek(0)
    start = head.removeprefix(_BOM).lstrip()
    if not start.startswith(b"{"):
        return "json" if start.startswith(b"[") else "csv"
    # An object on one line is JSON Lines, unless it is a whole {"jobs": ...} document; an
    # object spread over lines can only be a JSON document. Only the first line is read.
    first, newline, _ = start.partition(b"\n")
    try:
        value = json.loads(first) if newline or len(head) < _MAX_LINE_BYTES else None
    except (ValueError, RecursionError):
        value = None
    return "jsonl" if isinstance(value, dict) and "jobs" not in value else "json"


def _too_large(size: int, limit: int, fmt: str, *, exact: bool) -> str:
    amount = _human(size) if exact else f"over {_human(limit)}"
    advice = "use CSV or JSON Lines, which are streamed" if fmt == "json" else "split it up"
    return f"too large ({amount}; the limit for {_KINDS[fmt]} is {_human(limit)}): {advice}"


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _unreadable(name: str, exc: OSError) -> Problem:
    reason = exc.strerror or str(exc)
    return Problem(file=name, line=0, field="", message=f"cannot read it: {reason}")


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


def _delimiter_of(file: BinaryIO) -> str:
    """The CSV separator the header uses: "," unless ";" or a tab names more of its columns.

    Spreadsheets write ";" in many locales and tabs as "text". Only the header line decides,
    never a row: a target_region cell may itself hold ";" (several regions). The file is
    left where it was, so every byte is still read (and hashed) by the parser.
    """
    head = file.read(_MAX_LINE_BYTES)
    file.seek(0)
    for raw in head.removeprefix(_BOM).splitlines():
        if raw.strip(b" \t,;"):  # blank rows (a spreadsheet's ";;;" too) come before it
            header = raw.decode(errors="replace")
            return max(_DELIMITERS, key=lambda delimiter: _known(header, delimiter))
    return ","


def _known(header: str, delimiter: str) -> tuple[int, bool]:
    """How many fields a header names when split at ``delimiter``, and whether it splits."""
    try:
        cells = next(csv.reader([header], delimiter=delimiter), [])
    except csv.Error:
        return 0, False
    return sum(_column(cell) is not None for cell in cells), len(cells) > 1


class _Lines:
    """A binary file as text lines that hashes every byte, counts lines and notes faults.

    A line that is not UTF-8 or is too long still counts (later line numbers stay right);
    ``fault`` keeps the first such line since the reader last cleared it.
    """

    def __init__(self, file: BinaryIO, digest: _Digest) -> None:
        self._file = file
        self._digest = digest
        self.count = 0
        self.fault: _Issue | None = None

    def __iter__(self) -> Iterator[str]:
        read, update = self._file.readline, self._digest.update
        while raw := read(_MAX_LINE_BYTES + 1):
            update(raw)
            self.count += 1
            if len(raw) > _MAX_LINE_BYTES and not raw.endswith(b"\n"):
                size = _human(len(raw) + self._skip_rest())
                self._note(f"line too long ({size}; the limit is {_human(_MAX_LINE_BYTES)})")
                yield "\n"
                continue
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                where = f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                self._note(f"not valid UTF-8 ({where}); save the manifest as UTF-8")
                text = raw.decode(errors="replace")
            yield text.removeprefix("\ufeff") if self.count == 1 else text

    def _skip_rest(self) -> int:
        skipped = 0
        while chunk := self._file.readline(_MAX_LINE_BYTES):
            self._digest.update(chunk)
            skipped += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return skipped

    def _note(self, message: str) -> None:
        if self.fault is None:
            self.fault = _Issue(self.count, "", message)


def _csv_items(lines: _Lines, defaulted: frozenset[str], delimiter: str) -> Iterator[_Row | _Issue]:
    # The limit is process-wide, so it is set on every read: it bounds memory when a quote is
    # left open, and lets a long cell be measured and reported rather than crash the reader.
    csv.field_size_limit(_MAX_LINE_BYTES)
    columns: list[str | None] | None = None  # each column's field, once the header is read
    for line, cells in _csv_records(lines, delimiter):
        if isinstance(cells, _Issue):
            yield cells
            if columns is None:
                return  # without a header there is nothing to check the rows against
        elif not "".join(cells).strip():
            continue  # blank rows, including a spreadsheet's ",,,"
        elif columns is None:
            columns, issues = _csv_header(line, cells, defaulted, delimiter)
            yield from issues
            if not any(columns) or any(issue.field in _FIELDS for issue in issues):
                return  # no column known, or one missing or doubled: every row would say so
        else:
            values: dict[str, object] = {}
            for index, cell in enumerate(cells):
                field = columns[index] if index < len(columns) else None
                if field:
                    values[field] = cell
                elif field is None and cell.strip():
                    message = f"cell {index + 1} has a value but no column name"
                    yield _Issue(line, "", message + _QUOTE_REGIONS * (delimiter == ";"))
            yield _Row(line, values)


def _csv_records(lines: _Lines, delimiter: str) -> Iterator[tuple[int, list[str] | _Issue]]:
    """CSV records with the line each starts on, or the fault that spoiled one."""
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start, lines.fault = lines.count + 1, None
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, lines.fault or _Issue(start, "", _csv_trouble(str(exc)))
            if str(exc).startswith("field larger than field limit"):
                return  # the quoting is lost track of: what follows would be misread
            continue
        yield start, lines.fault or cells


def _csv_trouble(message: str) -> str:
    if message.startswith("field larger than field limit"):
        return (
            f"a cell over {_human(_MAX_LINE_BYTES)} long; is a quote left open? (read no further)"
        )
    if message.startswith("new-line character seen"):
        return r"a carriage return (\r) inside a row; end lines with \n or \r\n"
    return f"not valid CSV: {message}"


def _csv_header(
    line: int, cells: list[str], defaulted: frozenset[str], delimiter: str
) -> tuple[list[str | None], list[_Issue]]:
    """Each column's field ("" if unknown, None if unnamed), and the header's problems."""
    columns: list[str | None] = []
    issues: list[_Issue] = []
    seen: dict[str, str] = {}
    unknown: list[str] = []
    for cell in map(str.strip, cells):
        field = _column(cell)
        if not cell:
            columns.append(None)  # unnamed: a value under it is reported
        elif field and field not in seen:
            seen[field] = cell
            columns.append(field)
        else:
            columns.append("")  # reported once here, then ignored
            if field:
                message = f"two columns ({seen[field]}, {cell}); keep one"
                issues.append(_Issue(line, field, message))
            else:
                unknown.append(cell)
    if unknown:
        message = _unknown_columns(unknown, delimiter, len(cells), anything_known=bool(seen))
        issues.insert(0, _Issue(line, "header", message))
        if not seen:
            return columns, issues  # not a manifest header: listing every field again is noise
    for field in ("target_snapshot_name", *_REGIONS):
        if field not in seen and field not in defaulted:
            default = " (or give a default)" * (field in _REGIONS)
            issues.append(_Issue(line, field, f"no such column: add it{default}"))
    if "source_snapshot_name" not in seen and "source_resource_name" not in seen:
        issues.append(_Issue(line, "source_snapshot_name", f"no such column: add {_SOURCES}"))
    return columns, issues


def _unknown_columns(
    unknown: list[str], delimiter: str, count: int, *, anything_known: bool
) -> str:
    """What the header holds that is no field, how it was split, and what to write instead."""
    named: list[str] = []
    for cell in unknown[:5]:
        close = difflib.get_close_matches(_words(cell), _FIELDS, n=1)
        named.append(_quote(cell) + (f" (did you mean {close[0]}?)" if close else ""))
    if len(unknown) > 5:
        named.append(f"and {len(unknown) - 5} more")
    if count > 1:
        split = f"columns separated by {_DELIMITERS[delimiter]}"
    else:
        split = "read as one column: the line has no comma, semicolon or tab"
    fields = ", ".join(_FIELDS) + " (case, spaces, hyphens and camelCase do not matter)"
    if anything_known:
        plural = "s" * (len(unknown) > 1)
        return f"unknown column{plural} {', '.join(named)} ({split}); name columns from {fields}"
    example = (";" if delimiter == ";" else ",").join(
        ("source_region", "target_region", "source_snapshot_name", "target_snapshot_name")
    )
    return (
        f"no column is a manifest field: {', '.join(named)} ({split}); write a header such as "
        f"{example}, naming columns from {fields}"
    )


def _number(digits: str) -> int | float:
    # No field is a number, so a huge one is simply wrong; Python refuses to make ints of
    # over 4,300 digits (a ValueError out of the parser), and a float says "inf" instead.
    return int(digits) if len(digits) <= 100 else float(digits)


_DECODER = json.JSONDecoder(parse_int=_number)


def _jsonl_items(lines: _Lines) -> Iterator[_Row | _Issue]:
    for text in lines:
        if lines.fault:
            yield lines.fault
            lines.fault = None
        elif text.strip():
            try:
                yield from _json_job(lines.count, _DECODER.decode(text.rstrip()), {})
            except json.JSONDecodeError as exc:
                where = f"{exc.msg} at column {exc.colno}"
                yield _Issue(lines.count, "", f"not valid JSON ({where}): one object per line")
            except RecursionError:
                yield _Issue(lines.count, "", "not valid JSON: nested too deeply")


def _json_job(line: int, job: object, defaults: dict[str, object]) -> Iterator[_Row | _Issue]:
    if not isinstance(job, dict):
        yield _Issue(line, "", f"a job must be a JSON object, not {_kind(job)}")
        return
    values = yield from _json_fields(line, job)
    for field, value in defaults.items():
        given = values.get(field)
        if given is None or (isinstance(given, str) and not given.strip()):
            values[field] = value
    yield _Row(line, values)


def _json_fields(line: int, obj: dict[str, Any]) -> Generator[_Issue, None, dict[str, object]]:
    """Problems with an object's keys; returns its values by field."""
    values: dict[str, object] = {}
    seen: dict[str, str] = {}
    for key, value in obj.items():
        field = _SPELLINGS.get(key)
        if field is None:
            yield _Issue(line, _quote(key), f"unknown field; use {_ACCEPTED}")
        elif field in seen:
            yield _Issue(line, field, f"given twice ({seen[field]}, {key}); keep one")
        else:
            seen[field], values[field] = key, value
    return values


def _json_items(file: BinaryIO, digest: _Digest) -> Iterator[_Row | _Issue]:
    raw = file.read(MAX_JSON_BYTES + 1)
    digest.update(raw)
    body = raw.removeprefix(_BOM)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        yield _Issue(line, "", f"not valid UTF-8 (byte 0x{body[exc.start]:02x}); save as UTF-8")
        return
    del raw, body  # only the text is needed from here on
    walk = _JsonWalk(text)
    try:
        yield from walk.document()
    except json.JSONDecodeError as exc:
        yield _Issue(exc.lineno, "", f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        yield _Issue(walk.line, "", "not valid JSON: nested too deeply")


_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _JsonWalk:
    """Decodes a JSON manifest one job at a time, knowing the line each job starts on.

    Lines are counted forward from the last position, never again from the start.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.line = 1
        self.end = 0  # just after the last array or object walked
        self._at = 0
        self._decode = _DECODER.raw_decode

    def document(self) -> Iterator[_Row | _Issue]:
        pos = self._skip(0)
        if pos == len(self.text):
            return  # nothing at all: reported as "no jobs"
        if self.text[pos] == "{":
            yield from self._object(pos)
        elif self.text[pos] == "[":
            for line, job in self._array(pos):
                yield from _json_job(line, job, {})
        else:
            message = 'expected an array of jobs, or an object with "jobs"'
            yield _Issue(self._line_at(pos), "", message)
            return
        if (end := self._skip(self.end)) < len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, end)

    def _object(self, pos: int) -> Iterator[_Row | _Issue]:
        """``{"defaults": {...}, "jobs": [...]}``: in either order, so the jobs are read last."""
        defaults: dict[str, object] = {}
        jobs: tuple[int, int] | None = None  # where the array starts, and its line
        seen_jobs = spoiled = False
        pos = self._skip(pos + 1)
        more = not self.text.startswith("}", pos)
        while more:
            if not self.text.startswith('"', pos):
                message = "Expecting property name enclosed in double quotes"
                raise json.JSONDecodeError(message, self.text, pos)
            key, pos = self._value(pos)
            pos = self._skip(self._expect(self._skip(pos), ":"))
            line, seen_jobs = self._line_at(pos), seen_jobs or key == "jobs"
            if key == "jobs" and self.text.startswith("[", pos):
                jobs = (pos, line)
                for _ in self._array(pos):  # check the syntax now, read the jobs at the end
                    pass
                pos = self.end
            else:
                value, pos = self._value(pos)
                for issue in self._member(line, key, value, defaults):
                    spoiled = spoiled or key in ("defaults", "jobs")
                    yield issue
            pos = self._skip(pos)
            more = not self.text.startswith("}", pos)
            if more:
                pos = self._skip(self._expect(pos, ","))
        end = pos + 1
        if not seen_jobs:
            message = 'missing: use {"jobs": [...]}, or .jsonl for one job per line'
            yield _Issue(self._line_at(pos), "jobs", message)
        elif jobs and not spoiled:  # bad defaults would spoil every job alike
            self._at, self.line = jobs
            for line, job in self._array(jobs[0]):
                yield from _json_job(line, job, defaults)
        self.end = end

    def _member(
        self, line: int, key: str, value: object, defaults: dict[str, object]
    ) -> Iterator[_Issue]:
        if key == "defaults" and isinstance(value, dict):
            defaults.update((yield from _json_fields(line, value)))
            for field, raw in defaults.items():
                try:
                    _value(field, raw)
                except _Invalid as exc:
                    for message in exc.args:
                        yield _Issue(line, field, f"the default {message}")
        elif key in ("defaults", "jobs"):
            wanted = "an object" if key == "defaults" else "an array"
            yield _Issue(line, key, f"must be {wanted}, not {_kind(value)}")
        else:
            yield _Issue(line, _quote(key), 'unknown key; use "defaults" and "jobs"')

    def _array(self, pos: int) -> Iterator[tuple[int, Any]]:
        """Each element of the array at ``pos`` with its line; leaves ``end`` after it."""
        pos = self._skip(pos + 1)
        more = not self.text.startswith("]", pos)
        while more:
            value, pos = self._value(pos)
            yield self.line, value
            pos = self._skip(pos)
            more = not self.text.startswith("]", pos)
            if more:
                pos = self._skip(self._expect(pos, ","))
        self.end = pos + 1

    def _value(self, pos: int) -> tuple[Any, int]:
        self._line_at(pos)  # a RecursionError carries no position: know the line beforehand
        return self._decode(self.text, pos)

    def _line_at(self, pos: int) -> int:
        self.line += self.text.count("\n", self._at, pos)
        self._at = pos
        return self.line

    def _skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def _expect(self, pos: int, mark: str) -> int:
        if not self.text.startswith(mark, pos):
            raise json.JSONDecodeError(f"Expecting {mark!r} delimiter", self.text, pos)
        return pos + 1
