"""The manifest file: read twice (streams spooled), its format, size limits, and its lines.

A manifest is read once to check it and again for its jobs. What is checked and read again
is a private copy (owner-only, removed at exit): a file is copied as it is loaded, stdin and
pipes are spooled, so rows added to the file during a run are never read. The source's stamp
(inode, size, modification time) tells whether it changed while it was copied.
:class:`_Lines` gives the text readers lines while hashing every byte.
"""

from __future__ import annotations

import atexit
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from batchcopy.errors import Problem
from batchcopy.manifest.fields import _Issue

MAX_FILE_BYTES = 2 * 1024**3  # CSV and JSON Lines, streamed
MAX_JSON_BYTES = 256 * 1024**2  # a JSON document, read whole

# A valid line is a few KiB; the cap bounds memory when a file has no newlines or a CSV quote is
# left open (it is csv's field size limit too).
_MAX_LINE_BYTES = 1024**2
_BOM = b"\xef\xbb\xbf"
_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_KINDS = {"csv": "CSV", "json": "JSON", "jsonl": "JSON Lines"}


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _stamp(file: BinaryIO) -> tuple[int, int, int]:
    """What tells one state of an open file from another: inode, size, modification time."""
    info = os.fstat(file.fileno())
    return info.st_ino, info.st_size, info.st_mtime_ns


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


def _snapshot(path: Path) -> tuple[Path, bool]:
    """A private copy of the regular file ``path``, for every later read of the manifest
    (the run, its report, a resume's): rows written to the file after this never reach a
    run, and the rows a report lists are the rows checked. Also whether the file changed
    while it was copied (a copy of a file half written is no snapshot of it). A file too
    large to be a manifest is not copied: the size check refuses it as it is."""
    with path.open("rb") as file:
        before = _stamp(file)
        if before[1] > max(MAX_FILE_BYTES, MAX_JSON_BYTES):
            return path, False
        copy = _spool(file)
        return copy, _stamp(file) != before


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


def _too_large(file: BinaryIO, fmt: str, *, exact: bool) -> str | None:
    """Why the file is too large to read as ``fmt``, or None if it is not; ``exact`` is
    False for a spooled copy, which stopped a byte past the limit."""
    size = os.fstat(file.fileno()).st_size
    limit = MAX_JSON_BYTES if fmt == "json" else MAX_FILE_BYTES
    if size <= limit:
        return None
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
