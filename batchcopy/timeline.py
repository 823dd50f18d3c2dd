"""A run's time series: what the report page draws, recorded as the run goes (timeline.json).

Time is cut into buckets of ``bucket_seconds`` from the run's start. Per target region (all
accounts together) each bucket holds the jobs that ended well or failed in it, the write
requests sent (CopySnapshot and TagResource, which the lane's rate paces together; the
deletes for a prune), those of them throttled,
and the lanes' summed rate at the end of the bucket. There are never more than
:data:`MAX_BUCKETS`: when the run outlasts them the width doubles and neighbouring buckets
merge (counts add, the rate is the later one), so a day-long run of a million jobs writes a
file of tens of kilobytes. Per account (when there is more than one) the same ended counts,
for the :data:`ACCOUNTS_SHOWN` accounts with the most jobs; the rest are summed under
``"other"``.

Which statuses count where (:class:`batchcopy.jobs.Status`):

- ``completed``: ``started`` (Lightsail accepted the copy), ``succeeded`` (it finished,
  ``--wait``) and ``skipped`` (the target was there already): :attr:`Status.ok`.
- ``failed``: ``failed``, including jobs the run cut off in flight (``Interrupted``), which
  are counted in the bucket the run ended in.
- neither: ``not_started`` (never sent) and ``in_progress`` (still copying when
  ``--wait-timeout`` ran out): they did not end.

For a prune, ``deleted`` and ``gone`` are completed, ``failed`` is failed; a plan's rows
(kept, skipped, would_delete) and ``not_started`` are neither.

A resumed run's timeline is the new process's own: its clock starts when the resume starts,
and results it takes from the journal of earlier runs (jobs those finished) are not in the
buckets; they are counted per region under ``"earlier"``, so the buckets plus ``earlier``
equal summary.json's counts.

Wait times (``--wait``): for each copy that finished, the seconds from its acceptance to the
waiter seeing it done, in a log-scale histogram per size class (the smallest power of two of
GB, at least 8, that holds the snapshot). Bins are :data:`BIN_RATIO` wide and a percentile
is read as its bin's geometric middle (never above the largest seen), so it is within
:data:`WAIT_ERROR` (relative) of the exact nearest-rank percentile for waits over a tenth
of a second (shorter ones share one bin); ``max_s`` is exact.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchcopy.jobs import BASE_ACCOUNT, JobResult, Status

__all__ = [
    "ACCOUNTS_SHOWN",
    "BIN_RATIO",
    "COPY_WRITES",
    "DELETE_WRITES",
    "MAX_BUCKETS",
    "TIMELINE_NAME",
    "TIMELINE_VERSION",
    "WAIT_ERROR",
    "Timeline",
    "WaitHistogram",
    "copy_outcome",
    "merge_timelines",
    "prune_outcome",
]

TIMELINE_NAME = "timeline.json"
TIMELINE_VERSION = 1
MAX_BUCKETS = 600
FIRST_BUCKET = 1.0  # seconds
ACCOUNTS_SHOWN = 50  # beyond, accounts are summed as "other": the file stays small
# The requests a copy lane's rate paces: each copy, and the tags batchcopy puts on it.
COPY_WRITES = frozenset({"CopySnapshot", "TagResource"})
DELETE_WRITES = frozenset({"DeleteInstanceSnapshot", "DeleteDiskSnapshot"})
# Rates are read at most this often per bucket: reading them walks every lane.
_SAMPLES_PER_BUCKET = 4

BIN_RATIO = 2.0 ** (1 / 16)  # a wait histogram's bin: about 4.4 % wide
WAIT_ERROR = math.sqrt(BIN_RATIO) - 1  # about 2.2 %
_SHORTEST_WAIT = 0.1  # seconds: shorter waits share the first bin
_SMALLEST_CLASS = 8  # GB
_PERCENTILES = (("p50_s", 0.5), ("p90_s", 0.9))

_ENDED_WELL = frozenset({Status.STARTED, Status.SUCCEEDED, Status.SKIPPED})
_PRUNED = frozenset({"deleted", "gone"})  # PruneStatus values (a prune's skipped: never deleted)


def copy_outcome(status: Status) -> str | None:
    """A copy job's bucket: "completed", "failed", or None for one that did not end (see
    the module docstring)."""
    if status in _ENDED_WELL:
        return "completed"
    return "failed" if status is Status.FAILED else None


def prune_outcome(status: str) -> str | None:
    """A prune row's bucket (``status`` a :class:`batchcopy.prune.PruneStatus`):
    "completed" for deleted or gone, "failed", or None for a plan's rows and those never
    sent."""
    if status in _PRUNED:
        return "completed"
    return "failed" if status == "failed" else None


@dataclass(slots=True)
class _Series:
    """One region's (or account's) buckets; the lists grow up to the current bucket."""

    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    throttled: list[int] = field(default_factory=list)
    rate: list[float | None] = field(default_factory=list)

    def bump(self, kind: str, index: int) -> None:
        counts: list[int] = getattr(self, kind)
        if len(counts) <= index:
            counts.extend([0] * (index + 1 - len(counts)))
        counts[index] += 1

    def set_rate(self, index: int, rate: float) -> None:
        if len(self.rate) <= index:
            self.rate.extend([None] * (index + 1 - len(self.rate)))
        self.rate[index] = rate

    def halve(self) -> None:
        """Merge neighbouring buckets: counts add, the rate is the later one (if any)."""
        for kind in ("completed", "failed", "requests", "throttled"):
            counts: list[int] = getattr(self, kind)
            setattr(self, kind, [sum(counts[i : i + 2]) for i in range(0, len(counts), 2)])
        rates = self.rate
        self.rate = [
            rates[i + 1] if i + 1 < len(rates) and rates[i + 1] is not None else rates[i]
            for i in range(0, len(rates), 2)
        ]

    def total(self, kind: str) -> int:
        return sum(getattr(self, kind))


class WaitHistogram:
    """Durations on a log scale: bounded memory (a few hundred bins for any run), any
    percentile within :data:`WAIT_ERROR` of the exact one."""

    __slots__ = ("bins", "count", "max", "min")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.count = 0
        self.min = math.inf
        self.max = 0.0

    def __repr__(self) -> str:
        return f"<WaitHistogram count={self.count} max={self.max:g}s bins={len(self.bins)}>"

    def add(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        index = 0
        if seconds > _SHORTEST_WAIT:
            index = math.floor(math.log(seconds / _SHORTEST_WAIT, BIN_RATIO))
        self.bins[index] = self.bins.get(index, 0) + 1
        self.count += 1
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def percentile(self, fraction: float) -> float:
        """The nearest-rank percentile (``fraction`` 0.5 for the median), within
        :data:`WAIT_ERROR` of the exact one (and within the shortest and longest seen);
        0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen >= rank:
                middle = _SHORTEST_WAIT * math.pow(BIN_RATIO, index + 0.5) if index else 0.0
                return min(self.max, max(self.min, middle))
        return self.max  # unreachable: the bins hold count durations


def size_class(size_gb: int) -> int:
    """The smallest power of two of GB, at least 8, that holds ``size_gb``."""
    limit = _SMALLEST_CLASS
    while limit < size_gb:
        limit *= 2
    return limit


class Timeline:
    """Records a run's time series as it goes; :meth:`to_json` is timeline.json.

    ``clock`` gives wall-clock seconds (injectable: tests use a fake one); every method
    takes ``now`` to record at a given time instead. ``writes`` are the actions counted as
    ``requests`` (:data:`COPY_WRITES`, or :data:`DELETE_WRITES` for a prune). ``rates``, if
    given, is read (a few times per bucket, as events come) for each region's rate.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        writes: Iterable[str] = COPY_WRITES,
        rates: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self._clock = clock
        self._writes = frozenset(writes)
        self.rates = rates
        self.started_at = clock()
        self.bucket_seconds = FIRST_BUCKET
        self._buckets = 0  # buckets in use so far
        self._regions: dict[str, _Series] = {}
        self._accounts: dict[str, _Series] = {}
        self._earlier: dict[str, dict[str, int]] = {}
        self._waits: dict[int, WaitHistogram] = {}
        self._sampled_at = -math.inf

    def __repr__(self) -> str:
        return (
            f"<Timeline buckets={self._buckets} of {self.bucket_seconds:g}s "
            f"regions={sorted(self._regions)}>"
        )

    def add_result(self, result: JobResult, now: float | None = None) -> None:
        """Count a job that ended, in the bucket of ``now`` (see the module docstring for
        which statuses count); others are ignored."""
        job = result.job
        self.add(job.target_region, job.account, copy_outcome(result.status), now)

    def add(self, region: str, account: str, kind: str | None, now: float | None = None) -> None:
        """Count one job (or prune row) that ended ``kind`` ("completed" or "failed"; None:
        it did not end, not counted) in ``region`` and ``account`` ("": the base
        credentials')."""
        if kind is None:
            return
        index = self._index(now)
        self._series(self._regions, region).bump(kind, index)
        self._series(self._accounts, account or BASE_ACCOUNT).bump(kind, index)

    def add_earlier(self, region: str, kind: str | None) -> None:
        """Count a job (or row) in ``region`` that ended ``kind`` in an earlier run (a resume
        takes it from the journal): not in any bucket, but under ``"earlier"``."""
        if kind is None:
            return
        self._earlier.setdefault(region, {"completed": 0, "failed": 0})[kind] += 1

    def request(self, region: str, now: float | None = None) -> None:
        """A write request sent in ``region``."""
        self._series(self._regions, region).bump("requests", self._index(now))

    def throttled(self, region: str, now: float | None = None) -> None:
        """A write request throttled in ``region``."""
        self._series(self._regions, region).bump("throttled", self._index(now))

    def on_call(self, region: str, action: str) -> None:
        """A request of ``action`` about to be sent in ``region`` (the clients' hook,
        :meth:`batchcopy.lightsail.LightsailClients.watch`): a write counts as a request."""
        if action in self._writes:
            self.request(region)
        else:
            self._index(None)  # still a moment to read the rates at

    def on_throttle(self, region: str, action: str) -> None:
        """A request of ``action`` throttled in ``region`` (the clients' hook): a write's
        throttle is drawn beside the writes sent; a read's has a budget of its own, and
        summary.json counts it by action."""
        if action in self._writes:
            self.throttled(region)

    def sample_rates(self, rates: Mapping[str, float], now: float | None = None) -> None:
        """Each region's rate now, requests/s: the bucket's rate, unless a later one in it."""
        index = self._index(now, sample=False)
        for region, rate in rates.items():
            self._series(self._regions, region).set_rate(index, round(rate, 3))

    def waited(self, size_gb: int, seconds: float) -> None:
        """A copy of ``size_gb`` that took ``seconds`` from acceptance to done."""
        self._waits.setdefault(size_class(size_gb), WaitHistogram()).add(seconds)

    def to_json(self) -> dict[str, Any]:
        """timeline.json's content, up to now (the rates read once more first, if there is
        a source): the last bucket is the run's end, even after a quiet spell."""
        self._index(None, sample=False)
        if self.rates is not None:
            self.sample_rates(self.rates())
        count = max(1, self._buckets)
        started = dt.datetime.fromtimestamp(self.started_at, dt.UTC)
        data: dict[str, Any] = {
            "version": TIMELINE_VERSION,
            "started_at": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "bucket_seconds": self.bucket_seconds,
            "regions": {
                region: _series_json(series, count, rates=True)
                for region, series in sorted(self._regions.items())
            },
        }
        accounts = {name: s for name, s in self._accounts.items() if s.completed or s.failed}
        if len(accounts) > 1:
            data["accounts"] = _accounts_json(accounts, count)
        if self._earlier:
            data["earlier"] = dict(sorted(self._earlier.items()))
        if self._waits:
            data["wait"] = {
                "by_size": [
                    {
                        "size_gb_max": limit,
                        "count": waits.count,
                        **{name: round(waits.percentile(p), 1) for name, p in _PERCENTILES},
                        "max_s": round(waits.max, 1),
                    }
                    for limit, waits in sorted(self._waits.items())
                ]
            }
        return data

    def _series(self, table: dict[str, _Series], key: str) -> _Series:
        series = table.get(key)
        if series is None:
            series = table[key] = _Series()
        return series

    def _index(self, now: float | None, *, sample: bool = True) -> int:
        """The bucket of ``now`` (the clock's if None), merging buckets first if it lies
        past the last; before the start is the first bucket."""
        at = self._clock() if now is None else now
        index = max(0, int((at - self.started_at) // self.bucket_seconds))
        while index >= MAX_BUCKETS:
            self.bucket_seconds *= 2
            for series in (*self._regions.values(), *self._accounts.values()):
                series.halve()
            self._buckets = (self._buckets + 1) // 2
            index = max(0, int((at - self.started_at) // self.bucket_seconds))
        self._buckets = max(self._buckets, index + 1)
        if sample and self.rates is not None:
            every = self.bucket_seconds / _SAMPLES_PER_BUCKET
            if at - self._sampled_at >= every:
                self._sampled_at = at
                self.sample_rates(self.rates(), at)
        return index


def _series_json(series: _Series, count: int, *, rates: bool = False) -> dict[str, Any]:
    def padded(values: list[int]) -> list[int]:
        return values + [0] * (count - len(values))

    data: dict[str, Any] = {"completed": padded(series.completed), "failed": padded(series.failed)}
    if rates:
        data["requests"] = padded(series.requests)
        data["throttled"] = padded(series.throttled)
        # A bucket with no reading keeps the rate before it: the limiter held it.
        filled: list[float | None] = []
        last: float | None = None
        for i in range(count):
            value = series.rate[i] if i < len(series.rate) else None
            last = value if value is not None else last
            filled.append(last)
        data["rate"] = filled
    return data


def _accounts_json(accounts: dict[str, _Series], count: int) -> dict[str, Any]:
    """The accounts with the most jobs ended, by name; the rest summed as "other"."""

    def ended(name: str) -> int:
        return accounts[name].total("completed") + accounts[name].total("failed")

    ranked = sorted(accounts, key=lambda name: (-ended(name), name))
    shown = sorted(ranked[:ACCOUNTS_SHOWN])
    data = {name: _series_json(accounts[name], count) for name in shown}
    rest = ranked[ACCOUNTS_SHOWN:]
    if rest:
        other = _Series()
        for name in rest:
            for kind in ("completed", "failed"):
                values: list[int] = getattr(accounts[name], kind)
                mine: list[int] = getattr(other, kind)
                mine.extend([0] * (len(values) - len(mine)))
                for i, value in enumerate(values):
                    mine[i] += value
        data["other"] = _series_json(other, count)
    return data


def merge_timelines(timelines: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The timeline of a run split over shards (``batchcopy merge``), from theirs: one clock
    from the earliest start, buckets as wide as the widest shard's (widened further to
    stay within :data:`MAX_BUCKETS`); counts add, and a region's rate is the sum of the
    shards' rates in it (each paces its own lanes). How long copies waited is not merged
    (percentiles do not add); ``earlier`` counts add. None when no shard left a timeline
    that can be read."""
    parts = []
    for timeline in timelines:
        try:
            start = _parse_start(str(timeline["started_at"]))
            width = float(timeline["bucket_seconds"])
            regions = dict(timeline["regions"])
        except (KeyError, TypeError, ValueError):
            continue
        if width > 0 and math.isfinite(width) and math.isfinite(start):
            parts.append((start, width, regions, dict(timeline.get("accounts") or {}), timeline))
    if not parts:
        return None
    began = min(start for start, *_ in parts)
    width = max(w for _, w, *_ in parts)
    ends = max(start - began + w * _length(regions) for start, w, regions, *_ in parts)
    while ends / width > MAX_BUCKETS:
        width *= 2
    count = max(1, math.ceil(ends / width))
    regions_out: dict[str, dict[str, list[Any]]] = {}
    accounts_out: dict[str, dict[str, list[int]]] = {}
    earlier: dict[str, Counter[str]] = {}
    for start, w, regions, accounts, timeline in parts:

        def at(j: int, start: float = start, w: float = w) -> int:
            return min(count - 1, int((start - began + j * w) // width))

        for name, series in regions.items():
            out = regions_out.setdefault(name, _empty_series(count, rates=True))
            _add_counts(out, series, at, ("completed", "failed", "requests", "throttled"))
            rates: list[float | None] = [None] * count
            for j, rate in enumerate(series.get("rate") or []):
                if isinstance(rate, int | float):
                    rates[at(j)] = float(rate)  # the later reading of the bucket
            for i, rate in enumerate(rates):
                if rate is not None:
                    out["rate"][i] = (out["rate"][i] or 0.0) + rate
        for name, series in accounts.items():
            out = accounts_out.setdefault(name, _empty_series(count))
            _add_counts(out, series, at, ("completed", "failed"))
        for region, counts in dict(timeline.get("earlier") or {}).items():
            earlier.setdefault(region, Counter()).update(
                {k: v for k, v in dict(counts).items() if isinstance(v, int)}
            )
    data: dict[str, Any] = {
        "version": TIMELINE_VERSION,
        "started_at": dt.datetime.fromtimestamp(began, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "bucket_seconds": width,
        "regions": dict(sorted(regions_out.items())),
    }
    if len(accounts_out) > 1:
        data["accounts"] = dict(sorted(accounts_out.items()))
    if earlier:
        data["earlier"] = {region: dict(counts) for region, counts in sorted(earlier.items())}
    return data


def _parse_start(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _length(regions: Mapping[str, Any]) -> int:
    return max(
        [len(s.get("completed") or []) for s in regions.values() if isinstance(s, dict)] + [1]
    )


def _empty_series(count: int, *, rates: bool = False) -> dict[str, list[Any]]:
    kinds = ("completed", "failed", "requests", "throttled") if rates else ("completed", "failed")
    series: dict[str, list[Any]] = {kind: [0] * count for kind in kinds}
    if rates:
        series["rate"] = [None] * count
    return series


def _add_counts(
    out: dict[str, list[Any]],
    series: Mapping[str, Any],
    at: Callable[[int], int],
    kinds: Iterable[str],
) -> None:
    for kind in kinds:
        for j, value in enumerate(series.get(kind) or []):
            if isinstance(value, int):
                out[kind][at(j)] += value
