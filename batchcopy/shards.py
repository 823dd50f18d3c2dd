"""Shards: one manifest split over N processes, each running whole lanes.

A lane is (account, target region): every rate limit Lightsail keeps belongs to one, so a
shard that holds whole lanes never shares a limit with another shard. The assignment is a
pure function of the manifest's content and N: the jobs each lane has, never the order of
rows or Python's salted ``hash()``, so every machine of a fleet computes the same one.
Lanes go, the biggest first (ties by a sha256 of the lane's name), to the shard with the
fewest jobs so far (ties: the lowest index) -- longest-processing-time first, which keeps
every shard within one lane's jobs of the average. Its digest (sha256 of N and the sorted
lane -> shard map) is recorded in each shard's journal and summary, so ``batchcopy merge``
knows the folders are shards of one split.

A shard of a :class:`~batchcopy.manifest.Manifest` is the same manifest restricted to the
shard's lanes (:func:`select`): its counts are the shard's, its sha256 the whole file's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from batchcopy.errors import ReportDirError, SettingsError
from batchcopy.jobs import CopyJob, lane_parts
from batchcopy.manifest import Manifest

__all__ = [
    "Assignment",
    "Shard",
    "assign",
    "assignment_of",
    "lanes_of",
    "refuse_other_report",
    "select",
    "select_jobs",
]

# The environments of the engines that start one process per shard.
KUBERNETES_INDEX = "JOB_COMPLETION_INDEX"
BATCH_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
BATCH_SIZE = "AWS_BATCH_JOB_ARRAY_SIZE"
MAX_SHARDS = 10_000  # an AWS Batch array job's most children; Kubernetes allows more


@dataclass(frozen=True, slots=True, kw_only=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``; ``source`` says where it was read from."""

    index: int
    count: int
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise SettingsError(f"must be 1 to {MAX_SHARDS} shards, got {self.count}")
        if not 0 <= self.index < self.count:
            raise SettingsError(
                f"shard index {self.index} is not one of 0 to {self.count - 1} "
                f"({self.count} shards, counted from 0)"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """What the shard's requests add to their User-Agent: ``batchcopy-shard/2-8``."""
        return f"batchcopy-shard/{self.index}-{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``: shard I (0-based) of N."""
        index, slash, count = text.strip().partition("/")
        if not slash or not _is_number(index) or not _is_number(count):
            raise SettingsError(f"must be I/N (shard I of N, from 0), or auto; got {text!r}")
        return cls(index=int(index), count=int(count), source=f"--shard {text.strip()}")

    @classmethod
    def from_environment(
        cls, shards: int | None, environ: Mapping[str, str] | None = None
    ) -> Shard:
        """The shard the engine that started this process gives it: a Kubernetes Indexed
        Job's ``JOB_COMPLETION_INDEX`` with ``shards`` (--shards: its completions), or an AWS
        Batch array job's ``AWS_BATCH_JOB_ARRAY_INDEX`` and ``AWS_BATCH_JOB_ARRAY_SIZE``."""
        env = os.environ if environ is None else environ
        if KUBERNETES_INDEX in env:
            index = env[KUBERNETES_INDEX]
            if shards is None:
                raise SettingsError(
                    f"{KUBERNETES_INDEX}={index} gives the index only: give the count with "
                    "--shards N (the Indexed Job's completions)"
                )
            if not _is_number(index):
                raise SettingsError(f"{KUBERNETES_INDEX}={index!r} is not a shard index")
            source = f"{KUBERNETES_INDEX}={index}, --shards {shards}"
            return cls(index=int(index), count=shards, source=source)
        if BATCH_INDEX in env:
            index, size = env[BATCH_INDEX], env.get(BATCH_SIZE, "")
            if not _is_number(index) or not _is_number(size):
                raise SettingsError(
                    f"{BATCH_INDEX}={index!r} and {BATCH_SIZE}={size!r} are not a shard index "
                    "and count"
                )
            if shards is not None and shards != int(size):
                raise SettingsError(f"--shards {shards} disagrees with {BATCH_SIZE}={size}")
            source = f"{BATCH_INDEX}={index}, {BATCH_SIZE}={size}"
            return cls(index=int(index), count=int(size), source=source)
        raise SettingsError(
            f"--shard auto needs {KUBERNETES_INDEX} (a Kubernetes Indexed Job, with --shards N) "
            f"or {BATCH_INDEX} and {BATCH_SIZE} (an AWS Batch array job); neither is set"
        )


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 9


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """Which shard each lane (:attr:`CopyJob.lane`) goes to, and the jobs it holds."""

    count: int
    shard_of: Mapping[str, int]  # lane -> shard index, sorted by lane
    jobs: Mapping[str, int]  # lane -> jobs, sorted by lane
    digest: str

    def lanes_in(self, index: int) -> list[str]:
        """The lanes of shard ``index``, sorted."""
        return [lane for lane, shard in self.shard_of.items() if shard == index]

    def jobs_in(self, index: int) -> int:
        """The jobs of shard ``index``."""
        return sum(self.jobs[lane] for lane in self.lanes_in(index))

    def to_json(self) -> dict[str, object]:
        return {
            "shards": self.count,
            "assignment_digest": self.digest,
            "per_shard": [
                {"shard": f"{i}/{self.count}", "jobs": self.jobs_in(i), "lanes": self.lanes_in(i)}
                for i in range(self.count)
            ],
        }


def assign(jobs_per_lane: Mapping[str, int], count: int) -> Assignment:
    """Split lanes (with their job counts) over ``count`` shards, balanced by jobs."""
    Shard(index=0, count=count)  # the same rule on the count
    order = sorted(jobs_per_lane.items(), key=lambda item: (-item[1], _digest(item[0])))
    loads = [(0, index) for index in range(count)]  # a heap: (jobs, index)
    shard_of: dict[str, int] = {}
    for lane, jobs in order:
        load, index = heapq.heappop(loads)
        shard_of[lane] = index
        heapq.heappush(loads, (load + jobs, index))
    ordered = dict(sorted(shard_of.items()))
    text = json.dumps({"shards": count, "lanes": sorted(ordered.items())}, separators=(",", ":"))
    return Assignment(
        count=count,
        shard_of=MappingProxyType(ordered),
        jobs=MappingProxyType(dict(sorted(jobs_per_lane.items()))),
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lanes_of(jobs: Iterable[CopyJob]) -> Counter[str]:
    """Jobs per lane."""
    return Counter(job.lane for job in jobs)


# A manifest's assignment, by what decides it: run and its progress display each ask.
_known: dict[tuple[object, ...], Assignment] = {}


def assignment_of(manifest: Manifest, count: int) -> Assignment:
    """The assignment of ``manifest``'s lanes over ``count`` shards (reads it once)."""
    key = (manifest.path, manifest.sha256, manifest.source_region, manifest.target_region, count)
    if key not in _known:
        whole = dataclasses.replace(manifest, lanes=None)  # a shard's part is assigned as a whole
        _known[key] = assign(lanes_of(whole.jobs()), count)
    return _known[key]


def select(manifest: Manifest, shard: Shard) -> tuple[Manifest, Assignment]:
    """The part of ``manifest`` that ``shard`` runs (its counts are the shard's; its jobs
    only those of the shard's lanes), and the assignment it is part of."""
    assignment = assignment_of(manifest, shard.count)
    lanes = assignment.lanes_in(shard.index)
    per_region: Counter[str] = Counter()
    per_account: Counter[str] = Counter()
    for lane in lanes:
        account, region = lane_parts(lane)
        per_region[region] += assignment.jobs[lane]
        per_account[account or ""] += assignment.jobs[lane]
    part = dataclasses.replace(
        manifest,
        total=sum(assignment.jobs[lane] for lane in lanes),
        per_region=MappingProxyType(dict(sorted(per_region.items()))),
        per_account=MappingProxyType(dict(sorted(per_account.items())))
        if manifest.per_account
        else MappingProxyType({}),
        lanes=frozenset(lanes),
    )
    return part, assignment


def select_jobs(jobs: list[CopyJob], shard: Shard) -> tuple[list[CopyJob], Assignment]:
    """The jobs of ``jobs`` (given in code) that ``shard`` runs, and the assignment."""
    assignment = assign(lanes_of(jobs), shard.count)
    return [job for job in jobs if assignment.shard_of[job.lane] == shard.index], assignment


def refuse_other_report(
    directory: Path, manifest_sha256: str, shard: str, assignment_digest: str
) -> None:
    """Raise :class:`ReportDirError` if ``directory`` holds the report of another shard,
    another shard count or (for a shard) another manifest: ``batchcopy merge`` would take
    one shard's rows for another's. A whole run over a whole run's report is as before."""
    try:
        earlier = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # none there (or not one batchcopy wrote): the journal check is the guard
    if not isinstance(earlier, dict):
        return
    was, digest = str(earlier.get("shard") or ""), str(earlier.get("assignment_digest") or "")
    if not was and not shard:
        return
    path = directory / "summary.json"
    if was != shard:
        said = f"shard {was}" if was else "a whole run's (no --shard)"
        now = f"shard {shard}" if shard else "a whole run"
        raise ReportDirError(
            f"{path} is the report of {said}, this run is {now}; give each shard a report "
            "folder of its own"
        )
    if earlier.get("manifest_sha256") != manifest_sha256:
        raise ReportDirError(
            f"{path} is the report of shard {was} of another manifest (sha256 "
            f"{str(earlier.get('manifest_sha256'))[:12]}...); give this run a new report folder"
        )
    if digest != assignment_digest:
        raise ReportDirError(
            f"{path} is the report of shard {was} of another assignment (digest "
            f"{digest[:12]}...); give this run a new report folder"
        )
