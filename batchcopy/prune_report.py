"""The report of a prune: summary.json, and a row per candidate in results.jsonl and .csv.

Like a run's report (:mod:`batchcopy.report`), its files are written under temporary names
and renamed into place, so a reader never sees half of one. Every candidate has exactly one
row: kept (with its rules), skipped (with the reason), would_delete (the plan), deleted,
gone (someone else deleted it first), failed (with the error) or not_started.

Exit codes as a run's: 0 when every delete meant was done (or nothing was to be deleted),
1 when one failed, was not started or was left alone (a resume found its plan no longer
true), or a lane (an account, a region) could not be listed;
130/143 when stopped by a signal.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchcopy.errors import BatchcopyError
from batchcopy.jobs import BASE_ACCOUNT
from batchcopy.plan import GB_MONTH_USD
from batchcopy.prune import PRUNE_COLUMNS, PruneResult, PruneStatus
from batchcopy.report import FORMAT_VERSION, _inert, _write_atomically
from batchcopy.retention import Policy
from batchcopy.timeline import TIMELINE_NAME, Timeline

__all__ = ["LaneFailure", "PruneReport", "PruneSummary", "summarize", "write_prune_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneFailure:
    """A lane that could not be listed whole (region "": the account could not be reached):
    nothing in it was decided or deleted."""

    account: str
    region: str
    error_code: str
    message: str

    @classmethod
    def of(cls, account: str, region: str, exc: BatchcopyError) -> LaneFailure:
        code = getattr(exc, "code", "") or type(exc).__name__
        return cls(account=account, region=region, error_code=code, message=str(exc))

    def to_json(self) -> dict[str, str]:
        return {
            "account": self.account,
            "region": self.region,
            "error_code": self.error_code,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> LaneFailure:
        return cls(**{key: str(values.get(key, "")) for key in cls.__slots__})

    def __str__(self) -> str:
        where = "/".join(part for part in (self.account, self.region) if part)
        return f"{where or 'the base account'}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneSummary:
    """A prune's figures: what summary.json holds."""

    run_id: str
    delete: bool  # deletes were sent (--yes); else the figures are a plan
    policy: str  # as the command line gives it
    counts: dict[str, int]  # rows by status
    by_region: dict[str, dict[str, int]]  # target region -> status -> rows
    by_account: dict[str, dict[str, int]]  # account ("base": the base credentials') -> ...
    freed_gb: int  # deleted (or, in a plan, would be)
    lanes_failed: list[LaneFailure] = field(default_factory=list)
    seen: int = 0  # batchcopy's copies listed, in scope or not (0: not listed, a resume)
    requests: int = 0  # deletes sent by this invocation, retries included
    throttles: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0

    @property
    def candidates(self) -> int:
        return sum(self.counts.values())

    @property
    def monthly_saving(self) -> float:
        """Dollars a month the deletes save at most (Lightsail's $0.05 per GB-month of the
        snapshots' full size; it bills the storage they use, which may be less)."""
        return round(self.freed_gb * GB_MONTH_USD, 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "command": "prune",
            "run_id": self.run_id,
            "mode": "delete" if self.delete else "plan",
            "policy": self.policy,
            "candidates": self.candidates,
            "copies_seen": self.seen,
            "counts": self.counts,
            "by_region": self.by_region,
            "by_account": self.by_account,
            "freed_gb": self.freed_gb,
            "monthly_saving_usd": self.monthly_saving,
            "lanes_failed": [failure.to_json() for failure in self.lanes_failed],
            "delete_requests": self.requests,
            "throttled_requests": self.throttles,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": round(self.finished_at - self.started_at, 3),
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True, slots=True)
class PruneReport:
    """A prune's summary and its rows, sorted by account, region, kind and name."""

    summary: PruneSummary
    results: list[PruneResult]

    @property
    def exit_code(self) -> int:
        return self.summary.exit_code


def summarize(
    results: Mapping[str, PruneResult],
    failures: Iterable[LaneFailure],
    *,
    policy: Policy,
    run_id: str,
    delete: bool,
    requests: int,
    throttles: int,
    started_at: float,
    interrupted: int | None,
    seen: int = 0,
) -> PruneReport:
    """The report of ``results`` (by key); ``interrupted``: the exit code of a signal."""
    rows = [results[key] for key in sorted(results)]
    counts = Counter(result.status.value for result in rows)
    by_region: dict[str, Counter[str]] = defaultdict(Counter)
    by_account: dict[str, Counter[str]] = defaultdict(Counter)
    for result in rows:
        by_region[result.found.snapshot.region][result.status.value] += 1
        by_account[result.found.account or BASE_ACCOUNT][result.status.value] += 1
    freeing = (PruneStatus.DELETED, PruneStatus.WOULD_DELETE)
    skipped = PruneStatus.SKIPPED
    failures = list(failures)
    # A planned delete left alone (its plan was no longer true on a resume) was not done.
    trouble = bool(failures) or any(
        result.status.trouble or (result.decision == "delete" and result.status is skipped)
        for result in rows
    )
    summary = PruneSummary(
        run_id=run_id,
        delete=delete,
        policy=str(policy),
        counts={status.value: counts.get(status.value, 0) for status in PruneStatus},
        by_region={region: dict(c) for region, c in sorted(by_region.items())},
        by_account={account: dict(c) for account, c in sorted(by_account.items())},
        freed_gb=sum(r.found.snapshot.size_in_gb for r in rows if r.status in freeing),
        lanes_failed=failures,
        seen=seen,
        requests=requests,
        throttles=throttles,
        started_at=started_at,
        finished_at=time.time(),
        exit_code=interrupted if interrupted is not None else int(trouble),
    )
    return PruneReport(summary, rows)


def write_prune_report(
    directory: Path, report: PruneReport, timeline: Timeline | None = None
) -> None:
    """summary.json, results.jsonl and results.csv (and ``timeline``'s timeline.json) in
    ``directory``, each whole or not at all; summary.json last, so a reader that finds it
    finds the rest too."""
    rows = [result.to_row() for result in report.results]
    lines = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    _write_atomically(directory / "results.jsonl", lines)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=PRUNE_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _inert(value) for key, value in row.items()})
    _write_atomically(directory / "results.csv", table.getvalue())
    if timeline is not None:
        text = json.dumps(timeline.to_json(), separators=(",", ":")) + "\n"
        _write_atomically(directory / TIMELINE_NAME, text)
    summary = json.dumps(report.summary.to_json(), indent=2) + "\n"
    _write_atomically(directory / "summary.json", summary)
