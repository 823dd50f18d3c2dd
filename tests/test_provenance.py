"""An existing target counts as a job's copy only when it provably came from that job's
source snapshot: never a stale copy of an older snapshot of the same instance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import pytest

from batchcopy import CopyJob, Report, RetryPolicy, Status, copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, running_emulator
from batchcopy.jobs import SnapshotInfo
from batchcopy.plan import Plan, make_plan
from batchcopy.provenance import SOURCE_TAG, Source, mismatch, source_label
from tests.helpers import settings_for

SEED = {
    "regions": {
        "us-east-1": {
            "instances": [{"name": "web-1", "sizeInGb": 80}],
            "instanceSnapshots": [
                {
                    "name": f"web-1-{day}",
                    "fromInstanceName": "web-1",
                    "sizeInGb": 80,
                    "createdAt": f"{day}T03:00:00Z",
                }
                for day in ("2026-11-19", "2026-11-20")
            ],
            "autoSnapshots": {"web-1": ["2026-11-19"]},  # taken at 06:00 UTC
        }
    }
}


class Wall:
    """The emulator's clock, moved by hand: copies are stamped with its time."""

    def __init__(self, when: str) -> None:
        self.set(when)

    def set(self, when: str) -> None:
        self.now = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def manual(source: str, target: str = "dr-web") -> CopyJob:
    return CopyJob(
        line=2,
        source_region="us-east-1",
        target_region="eu-west-1",
        source_snapshot_name=source,
        target_snapshot_name=target,
    )


def automatic(target: str, *, date: str | None = None) -> CopyJob:
    return CopyJob(
        line=2,
        source_region="us-east-1",
        target_region="eu-west-1",
        source_resource_name="web-1",
        restore_date=date,
        use_latest=date is None,
        target_snapshot_name=target,
    )


def copy_requests(emulator: Emulator) -> int:
    return sum(
        n for (_, action, _), n in emulator.stats.requests.items() if action == "CopySnapshot"
    )


async def runs(
    emulator: Emulator, wall: Wall, *steps: tuple[str, CopyJob], **overrides: Any
) -> tuple[list[Report], Plan]:
    """Run each job at its time, then plan the last one at that time."""
    reports = []
    async with running_emulator(emulator) as url:
        settings = settings_for(url, **overrides)
        for when, job in steps:
            wall.set(when)
            reports.append(await copy_snapshots([job], settings))
        plan = await make_plan([steps[-1][1]], settings)
    return reports, plan


def only(report: Report) -> Any:
    (result,) = report.results
    return result


def assert_conflict(report: Report, says: str, plan: Plan | None = None) -> None:
    """The one job failed TargetExists saying ``says``, exit 1; the plan (if any) agrees."""
    result = only(report)
    assert (result.status, result.error_code) == (Status.FAILED, "TargetExists")
    assert says in result.error_message
    assert report.exit_code == 1
    if plan is not None:
        assert [p.code for p in plan.problems] == ["TargetExists"]


async def test_a_copy_of_an_older_snapshot_is_a_conflict_not_a_skip() -> None:
    """Yesterday's copy under the name asked for today's snapshot fails TargetExists, naming
    what it was copied from; nothing is sent, exit 1, and plan says the same."""
    wall = Wall("2026-11-19T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    (first, second), plan = await runs(
        emulator,
        wall,
        ("2026-11-19T12:00:00", manual("web-1-2026-11-19")),
        ("2026-11-20T12:00:00", manual("web-1-2026-11-20")),
    )
    assert only(first).status is Status.STARTED
    assert_conflict(second, "copied from us-east-1/web-1-2026-11-19", plan)
    assert emulator.stats.copies_accepted == {"eu-west-1/dr-web": 1}
    assert plan.skipped == 0


async def test_an_untagged_copy_made_before_the_source_existed_is_a_conflict() -> None:
    """Without a provenance tag, a target older than the source cannot be its copy."""
    wall = Wall("2026-11-19T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    async with running_emulator(emulator) as url:
        await copy_snapshots([manual("web-1-2026-11-19")], settings_for(url))
        emulator.sim.regions["eu-west-1"].snapshots["dr-web"].tags.clear()  # made by hand, say
        wall.set("2026-11-20T12:00:00")
        report = await copy_snapshots([manual("web-1-2026-11-20")], settings_for(url))
    result = only(report)
    assert (result.status, result.error_code) == (Status.FAILED, "TargetExists")
    assert "made from instance web-1 at 2026-11-19 12:00:00 UTC" in result.error_message
    assert "before the source was taken" in result.error_message
    assert copy_requests(emulator) == 1


async def test_the_same_snapshot_again_is_skipped_without_a_request() -> None:
    """The proven case: the copy of this very snapshot is skipped; no copy, no tag request."""
    wall = Wall("2026-11-20T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    async with running_emulator(emulator) as url:
        await copy_snapshots([manual("web-1-2026-11-20")], settings_for(url))
        before = sum(emulator.stats.requests.values())
        wall.set("2026-11-21T12:00:00")
        report = await copy_snapshots([manual("web-1-2026-11-20")], settings_for(url))
    assert only(report).status is Status.SKIPPED
    assert report.exit_code == 0
    assert copy_requests(emulator) == 1
    assert sum(emulator.stats.requests.values()) - before <= 3  # two listings, one look-up
    tag_requests = sum(
        n for (_, action, _), n in emulator.stats.requests.items() if action == "TagResource"
    )
    assert tag_requests == 1  # the first run's only


async def test_an_automatic_copy_of_another_date_is_a_conflict() -> None:
    """restore_date 2026-11-20 into a name holding the 2026-11-19 automatic copy: TargetExists."""
    wall = Wall("2026-11-19T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    async with running_emulator(emulator) as url:
        await copy_snapshots([automatic("dr-auto", date="2026-11-19")], settings_for(url))
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": ["2026-11-20"]}}}})
        wall.set("2026-11-20T12:00:00")
        report = await copy_snapshots([automatic("dr-auto", date="2026-11-20")], settings_for(url))
        again = await copy_snapshots([automatic("dr-auto", date="2026-11-19")], settings_for(url))
    result = only(report)
    assert (result.status, result.error_code) == (Status.FAILED, "TargetExists")
    assert "copied from us-east-1/web-1@2026-11-19" in result.error_message
    assert only(again).status is Status.SKIPPED  # the date it was copied from: proven
    assert copy_requests(emulator) == 1


async def test_a_latest_copy_is_stale_once_a_newer_automatic_snapshot_exists() -> None:
    """use_latest: the same day it is skipped; after tonight's automatic snapshot, yesterday's
    copy is older than the latest source: a conflict, never "already there"."""
    wall = Wall("2026-11-19T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    async with running_emulator(emulator) as url:
        settings = settings_for(url)
        await copy_snapshots([automatic("dr-latest")], settings)
        wall.set("2026-11-19T18:00:00")
        same_day = await copy_snapshots([automatic("dr-latest")], settings)
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": ["2026-11-20"]}}}})
        wall.set("2026-11-20T12:00:00")
        next_day = await copy_snapshots([automatic("dr-latest")], settings)
        plan = await make_plan([automatic("dr-latest")], settings)
    assert only(same_day).status is Status.SKIPPED
    assert_conflict(next_day, "copied from us-east-1/web-1@2026-11-19", plan)
    result = only(next_day)
    # The label names the date copied, not "latest": tomorrow's latest is another source.
    assert emulator.sim.regions["eu-west-1"].snapshots["dr-latest"].tags[SOURCE_TAG] == (
        "us-east-1/web-1@2026-11-19"
    )
    assert result.job.use_latest  # the report shows the job as the manifest has it


async def test_a_latest_copy_made_while_tonights_snapshot_was_in_progress_is_stale() -> None:
    """Tonight's automatic snapshot, taken before the copy but not yet restorable then:
    the copy is of last night's, so once tonight's is restorable the target is a conflict
    (its age alone would have passed it)."""
    seed: dict[str, Any] = {
        "regions": {
            "us-east-1": {
                "instances": [{"name": "web-1", "sizeInGb": 80}],
                "autoSnapshots": {
                    "web-1": ["2026-11-19", {"date": "2026-11-20", "status": "InProgress"}]
                },
            }
        }
    }
    wall = Wall("2026-11-20T12:00:00")  # after tonight's snapshot was taken (06:00)
    emulator = Emulator(seed=seed, clock=wall)
    async with running_emulator(emulator) as url:
        settings = settings_for(url)
        first = await copy_snapshots([automatic("dr-latest")], settings)
        done = {"date": "2026-11-20", "status": "Success"}
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": [done]}}}})
        wall.set("2026-11-20T13:00:00")
        again = await copy_snapshots([automatic("dr-latest")], settings)
        plan = await make_plan([automatic("dr-latest")], settings)
    assert only(first).status is Status.STARTED
    assert_conflict(again, "copied from us-east-1/web-1@2026-11-19", plan)


async def test_every_copy_carries_its_source_label() -> None:
    """Without --tag, each copy still gets batchcopy:source (its proof) and batchcopy:run-id."""
    wall = Wall("2026-11-20T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    async with running_emulator(emulator) as url:
        await copy_snapshots(
            [manual("web-1-2026-11-20", "m-1"), automatic("a-1", date="2026-11-19")],
            settings_for(url),
        )
    snapshots = emulator.sim.regions["eu-west-1"].snapshots
    assert snapshots["m-1"].tags[SOURCE_TAG] == "us-east-1/web-1-2026-11-20"
    assert snapshots["a-1"].tags[SOURCE_TAG] == "us-east-1/web-1@2026-11-19"
    assert snapshots["m-1"].tags["batchcopy:run-id"]


async def test_a_copy_still_being_made_is_started_not_skipped_or_reconciled() -> None:
    """Re-run while an earlier run's copy is pending: started (not done, so not skipped), not
    counted as reconciled, nothing sent; with --wait it is followed until it succeeds."""
    now = [time.time()]  # the emulator's clock stands still until the copy may finish
    emulator = Emulator(
        seed=SEED, faults=FaultConfig.from_json({"operation_seconds": 2}), clock=lambda: now[0]
    )
    job = manual("web-1-2026-11-20")
    async with running_emulator(emulator) as url:
        await copy_snapshots([job], settings_for(url))
        plan = await make_plan([job], settings_for(url))
        rerun = await copy_snapshots([job], settings_for(url))
        now[0] += 3
        waited = await copy_snapshots([job], settings_for(url, wait=True, wait_read_rate=100))
    result = only(rerun)
    assert (result.status, result.reconciled, result.attempts) == (Status.STARTED, False, 0)
    assert (rerun.summary.reconciled, rerun.exit_code) == (0, 0)
    assert (plan.skipped, plan.copying, plan.ok) == (1, 1, True)  # plan tells it apart
    assert only(waited).status in (Status.SUCCEEDED, Status.SKIPPED)
    assert waited.summary.reconciled == 0
    assert copy_requests(emulator) == 1


# -- the rule itself --------------------------------------------------------------------------

T0 = dt.datetime(2026, 11, 20, 3, tzinfo=dt.UTC).timestamp()
SOURCE = Source(kind="instance", origin="web-1", size_in_gb=80, created_at=T0)


def target(**changes: Any) -> SnapshotInfo:
    base = SnapshotInfo(
        region="eu-west-1",
        name="dr-web",
        kind="instance",
        state="available",
        origin="web-1",
        size_in_gb=80,
        created_at=T0 + 3600,
        tags=((SOURCE_TAG, "us-east-1/web-1-2026-11-20"),),
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "source", "says"),
    [
        ({}, SOURCE, ""),
        ({"tags": ()}, SOURCE, ""),  # untagged, made after the source: all the evidence there is
        ({"tags": ((SOURCE_TAG, "us-east-1/web-1-2026-11-19"),)}, SOURCE, "copied from"),
        ({"created_at": T0 - 60}, SOURCE, "before the source was taken"),
        ({"tags": (), "created_at": T0 - 60}, SOURCE, "before the source was taken"),
        ({"origin": "web-2"}, SOURCE, "(instance web-2), not from instance web-1"),
        ({"tags": (), "size_in_gb": 160}, SOURCE, "160 GB where the source has 80 GB"),
        ({"tags": ((SOURCE_TAG, ""),)}, SOURCE, "tag is empty"),
        ({"kind": "disk", "tags": ()}, SOURCE, "made from disk web-1"),
        ({}, None, "no longer exists"),
        ({"created_at": 0.0}, SOURCE, "cannot be verified"),
    ],
)
def test_only_a_proven_copy_has_no_mismatch(
    changes: dict[str, Any], source: Source | None, says: str
) -> None:
    """mismatch() is empty only for a proven copy; otherwise it says what the target is."""
    reason = mismatch(manual("web-1-2026-11-20"), target(**changes), source)
    assert (reason == "") == (says == "")
    assert says in reason


def test_an_automatic_label_without_a_date_is_another_source() -> None:
    """A label that names the resource but not which of its snapshots proves nothing: the
    target is a conflict even when its age would fit (it may be a newer snapshot's copy)."""
    job = automatic("dr-auto", date="2026-11-18")
    assert source_label(job) == "us-east-1/web-1@2026-11-18"
    source = Source(kind="instance", origin="web-1", size_in_gb=None, created_at=T0)
    undated = ((SOURCE_TAG, "us-east-1/web-1"),)
    assert "copied from us-east-1/web-1 " in mismatch(job, target(tags=undated), source)


async def test_a_copy_whose_source_is_gone_is_reported_unverifiable_and_left_alone() -> None:
    """The source deleted since its copy was made: the job fails SourceNotFound, saying the
    copy cannot be verified and is left as it is, never advising to rename or delete it."""
    wall = Wall("2026-11-20T12:00:00")
    emulator = Emulator(seed=SEED, clock=wall)
    async with running_emulator(emulator) as url:
        await copy_snapshots([manual("web-1-2026-11-20")], settings_for(url))
        source = emulator.sim.regions["us-east-1"].snapshots["web-1-2026-11-20"]
        emulator.sim.regions["us-east-1"].drop_snapshot(source)
        report = await copy_snapshots([manual("web-1-2026-11-20")], settings_for(url))
    result = only(report)
    assert (result.status, result.error_code) == (Status.FAILED, "SourceNotFound")
    assert "copied from us-east-1/web-1-2026-11-20" in result.error_message
    assert "cannot verify" in result.error_message
    assert "left as it is" in result.error_message
    assert "choose another" not in result.error_message
    assert "dr-web" in emulator.sim.regions["eu-west-1"].snapshots


async def test_an_untagged_automatic_copy_is_never_taken_on_its_age() -> None:
    """A target without a label, made after tonight's automatic snapshot was taken but
    while it was not yet restorable (so a copy of last night's): neither tonight's job nor
    a dated one takes it on its age; only a label tells the date."""
    seed: dict[str, Any] = {
        "regions": {
            "us-east-1": {
                "instances": [{"name": "web-1", "sizeInGb": 80}],
                "autoSnapshots": {
                    "web-1": ["2026-11-19", {"date": "2026-11-20", "status": "InProgress"}]
                },
            }
        }
    }
    wall = Wall("2026-11-20T12:00:00")
    emulator = Emulator(seed=seed, clock=wall)
    async with running_emulator(emulator) as url:
        settings = settings_for(url, retry=RetryPolicy(max_attempts=1))
        emulator.configure(FaultConfig.from_json({"actions": ["TagResource"], "error_rate": 1}))
        first = await copy_snapshots([automatic("dr-latest")], settings)  # tagging fails
        emulator.configure(FaultConfig())
        done = {"date": "2026-11-20", "status": "Success"}
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": [done]}}}})
        wall.set("2026-11-20T13:00:00")
        latest = await copy_snapshots([automatic("dr-latest")], settings)
        dated = await copy_snapshots([automatic("dr-latest", date="2026-11-20")], settings)
    assert only(first).tag_error
    assert_conflict(latest, "without a batchcopy:source label")
    assert_conflict(dated, "without a batchcopy:source label")
    assert SOURCE_TAG not in emulator.sim.regions["eu-west-1"].snapshots["dr-latest"].tags
