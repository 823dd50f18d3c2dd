"""--wait: following accepted copies to succeeded, failed or in_progress, against the emulator."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio

from batchcopy import CopyJob, RunControl, Status, copy_snapshots, load_manifest
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from tests.helpers import assert_each_target_copied_once, manual, read_csv, settings_for

WAIT = {"wait": True, "wait_read_rate": 100}


async def test_copies_are_followed_until_they_succeed() -> None:
    """With --wait every accepted copy ends succeeded once its snapshot is available."""
    jobs = [manual(i, "eu-west-1", f"w-{i}") for i in range(4)]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 0.3}))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, **WAIT))
    assert [r.status for r in report.results] == [Status.SUCCEEDED] * 4
    assert report.exit_code == 0
    assert all(
        s.state(emulator.sim.clock()) == "available"
        for s in emulator.sim.regions["eu-west-1"].snapshots.values()
        if s.name.startswith("w-")
    )
    assert_each_target_copied_once(report, emulator)


async def test_failed_operations_report_their_error_code() -> None:
    """A copy whose operation fails ends failed with the operation's errorCode and details."""
    faults = {"operation_seconds": 0.2, "regions": {"ap-south-1": {"operation_failure_rate": 1}}}
    jobs = [manual(1, "eu-west-1", "fine"), manual(2, "ap-south-1", "doomed")]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, **WAIT))
    by_name = {r.job.target_snapshot_name: r for r in report.results}
    assert by_name["fine"].status is Status.SUCCEEDED
    doomed = by_name["doomed"]
    assert (doomed.status, doomed.error_code) == (Status.FAILED, "SnapshotCopyFailed")
    assert "failed" in doomed.error_message
    assert report.exit_code == 1


async def test_wait_timeout_leaves_copies_in_progress_and_listed_for_retry(tmp_path: Path) -> None:
    """Copies still running when --wait-timeout runs out are in_progress, exit 1, in retry.csv."""
    jobs = [manual(1, "eu-west-1", "slow-1"), manual(2, "eu-west-1", "slow-2")]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 60}))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(
            jobs, settings_for(url, wait_timeout=0.5, **WAIT), report_dir=tmp_path / "r"
        )
    assert [r.status for r in report.results] == [Status.IN_PROGRESS] * 2
    assert report.exit_code == 1
    assert {r["target_snapshot_name"] for r in read_csv(tmp_path / "r" / "retry.csv")} == {
        "slow-1",
        "slow-2",
    }


async def test_retry_csv_of_copies_in_progress_sends_nothing_and_says_started(
    tmp_path: Path,
) -> None:
    """Re-running retry.csv while its copies are still in progress sends no copy: each is
    started (still copying, not skipped), none counted as reconciled, exit 0."""
    jobs = [manual(1, "eu-west-1", "slow-1"), manual(2, "eu-west-1", "slow-2")]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 60}))
    async with running_emulator(emulator) as url:
        settings = settings_for(url, wait_timeout=0.2, **WAIT)
        await copy_snapshots(jobs, settings, report_dir=tmp_path / "r")
        retry = load_manifest(tmp_path / "r" / "retry.csv")
        again = await copy_snapshots(retry, dataclasses.replace(settings, wait=False))
    assert [r.status for r in again.results] == [Status.STARTED] * 2
    assert (again.summary.reconciled, again.summary.attempts, again.exit_code) == (0, 0, 0)
    assert_each_target_copied_once(again, emulator)


async def test_many_pending_copies_are_checked_with_one_listing() -> None:
    """With many copies pending in a region, their states come from paginated listings, not
    one call per copy."""
    jobs = [manual(i, "eu-west-1", f"bulk-{i}") for i in range(40)]
    faults = {"operation_seconds": 0.5, "page_size": 25}
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, **WAIT))
    assert all(r.status is Status.SUCCEEDED for r in report.results)
    requests = emulator.stats.requests
    assert requests["eu-west-1", "GetInstanceSnapshot", "ok"] < len(jobs)
    assert requests["eu-west-1", "GetInstanceSnapshots", "ok"] > 1


async def test_waiting_overlaps_with_copying() -> None:
    """A lane keeps issuing copies while earlier ones are followed: the first copy succeeds
    before the last one is even sent."""
    jobs = [manual(i, "eu-west-1", f"lap-{i}") for i in range(12)]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 0.1}))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(
            jobs, settings_for(url, rate=3, burst=1, adaptive=False, **WAIT)
        )
    assert all(r.status is Status.SUCCEEDED for r in report.results)
    first_done = min(r.finished_at for r in report.results)
    last_copied = max(s.created_at for s in emulator.sim.regions["eu-west-1"].snapshots.values())
    assert first_done < last_copied


async def test_cancel_while_following_reports_accepted_copies_in_progress() -> None:
    """Cancelling a --wait run after the copies were accepted never reports them not_started."""
    jobs = [manual(i, "eu-west-1", f"cut-{i}") for i in range(6)]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 60}))
    control = RunControl(grace=0)
    async with running_emulator(emulator) as url, anyio.create_task_group() as tg:

        async def cancel_once_all_accepted() -> None:
            for _ in range(3000):  # the copies are accepted within a second or so
                if len(emulator.stats.copies_accepted) == len(jobs):
                    break
                await anyio.sleep(0.01)
            control.cancel()

        tg.start_soon(cancel_once_all_accepted)
        report = await copy_snapshots(jobs, settings_for(url, **WAIT), control=control)
    assert [r.status for r in report.results] == [Status.IN_PROGRESS] * len(jobs)
    assert report.exit_code == 130


async def test_running_again_follows_copies_still_in_progress() -> None:
    """A re-run with --wait (retry.csv, say) follows an earlier run's unfinished copy to its
    end instead of calling it skipped."""
    job = manual(1, "eu-west-1", "unfinished")
    # Long enough that the copy is surely still being made when the second run lists it.
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 6}))
    async with running_emulator(emulator) as url:
        first = await copy_snapshots([job], settings_for(url, wait_timeout=0.2, **WAIT))
        again = await copy_snapshots([job], settings_for(url, **WAIT))
    assert first.results[0].status is Status.IN_PROGRESS
    assert again.results[0].status is Status.SUCCEEDED
    assert emulator.stats.copies_accepted == {"eu-west-1/unfinished": 1}


async def test_reads_that_hang_do_not_outlast_the_wait_timeout() -> None:
    """When every status read hangs, followed copies are reported in_progress at
    --wait-timeout; the waiter does not keep retrying reads past it."""
    faults = {"hang_rate": 1, "hang_seconds": 30, "actions": ["GetInstanceSnapshot"]}
    jobs = [manual(i, "eu-west-1", f"stuck-{i}") for i in range(3)]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        settings = settings_for(url, **WAIT, wait_timeout=1.0, read_timeout=0.3)
        report = await copy_snapshots(jobs, settings)
    assert [r.status for r in report.results] == [Status.IN_PROGRESS] * 3
    # Not a speed check: the retry policy alone (50 tries of 0.3 s per read) would keep the
    # run going for 15 s and more; the run must end near the 1 s it was told to wait.
    assert report.summary.duration < 10


async def test_retry_csv_of_a_sent_latest_copy_keeps_the_date_it_was_sent_for(
    tmp_path: Path,
) -> None:
    """A use_latest copy left in_progress goes to retry.csv pinned to the date it was sent
    for; after tonight's automatic snapshot appears, running retry.csv recognises the copy
    (started, nothing sent) instead of failing it as another source's. A use_latest job
    never sent stays use_latest there."""
    autos = {"web-9": ["2026-11-28"], "web-8": ["2026-11-28"]}
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 60}))
    emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": autos}}})
    latest = CopyJob(
        line=1,
        source_region="us-east-1",
        target_region="eu-west-1",
        source_resource_name="web-9",
        use_latest=True,
        target_snapshot_name="web-9-latest",
    )
    unsent = dataclasses.replace(
        latest, line=2, source_resource_name="web-8", target_snapshot_name="web-8-latest"
    )
    async with running_emulator(emulator) as url:
        settings = settings_for(url, wait_timeout=0.2, **WAIT)
        control = RunControl()
        await copy_snapshots([latest], settings, report_dir=tmp_path / "r")
        rows = read_csv(tmp_path / "r" / "retry.csv")
        assert [(r["restore_date"], r["use_latest_restorable_auto_snapshot"]) for r in rows] == [
            ("2026-11-28", "")
        ]
        control.stop()
        await copy_snapshots([unsent], settings, report_dir=tmp_path / "u", control=control)
        (unsent_row,) = read_csv(tmp_path / "u" / "retry.csv")
        assert (unsent_row["restore_date"], unsent_row["use_latest_restorable_auto_snapshot"]) == (
            "",
            "true",
        )
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-9": ["2026-11-29"]}}}})
        retry = load_manifest(tmp_path / "r" / "retry.csv")
        again = await copy_snapshots(retry, dataclasses.replace(settings, wait=False))
    (result,) = again.results
    assert (result.status, result.error_code) == (Status.STARTED, "")
    assert again.summary.attempts == 0
    assert emulator.stats.copies_accepted == {"eu-west-1/web-9-latest": 1}
