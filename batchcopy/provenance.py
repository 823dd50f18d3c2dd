"""Provenance: which snapshot a copy was made from, and the evidence that says so.

Lightsail records on a copy the instance or disk it came from (``fromInstanceName`` /
``fromDiskName``), not the snapshot: a copy of last night's snapshot of ``web-1`` looks like
a copy of tonight's. Two things tell them apart, and :func:`mismatch` asks both before a
target may count as a job's copy (``skipped``, or ours after a lost answer):

- the ``batchcopy:source`` tag, which batchcopy puts on every copy it makes: the job's
  :func:`source_label` (``us-east-1/web-1-2026-11-20``, or ``us-east-1/web-1@2026-11-20``
  for an automatic snapshot; a use_latest job is :func:`pin`-ned to the latest restorable
  date when it runs, and copies and labels that date). A different label is a different
  source.
- time: a copy is never older than its source. A target made before the source existed
  cannot be its copy, tagged or not (a snapshot deleted and made again under the same name
  carries the old tag's label).

What is not proven is a conflict, never a skip: a skipped job is one an operator will not
look at again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from batchcopy.jobs import AutoSnapshots, CopyJob, SnapshotInfo

__all__ = [
    "RUN_TAG",
    "SOURCE_TAG",
    "Source",
    "conflict",
    "is_reserved",
    "mismatch",
    "pin",
    "source_label",
]

SOURCE_TAG = "batchcopy:source"
RUN_TAG = "batchcopy:run-id"
_RESERVED_PREFIX = "batchcopy:"


def is_reserved(key: str) -> bool:
    """Whether a tag key is batchcopy's own (provenance): never the user's or a source's."""
    return key.lower().startswith(_RESERVED_PREFIX)


def pin(job: CopyJob, autos: AutoSnapshots | None) -> CopyJob:
    """``job``, and for use_latest the same job copying the latest restorable automatic
    snapshot of ``autos`` by its date (unchanged when there is none)."""
    dates = autos.restorable() if autos and job.use_latest else []
    if not dates:
        return job
    return dataclasses.replace(job, restore_date=dates[-1], use_latest=False)


def source_label(job: CopyJob) -> str:
    """The ``batchcopy:source`` tag value of ``job``'s copies: one value per source snapshot."""
    if job.source_snapshot_name:
        return f"{job.source_region}/{job.source_snapshot_name}"
    return f"{job.source_region}/{job.source_resource_name}@{job.restore_date or 'latest'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """What is known of a job's source snapshot when a target is judged against it."""

    kind: str  # "instance" or "disk"
    origin: str  # the instance or disk it was taken from
    size_in_gb: int | None  # None: not readable (automatic snapshots)
    created_at: float  # epoch seconds; 0 when unknown

    @classmethod
    def of(cls, snapshot: SnapshotInfo) -> Source:
        """A manual snapshot as a source."""
        return cls(
            kind=snapshot.kind,
            origin=snapshot.origin,
            size_in_gb=snapshot.size_in_gb,
            created_at=snapshot.created_at,
        )

    @classmethod
    def automatic(cls, job: CopyJob, autos: AutoSnapshots | None) -> Source | None:
        """The automatic snapshot ``job`` copies by its date (a use_latest job is
        :func:`pin`-ned first); None when there is no such restorable snapshot."""
        date = job.restore_date
        if autos is None or date is None or date not in autos.restorable():
            return None
        return cls(
            kind=autos.kind,
            origin=job.source_resource_name or "",
            size_in_gb=None,
            created_at=autos.created.get(date, 0.0),
        )


def conflict(
    job: CopyJob, target: SnapshotInfo, source: Source | None, *, ours: bool = False
) -> tuple[str, str]:
    """The error code and message for a ``target`` that is not provably a copy of ``job``'s
    source snapshot (see :func:`mismatch`); ("", "") when it is one."""
    label = source_label(job)
    if source is None:
        return "SourceNotFound", (
            f"{job.target} exists ({_made_from(target)}), but its source {label} no longer "
            "exists, so batchcopy cannot verify it is this job's copy; it is left as it is"
        )
    if reason := mismatch(job, target, source, ours=ours):
        return "TargetExists", (
            f"{job.target} already exists and is not provably a copy of {label}: {reason}; "
            "choose another target name for this job"
        )
    return "", ""


def mismatch(
    job: CopyJob, target: SnapshotInfo, source: Source | None, *, ours: bool = False
) -> str:
    """Why ``target`` is not provably a copy of ``job``'s source snapshot; "" when it is.

    ``source`` is None when the source no longer exists: then nothing can be proven.
    ``ours``: this job's own request (this run's, or an interrupted one's in the journal)
    may have made it, asking for exactly this source; then time alone may say so."""
    made = _made_from(target)
    if source is None:
        return f"{made}; the source no longer exists, so the copy cannot be verified"
    if (target.kind, target.origin) != (source.kind, source.origin):
        return f"{made}, not from {source.kind} {source.origin}"
    if source.size_in_gb is not None and target.size_in_gb != source.size_in_gb:
        return f"{made}, {target.size_in_gb} GB where the source has {source.size_in_gb} GB"
    label = dict(target.tags).get(SOURCE_TAG)
    if label is not None and label != source_label(job):
        return made if label else f"{made}; its {SOURCE_TAG} tag is empty"
    if label is None and job.source_resource_name and not ours:
        # Tonight's automatic snapshot is taken hours before it can be copied: a copy made
        # meanwhile (of last night's) is newer than it. Only a label tells the date.
        return (
            f"{made} without a {SOURCE_TAG} label, and of automatic snapshots only that "
            "label tells which date a copy was made from"
        )
    if not (target.created_at and source.created_at):
        return f"{made}; its age or its source's is unknown, so the copy cannot be verified"
    if target.created_at < source.created_at:
        return (
            f"{made} at {_when(target.created_at)}, before the source was taken "
            f"({_when(source.created_at)})"
        )
    return ""


def _made_from(target: SnapshotInfo) -> str:
    """What ``target`` was made from, as far as it says."""
    origin = f"{target.kind} {target.origin}" if target.origin else f"an unknown {target.kind}"
    label = dict(target.tags).get(SOURCE_TAG)
    if label:
        return f"it was copied from {label} ({origin})"
    return f"it was made from {origin}"


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
