"""What checking a manifest accumulates: problems (capped), job counts, duplicate targets."""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Sequence

from batchcopy.errors import Problem
from batchcopy.jobs import CopyJob
from batchcopy.manifest.fields import _Issue

MAX_PROBLEMS = 1000


class _Tally:
    """What checking accumulates: problems (capped), job counts and the duplicate index."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.more = 0
        self.total = 0
        self.per_region: Counter[str] = Counter()
        self.per_account: Counter[str] = Counter()
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
        self.per_account[job.account] += 1


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
