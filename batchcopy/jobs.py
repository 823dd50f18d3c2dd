"""The values a run is made of: a copy job, its final status, and its result."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from batchcopy.accounts import ACCOUNT_RULE, is_account_id
from batchcopy.facts import NAME_RULE, is_valid_date, is_valid_name, lightsail_regions

__all__ = [
    "BASE_ACCOUNT",
    "INTERRUPTED_CODE",
    "INTERRUPTED_MESSAGE",
    "MANIFEST_FIELDS",
    "SENT_BEFORE",
    "AutoSnapshots",
    "CopyJob",
    "JobResult",
    "Sent",
    "SnapshotInfo",
    "Status",
    "lane_parts",
    "rates_by_region",
]

# A job's fields in manifest form (snake_case), in the order reports and retry.csv use.
MANIFEST_FIELDS = (
    "source_region",
    "target_region",
    "source_snapshot_name",
    "source_resource_name",
    "restore_date",
    "use_latest_restorable_auto_snapshot",
    "target_snapshot_name",
    "account",  # last: most manifests have none
)
# retry.csv's one column besides those: "true" on a job an earlier run sent whose outcome
# it never learned (or whose copy it left untagged or unfinished).
SENT_BEFORE = "sent_before"

# The error of a job that was sent but whose outcome a stopped run never learned.
INTERRUPTED_CODE = "Interrupted"
INTERRUPTED_MESSAGE = (
    "the run stopped before this copy's outcome was known; resume the run (--resume) "
    "to look the target up"
)


BASE_ACCOUNT = "base"  # how counts by account name rows without one (the base credentials')


def lane_parts(lane: str) -> tuple[str, str]:
    """``(account, region)`` of a lane key (:attr:`CopyJob.lane`); account "" for the base
    credentials'."""
    account, _, region = lane.rpartition("/")
    return account, region


def rates_by_region(rates: Mapping[str, float]) -> dict[str, float]:
    """Lanes' rates (keyed by lane) summed per target region, sorted by region."""
    summed: dict[str, float] = {}
    for lane, rate in rates.items():
        region = lane_parts(lane)[1]
        summed[region] = summed.get(region, 0.0) + rate
    return dict(sorted(summed.items()))


class Status(enum.StrEnum):
    """Where a job ended up."""

    STARTED = "started"  # Lightsail accepted the copy; it finishes on its own
    SUCCEEDED = "succeeded"  # the copy finished (when waited for)
    SKIPPED = "skipped"  # the target already existed, made from the same source
    FAILED = "failed"
    NOT_STARTED = "not_started"  # never sent: the run stopped first
    IN_PROGRESS = "in_progress"  # accepted, still copying when --wait-timeout ran out

    @property
    def ok(self) -> bool:
        """Whether this status lets the run exit 0."""
        return self in (Status.STARTED, Status.SUCCEEDED, Status.SKIPPED)

    @property
    def final(self) -> bool:
        """Whether a resume keeps this result rather than running or following the job."""
        return self not in (Status.NOT_STARTED, Status.IN_PROGRESS)


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyJob:
    """One snapshot copy into one target region (a manifest row naming several target
    regions makes one job per region; all carry the row's line).

    The source is either a manual snapshot (``source_snapshot_name``) or an automatic one
    (``source_resource_name`` with ``restore_date`` or ``use_latest``). ``account`` is the
    AWS account both are in ("": the base credentials'); Lightsail cannot copy across
    accounts.
    """

    line: int
    source_region: str
    target_region: str
    target_snapshot_name: str
    source_snapshot_name: str | None = None
    source_resource_name: str | None = None
    restore_date: str | None = None
    use_latest: bool = False
    account: str = ""
    # An earlier run may have sent it (a retry.csv row says so): its target is looked up
    # first and judged as one this job may have made, as a resume judges a journal's
    # intent. Not part of the job's identity: not in to_row.
    sent_before: bool = False

    def __post_init__(self) -> None:
        if self.account and not is_account_id(self.account):
            raise ValueError(f"{self.target}: account {self.account!r}: use {ACCOUNT_RULE}")
        # The manifest reader reports these per line; this guards jobs built in code, so a
        # bad one fails here, before any request.
        regions = lightsail_regions()
        for field_name in ("source_region", "target_region"):
            if getattr(self, field_name) not in regions:
                raise ValueError(
                    f"{self.target}: {field_name} {getattr(self, field_name)!r} is not a "
                    "Lightsail region"
                )
        for field_name in ("target_snapshot_name", "source_snapshot_name", "source_resource_name"):
            name = getattr(self, field_name)
            if name is not None and not is_valid_name(name):
                raise ValueError(f"{self.target}: {field_name} {name!r}: use {NAME_RULE}")
        if self.restore_date is not None and not is_valid_date(self.restore_date):
            raise ValueError(f"{self.target}: restore_date {self.restore_date!r}: use YYYY-MM-DD")
        manual, automatic = self.source_snapshot_name, self.source_resource_name
        if bool(manual) == bool(automatic):
            raise ValueError(
                f"{self.target}: give exactly one of source_snapshot_name or source_resource_name"
            )
        if manual == self.target_snapshot_name and self.source_region == self.target_region:
            raise ValueError(f"{self.target}: the target is the source itself; name the copy")
        if manual and (self.restore_date or self.use_latest):
            raise ValueError(
                f"{self.target}: restore_date and use_latest apply only to "
                "automatic snapshots (source_resource_name)"
            )
        if automatic and bool(self.restore_date) == self.use_latest:
            raise ValueError(
                f"{self.target}: an automatic snapshot needs exactly one of "
                "restore_date or use_latest"
            )

    @property
    def source_name(self) -> str:
        """The manual snapshot's name, or the resource whose automatic snapshot is copied."""
        return self.source_snapshot_name or self.source_resource_name or ""

    @property
    def target(self) -> str:
        """``region/name`` of the target (``account/region/name`` in another account than
        the base credentials'): unique within a manifest."""
        return f"{self.lane}/{self.target_snapshot_name}"

    @property
    def lane(self) -> str:
        """``region`` (``account/region``): where the copy is made, and whose limits it
        spends, since Lightsail's limits belong to the calling account."""
        return f"{self.account}/{self.target_region}" if self.account else self.target_region

    def copy_request(self) -> dict[str, Any]:
        """The CopySnapshot parameters (sent to a client in ``target_region``)."""
        params: dict[str, Any] = {
            "sourceRegion": self.source_region,
            "targetSnapshotName": self.target_snapshot_name,
        }
        if self.source_snapshot_name:
            params["sourceSnapshotName"] = self.source_snapshot_name
        else:
            params["sourceResourceName"] = self.source_resource_name
            if self.use_latest:
                params["useLatestRestorableAutoSnapshot"] = True
            else:
                params["restoreDate"] = self.restore_date
        return params

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CopyJob:
        """The job back from :meth:`to_row`'s form (plus ``line``), as reports hold it."""
        latest = str(row.get("use_latest_restorable_auto_snapshot", "")).lower() == "true"
        return cls(
            line=int(row.get("line", 0)),
            source_region=row["source_region"],
            target_region=row["target_region"],
            target_snapshot_name=row["target_snapshot_name"],
            source_snapshot_name=row.get("source_snapshot_name") or None,
            source_resource_name=row.get("source_resource_name") or None,
            restore_date=row.get("restore_date") or None,
            use_latest=latest,
            account=str(row.get("account") or ""),
        )

    def to_row(self) -> dict[str, str]:
        """The job in manifest form (snake_case columns), for reports and retry files; the
        account only when there is one, so a job of the base credentials reads as ever."""
        account = {"account": self.account} if self.account else {}
        return {
            "source_region": self.source_region,
            "target_region": self.target_region,
            "source_snapshot_name": self.source_snapshot_name or "",
            "source_resource_name": self.source_resource_name or "",
            "restore_date": self.restore_date or "",
            "use_latest_restorable_auto_snapshot": "true" if self.use_latest else "",
            "target_snapshot_name": self.target_snapshot_name,
            **account,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """A copy sent whose outcome is not known yet: the requests sent, and the automatic
    snapshot date a use_latest job was sent for ("" for others)."""

    attempts: int = 0
    date: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotInfo:
    """What batchcopy needs to know of an existing manual snapshot."""

    region: str
    name: str
    kind: str  # "instance" or "disk"
    state: str
    origin: str  # the instance or disk it was taken from (fromInstanceName / fromDiskName)
    size_in_gb: int
    created_at: float = 0.0  # epoch seconds
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoSnapshots:
    """An instance's or disk's automatic snapshots, as GetAutoSnapshots tells them."""

    kind: str  # "instance" or "disk"
    statuses: dict[str, str]  # date YYYY-MM-DD -> status (Success, Failed, InProgress, ...)
    created: dict[str, float]  # date -> epoch seconds it was taken; 0 when not said

    def restorable(self) -> list[str]:
        """The dates that can be copied, oldest first."""
        return sorted(date for date, status in self.statuses.items() if status == "Success")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """What happened to one job. Every job of a manifest gets exactly one."""

    job: CopyJob
    status: Status
    attempts: int = 0  # CopySnapshot requests sent
    throttles: int = 0
    reconciled: bool = False  # decided by looking the target up after an ambiguous outcome
    operation_id: str = ""
    error_code: str = ""
    error_message: str = ""
    started_at: float = 0.0  # epoch seconds; 0 when never started
    finished_at: float = 0.0
    tag_error: str = ""  # the copy stands, but tagging it failed
    # Failed with its last request's outcome unknown (the copy may have been made): not
    # final, so a resume looks the target up. Known in the run only, not a report column.
    outcome_unknown: bool = False
    # The automatic snapshot date a use_latest job was sent for (pinned when sent): its
    # copy, if made, is of that date, so a retry must ask for it. "" if never sent. Not a
    # report column; the journal keeps it beside the row.
    sent_date: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at) if self.started_at else 0.0

    def retry_job(self) -> CopyJob:
        """The job as retry.csv lists it: a use_latest job that was sent is pinned to the
        date it was sent for, so a run of retry.csv recognises its copy (tonight's latest
        would make that copy another source's); any other job as written."""
        if self.job.use_latest and self.sent_date:
            return replace(self.job, restore_date=self.sent_date, use_latest=False)
        return self.job

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobResult:
        """The result back from :meth:`to_row`'s form (a journal or results.jsonl row)."""
        return cls(
            job=CopyJob.from_row(row),
            status=Status(row["status"]),
            attempts=int(row.get("attempts", 0)),
            throttles=int(row.get("throttles", 0)),
            reconciled=bool(row.get("reconciled", False)),
            operation_id=str(row.get("operation_id", "")),
            error_code=str(row.get("error_code", "")),
            error_message=str(row.get("error_message", "")),
            started_at=float(row.get("started_at", 0.0)),
            finished_at=float(row.get("finished_at", 0.0)),
            tag_error=str(row.get("tag_error", "")),
        )

    def to_row(self) -> dict[str, Any]:
        """A flat record for results.jsonl / results.csv."""
        return {
            "line": self.job.line,
            **self.job.to_row(),
            "status": self.status.value,
            "attempts": self.attempts,
            "throttles": self.throttles,
            "reconciled": self.reconciled,
            "operation_id": self.operation_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "started_at": round(self.started_at, 3),
            "finished_at": round(self.finished_at, 3),
            "duration": round(self.duration, 3),
            "tag_error": self.tag_error,
        }
