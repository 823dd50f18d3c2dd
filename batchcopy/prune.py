"""Prune, part one: which snapshots are batchcopy's copies, in which group, in scope.

A listed snapshot is a candidate only if it carries batchcopy's provenance label
(``batchcopy:source``, :func:`batchcopy.provenance.source_label`) and the label reads as one:
``region/snapshot`` or ``region/resource@YYYY-MM-DD``. Everything else (untagged snapshots,
however they are named, or a label another tool wrote) is never touched. A candidate's
group is the origin its copies were made from (the instance or disk, as Lightsail records
it, in the source region its label names) in one target region of one account: a nightly
copy of ``web-1``'s latest snapshot makes one group whose members are the nights.

:func:`decide` hands the candidates of each group to :mod:`batchcopy.retention`; a
candidate whose creation time Lightsail did not say cannot be placed among the nights and
is never deleted. :class:`PruneResult` is what became of one candidate: a report row.
The deletes themselves, their journal and report are :mod:`batchcopy.pruner`'s.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from batchcopy.facts import is_valid_date, is_valid_name, lightsail_regions
from batchcopy.jobs import CopyJob, SnapshotInfo
from batchcopy.provenance import RUN_TAG, SOURCE_TAG
from batchcopy.retention import Copy, Decision, Policy, decide

__all__ = [
    "PRUNE_COLUMNS",
    "Candidate",
    "PruneResult",
    "PruneScope",
    "PruneStatus",
    "Scope",
    "candidate",
    "decide_prune",
    "name_shape",
]

_NO_TIME = "its night is not known (no creation time, or one before 1970): it cannot be placed"
_FUTURE = "it is dated in the future (a clock is wrong): it cannot be placed among the nights"
_SKEW = 300.0  # seconds a copy may be dated after now: clocks a few minutes apart


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A copy batchcopy made, as its label and Lightsail describe it."""

    snapshot: SnapshotInfo
    account: str  # "": the base credentials'
    source_region: str
    source: str  # the source snapshot's name, or the instance or disk of an automatic one
    date: str  # the automatic snapshot's date; "" for a copy of a manual snapshot
    run_id: str  # the run that made it ("" when its tag is missing)

    @property
    def origin(self) -> str:
        """The instance or disk the copy was made from: Lightsail's record, else the label's
        resource (an automatic snapshot's), else the source snapshot's name."""
        return self.snapshot.origin or self.source

    @property
    def group(self) -> tuple[str, str, str, str, str, str]:
        """One origin, of one kind, in one target region of one account; copies of its
        automatic snapshots apart from copies of its manual ones (a nightly stream is not
        weighed against a migration's or an archive's copies of the same instance)."""
        info = self.snapshot
        made_from = "automatic" if self.date else "manual"
        return (self.account, info.region, self.source_region, info.kind, self.origin, made_from)

    @property
    def taken_at(self) -> float:
        """When the data the copy holds was taken, in epoch seconds, as retention weighs it:
        an automatic snapshot's date (the start of that UTC day: a copy made late, by a
        retry or a catch-up, still counts as its night); for a manual snapshot, the copy's
        own creation time (the source's is not recorded on the copy). 0: not known."""
        if self.date:
            day = dt.date.fromisoformat(self.date)
            return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
        return self.snapshot.created_at


def candidate(info: SnapshotInfo, account: str = "") -> Candidate | None:
    """The candidate ``info`` is, or None when batchcopy did not make it (no label, or a
    label that does not read as batchcopy's)."""
    tags = dict(info.tags)
    label = tags.get(SOURCE_TAG, "")
    region, slash, rest = label.partition("/")
    if not slash or region not in lightsail_regions():
        return None
    source, at, date = rest.partition("@")
    if not is_valid_name(source) or (at and not is_valid_date(date)):
        return None
    return Candidate(
        snapshot=info,
        account=account,
        source_region=region,
        source=source,
        date=date,
        run_id=tags.get(RUN_TAG, ""),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which candidates a prune considers: all of them, or those of some target regions,
    source regions, sources (globs on the source snapshot's name, on the instance or disk
    of an automatic one, or on the origin the copy was made from), one run, or the copies a
    manifest's jobs make on any night (:meth:`of_jobs`).

    A nightly job's manifest names tonight's copies, the night's date in their names
    (``web-1-auto-2026-11-29-eu-central-1``); the same job made the earlier nights under
    the same names with other dates, and those are what its prune is for. ``own`` holds,
    per job, ``(lane, shape, source_region, resource, target)``: the shape is the target
    name with every date in it standing for any date (:func:`name_shape`), the resource
    the instance or disk of an automatic snapshot. A copy is the job's if it is in the lane
    with that shape, from that source region, and made from the same instance or disk: for
    an automatic snapshot its label names it; for a manual one (whose name changes nightly)
    it is the origin of tonight's copy, the job's own target, which must be in the listing
    (without it, none of the job's other nights is taken). Copies another job made of the
    same instance under names of another form (an archive, a migration) stay out.
    """

    regions: Collection[str] = ()
    source_regions: Collection[str] = ()
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    run_id: str = ""
    own: Collection[tuple[str, str, str, str, str]] | None = None  # None: no manifest
    # Only this shard's lanes ("I/N", batchcopy.shards): those of the manifest's split when
    # there is one (so a lane is pruned by the shard that copies into it), else every
    # (account, region) listed, one each. "": every lane.
    shard: str = ""

    @classmethod
    def of_jobs(cls, jobs: Iterable[CopyJob], **rest: Any) -> Scope:
        """The scope of the copies ``jobs`` make on any night (and ``rest``'s other limits);
        only their target regions are listed, unless ``rest`` names regions."""
        own: set[tuple[str, str, str, str, str]] = set()
        regions: set[str] = set()
        for job in jobs:
            name = job.target_snapshot_name
            resource = job.source_resource_name or ""
            own.add((job.lane, name_shape(name), job.source_region, resource, name))
            regions.add(job.target_region)
        rest["regions"] = rest.get("regions") or tuple(sorted(regions))
        return cls(own=own, **rest)

    def wants(self, found: Candidate) -> bool:
        """Whether ``found`` passes the limits a candidate is judged on alone (all but the
        manifest's: see :meth:`narrow`)."""
        info = found.snapshot
        checks = (
            not self.regions or info.region in self.regions,
            not self.source_regions or found.source_region in self.source_regions,
            not self.include or any(_matches(found, glob) for glob in self.include),
            not any(_matches(found, glob) for glob in self.exclude),
            not self.run_id or found.run_id == self.run_id,
        )
        return all(checks)

    def to_json(self) -> dict[str, Any]:
        """The scope as JSON values (a journal keeps it for a resume)."""
        own = None if self.own is None else sorted(list(entry) for entry in self.own)
        return {
            "regions": sorted(self.regions),
            "source_regions": sorted(self.source_regions),
            "include": list(self.include),
            "exclude": list(self.exclude),
            "run_id": self.run_id,
            "own": own,
            **({"shard": self.shard} if self.shard else {}),
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Scope:
        """The scope :meth:`to_json` gave; ValueError, KeyError or TypeError if not one."""
        own = values["own"]
        return cls(
            regions=tuple(str(r) for r in values["regions"]),
            source_regions=tuple(str(r) for r in values["source_regions"]),
            include=tuple(str(g) for g in values["include"]),
            exclude=tuple(str(g) for g in values["exclude"]),
            run_id=str(values["run_id"]),
            own=None if own is None else {_own_entry(entry) for entry in own},
            shard=str(values.get("shard") or ""),
        )

    def lanes(self, accounts: Iterable[str], regions: Iterable[str]) -> list[tuple[str, str]]:
        """The (account, region) lanes to list: every pair, or this shard's."""
        pairs = [(account, region) for account in dict.fromkeys(accounts) for region in regions]
        if not self.shard:
            return pairs
        from batchcopy.shards import Shard, assign

        shard = Shard.parse(self.shard)
        keys = {pair: f"{pair[0]}/{pair[1]}" if pair[0] else pair[1] for pair in pairs}
        if self.own is not None:
            weights: Counter[str] = Counter(entry[0] for entry in self.own)
        else:
            weights = Counter(keys.values())
        made = assign(weights, shard.count)
        return [pair for pair in pairs if made.shard_of.get(keys[pair]) == shard.index]

    def narrow(self, listed: Iterable[Candidate]) -> list[Candidate]:
        """The candidates of one whole listing that are in scope."""
        wanted = [found for found in listed if self.wants(found)]
        if self.own is None:
            return wanted
        by_name = {(_lane(found), found.snapshot.name): found for found in wanted}
        made: set[tuple[str, str, str, str]] = set()  # (lane, shape, source region, origin)
        for lane, shape, source_region, resource, target in self.own:
            if resource:  # automatic: its label names the instance or disk, every night
                made.add((lane, shape, source_region, f"automatic:{resource}"))
            elif (tonight := by_name.get((lane, target))) is not None and not tonight.date:
                made.add((lane, shape, source_region, f"manual:{tonight.origin}"))
        return [found for found in wanted if _made_by(found) in made]


def _made_by(found: Candidate) -> tuple[str, str, str, str]:
    """What a manifest's job and its copies of every night have in common."""
    made_from = f"automatic:{found.source}" if found.date else f"manual:{found.origin}"
    return (_lane(found), name_shape(found.snapshot.name), found.source_region, made_from)


def _own_entry(entry: Any) -> tuple[str, str, str, str, str]:
    lane, shape, source_region, resource, target = entry
    return (str(lane), str(shape), str(source_region), str(resource), str(target))


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def name_shape(name: str) -> str:
    """``name`` with every date in it (YYYY-MM-DD) standing for any date: what the names a
    nightly job gives its copies have in common."""
    return _DATE.sub("{date}", name)


PruneScope = Scope  # the public name (batchcopy.PruneScope)


def _matches(found: Candidate, glob: str) -> bool:
    """Whether a source glob names ``found``: its source snapshot (or the instance or disk
    of an automatic one), or the instance or disk it was made from."""
    return fnmatchcase(found.source, glob) or fnmatchcase(found.origin, glob)


def _lane(found: Candidate) -> str:
    region = found.snapshot.region
    return f"{found.account}/{region}" if found.account else region


def decide_prune(
    candidates: Iterable[Candidate], policy: Policy, now: dt.datetime
) -> list[tuple[Candidate, Decision]]:
    """Each candidate with its decision, group by group (see :mod:`batchcopy.retention`),
    placed among the nights by :attr:`Candidate.taken_at`. A candidate whose time is not
    known, or is more than a few minutes after ``now``, is kept ("never", with the reason),
    and weighs nothing: a copy dated 2099 must not pass for the newest."""
    placed: list[Candidate] = []
    unplaced: list[tuple[Candidate, Decision]] = []
    latest = now.timestamp() + _SKEW
    for found in candidates:
        if 0 < found.taken_at <= latest:
            placed.append(found)
            continue
        # A copy dated after now would pass for the newest and push the real nights out.
        why = _FUTURE if found.taken_at > latest else _NO_TIME
        copy = Copy(name=found.snapshot.name, group=found.group, created_at=now, state="unknown")
        unplaced.append((found, Decision(copy=copy, action="never", reason=why)))
    copies = [
        Copy(
            name=found.snapshot.name,
            group=found.group,
            created_at=dt.datetime.fromtimestamp(found.taken_at, dt.UTC),
            state=found.snapshot.state,
        )
        for found in placed
    ]
    decided = list(zip(placed, decide(copies, policy, now), strict=True))
    return decided + unplaced


class PruneStatus(enum.StrEnum):
    """What became of one candidate."""

    KEPT = "kept"  # a rule keeps it
    SKIPPED = "skipped"  # never deleted: pending, failed without --delete-failed, ...
    WOULD_DELETE = "would_delete"  # no rule keeps it; the plan only (no --yes)
    DELETED = "deleted"  # deleted by this prune (or found gone after a lost answer)
    GONE = "gone"  # already gone when its delete was sent: deleted by someone else
    FAILED = "failed"  # its delete failed
    NOT_STARTED = "not_started"  # the prune was stopped before its delete

    @property
    def trouble(self) -> bool:
        """A delete that was meant to happen and did not: the prune exits 1."""
        return self in (PruneStatus.FAILED, PruneStatus.NOT_STARTED)


PRUNE_COLUMNS = [
    "account",
    "region",
    "kind",
    "name",
    "source_region",
    "source",
    "date",
    "origin",
    "run_id",
    "created_at",
    "state",
    "size_gb",
    "decision",
    "rules",
    "status",
    "reason",
    "error_code",
    "operation_id",
    "attempts",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneResult:
    """One candidate, its decision and what became of it: a row of the prune's report.

    ``decision`` is retention's (keep, delete, never); ``rules`` the rules keeping it;
    ``reason`` why it is never deleted, or the error of a failed delete."""

    found: Candidate
    decision: str
    status: PruneStatus
    rules: tuple[str, ...] = ()
    reason: str = ""
    error_code: str = ""
    operation_id: str = ""
    attempts: int = 0

    @property
    def key(self) -> str:
        """What tells this candidate from every other of the prune:
        ``[account/]region/kind/name``."""
        info = self.found.snapshot
        return f"{_lane(self.found)}/{info.kind}/{info.name}"

    @property
    def lane(self) -> str:
        """``[account/]region``, as :attr:`batchcopy.jobs.CopyJob.lane`."""
        return _lane(self.found)

    @classmethod
    def planned(cls, found: Candidate, decision: Decision, *, delete: bool) -> PruneResult:
        """The plan's row for ``found``: kept, skipped, or to be deleted (``delete``: its
        delete not yet sent, so not started; else would_delete)."""
        if decision.action == "keep":
            status = PruneStatus.KEPT
        elif decision.action == "never":
            status = PruneStatus.SKIPPED
        else:
            status = PruneStatus.NOT_STARTED if delete else PruneStatus.WOULD_DELETE
        return cls(
            found=found,
            decision=decision.action,
            status=status,
            rules=decision.rules,
            reason=decision.reason,
        )

    def to_row(self) -> dict[str, Any]:
        found, info = self.found, self.found.snapshot
        created = dt.datetime.fromtimestamp(info.created_at, dt.UTC) if info.created_at else None
        return {
            "account": found.account,
            "region": info.region,
            "kind": info.kind,
            "name": info.name,
            "source_region": found.source_region,
            "source": found.source,
            "date": found.date,
            "origin": found.origin,
            "run_id": found.run_id,
            "created_at": created.isoformat().replace("+00:00", "Z") if created else "",
            "state": info.state,
            "size_gb": info.size_in_gb,
            "decision": self.decision,
            "rules": " ".join(self.rules),
            "status": self.status.value,
            "reason": self.reason,
            "error_code": self.error_code,
            "operation_id": self.operation_id,
            "attempts": self.attempts,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PruneResult:
        """The result a row of :meth:`to_row` holds; ValueError, KeyError or TypeError when
        it does not read as one."""
        created = str(row["created_at"])
        stamp = dt.datetime.fromisoformat(created).timestamp() if created else 0.0
        info = SnapshotInfo(
            region=str(row["region"]),
            name=str(row["name"]),
            kind=str(row["kind"]),
            state=str(row["state"]),
            origin=str(row["origin"]),
            size_in_gb=int(row["size_gb"]),
            created_at=stamp,
        )
        if info.kind not in ("instance", "disk") or row["decision"] not in _DECISIONS:
            raise ValueError(f"kind {info.kind!r} or decision {row['decision']!r} unknown")
        found = Candidate(
            snapshot=info,
            account=str(row["account"]),
            source_region=str(row["source_region"]),
            source=str(row["source"]),
            date=str(row["date"]),
            run_id=str(row["run_id"]),
        )
        return cls(
            found=found,
            decision=str(row["decision"]),
            status=PruneStatus(row["status"]),
            rules=tuple(str(row["rules"]).split()),
            reason=str(row["reason"]),
            error_code=str(row["error_code"]),
            operation_id=str(row["operation_id"]),
            attempts=int(row["attempts"]),
        )


_DECISIONS = frozenset({"keep", "delete", "never"})
