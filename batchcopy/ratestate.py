"""Rates learned per (account, region), remembered between runs.

A nightly run would otherwise slow-start every lane and find its limit again, paying in
throttled requests for what it learned the night before. At the end of a run each lane
that ran records the rate it reached and whether a throttle showed that to be the limit;
the next run starts there (see :meth:`batchcopy.engine.Engine`).

The state is one small JSON file (by default ``rates.json`` in the user's cache folder, as
platformdirs gives it; ``BATCHCOPY_RATE_STATE`` names another)::

    {"format_version": 1,
     "endpoints": {"aws": {"eu-west-2": {"rate": 4.8, "throttled": true, "burst": 3,
                                         "at": 1764000000.0},
                           "123456789012/us-east-1": {...}}}}

``burst`` (1 if absent, as files written before it have it) is the service's bucket as the
run measured it: how many requests a lane may send at once at its start.

Lanes are keyed as :attr:`CopyJob.lane` is, under the endpoint (and profile) the run spoke
to: a rehearsal against an emulator must not set the pace of runs against Lightsail.

It is a cache, never a reason to fail: a file that cannot be read or parsed is ignored with
one warning (and replaced at the end of the run), one that cannot be written is left with
one warning. Runs that end at once both keep their lanes: each takes a lock, reads the file
again, merges its own lanes in and renames a complete new file into place, so no reader
ever sees half of one. Entries older than the run's ``max_age``, or dated more than
``CLOCK_SKEW`` ahead, are not used; an entry that is not a learned rate (0, negative, NaN)
costs its own lane only, with the one warning; entries not refreshed for ``FORGET`` are
dropped when the file is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

__all__ = ["ENV", "MAX_AGE", "MIN_RATE", "LearnedRate", "RateState", "default_path", "scope_of"]

log = logging.getLogger(__name__)

ENV = "BATCHCOPY_RATE_STATE"  # a state file to use instead of the one in the cache folder
FORMAT_VERSION = 1
MAX_AGE = 7 * 86400.0  # seconds: an older entry may describe a limit that has changed
CLOCK_SKEW = 3600.0  # seconds: an entry dated further ahead than this is not used
# One request in 100 s: below it a run would wait past any --job-timeout for its first
# slot, so a remembered rate below it is not a rate (--rate has the same floor).
MIN_RATE = 0.01
FORGET = 90 * 86400.0  # seconds: entries this old are dropped when the file is written
LOCK_WAIT = 5.0  # seconds to wait for another run's write before leaving the file as it is
LOCK_POLL = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class LearnedRate:
    """What one lane learned: the CopySnapshot ``rate`` it reached (requests/s), whether it
    was ``throttled`` at it (so it is the lane's limit, not just as far as it got), the
    service's ``burst`` it measured (1 if none), and ``at``, when (Unix time)."""

    rate: float
    throttled: bool
    at: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (MIN_RATE <= self.rate < math.inf and math.isfinite(self.at)):
            raise ValueError(f"not a learned rate: {self.rate!r} at {self.at!r}")
        if self.burst < 1:
            raise ValueError(f"not a burst: {self.burst!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate, 3),
            "throttled": self.throttled,
            "burst": self.burst,
            "at": round(self.at, 3),
        }

    @classmethod
    def from_json(cls, entry: Any) -> LearnedRate:
        """An entry as the file holds it; ValueError if it is not one."""
        if not isinstance(entry, dict):
            raise ValueError(f"an entry is not an object: {entry!r}")
        rate, throttled, at = entry.get("rate"), entry.get("throttled"), entry.get("at")
        if not (_number(rate) and _number(at) and isinstance(throttled, bool)):
            raise ValueError(f"an entry lacks rate, throttled or at: {entry!r}")
        burst = entry.get("burst", 1)
        if not (isinstance(burst, int) and not isinstance(burst, bool)):
            raise ValueError(f"an entry's burst is not a whole number: {entry!r}")
        return cls(rate=float(rate), throttled=throttled, at=float(at), burst=burst)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def default_path() -> Path:
    """Where rates are remembered unless a run names a file: ``$BATCHCOPY_RATE_STATE``, or
    ``rates.json`` in the user's cache folder."""
    if named := os.environ.get(ENV):
        return Path(named)
    import platformdirs  # only runs that remember rates need it

    return Path(platformdirs.user_cache_dir("batchcopy", appauthor=False)) / "rates.json"


def scope_of(endpoint_url: str | None, profile: str | None) -> str:
    """The part of the file a run's lanes belong to: the endpoint it calls ("aws" for
    Lightsail's own) and the AWS profile, whose base account its unnamed lanes are."""
    where = endpoint_url or "aws"
    return f"{where} profile {profile}" if profile else where


class RateState:
    """The state file at ``path``, as seen by runs in ``scope``."""

    def __init__(
        self,
        path: Path,
        *,
        scope: str = "aws",
        max_age: float = MAX_AGE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.scope = scope
        self.max_age = max_age
        self._wall = wall
        self._warned = False  # a run says what is wrong with its state file once

    def __repr__(self) -> str:
        return f"<RateState {str(self.path)!r} scope={self.scope!r} max_age={self.max_age:g}s>"

    def load(self) -> dict[str, LearnedRate]:
        """This scope's entries younger than ``max_age``, by lane; none (with one warning)
        if the file cannot be read or is not a state file."""
        try:
            endpoints, damaged = self._read()
        except (OSError, ValueError) as exc:
            self._warn(f"remembered rates ignored ({exc}); every lane starts afresh")
            return {}
        if damaged:
            self._warn(f"{len(damaged)} remembered rates ignored ({damaged[0]})")
        now = self._wall()
        oldest, newest = now - self.max_age, now + CLOCK_SKEW
        lanes = endpoints.get(self.scope, {})
        # An entry from the future (a clock set wrong, or a hand edit) is no measure of now.
        return {lane: learned for lane, learned in lanes.items() if oldest <= learned.at <= newest}

    def save(self, learned: Mapping[str, LearnedRate]) -> None:
        """Record ``learned`` for this scope, keeping every other lane the file holds (an
        unreadable file is replaced). A file that cannot be written is left as it is, with
        a warning: the run's outcome does not depend on it."""
        if not learned:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                try:
                    endpoints, _ = self._read()
                except ValueError:
                    endpoints = {}  # said when the run loaded it; replaced now
                endpoints.setdefault(self.scope, {}).update(learned)
                self._write(endpoints)
        except OSError as exc:
            self._warn(f"learned rates not remembered ({exc})")

    def _warn(self, problem: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("%s: %s", self.path, problem)

    def _read(self) -> tuple[dict[str, dict[str, LearnedRate]], list[str]]:
        """Every entry in the file, by scope and lane, and the entries left out because they
        are not learned rates (with why): none if there is no file; ValueError if it is not
        a state file (torn, corrupted, another format)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, []
        except UnicodeDecodeError as exc:
            raise ValueError("not text") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a format_version {FORMAT_VERSION} rate state file")
        endpoints = data.get("endpoints")
        if not isinstance(endpoints, dict) or not all(
            isinstance(lanes, dict) for lanes in endpoints.values()
        ):
            raise ValueError("its endpoints are not objects of lanes")
        result: dict[str, dict[str, LearnedRate]] = {}
        damaged: list[str] = []  # entries that are not learned rates, and why
        for scope, lanes in endpoints.items():
            kept = result.setdefault(scope, {})
            for lane, entry in lanes.items():
                try:
                    kept[lane] = LearnedRate.from_json(entry)
                except ValueError as exc:  # one bad entry costs that lane, not every lane
                    damaged.append(f"{lane}: {exc}")
        return result, damaged

    def _write(self, endpoints: dict[str, dict[str, LearnedRate]]) -> None:
        """Write the file whole under a temporary name, then rename it into place."""
        forget = self._wall() - FORGET
        kept = {
            scope: {
                lane: entry.to_json() for lane, entry in sorted(lanes.items()) if entry.at >= forget
            }
            for scope, lanes in sorted(endpoints.items())
        }
        text = json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "endpoints": {s: ls for s, ls in kept.items() if ls},
            },
            indent=1,
        )
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock beside the file (runs write it one at a time), waiting at most
        ``LOCK_WAIT`` seconds: a run must not hang on its cache."""
        lock = self.path.with_name(self.path.name + ".lock")
        with lock.open("a") as handle:
            waited = 0.0
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if waited >= LOCK_WAIT:
                        raise OSError(f"{lock} is held by another run") from None
                    time.sleep(LOCK_POLL)  # a write takes milliseconds
                    waited += LOCK_POLL
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
