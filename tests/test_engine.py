"""The engine end to end: real aiobotocore clients against the emulator on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from batchcopy import CopyJob, RetryPolicy, Settings, Status, copy_snapshots, stream_copies
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.settings import OnExists


def settings_for(url: str, **overrides: Any) -> Settings:
    """Fast settings: a generous rate, short zero-ish backoff, short read timeout."""
    base = Settings(
        rate=1000,
        burst=1000,
        max_in_flight=8,
        endpoint_url=url,
        credentials=("AKIDTEST", "test-secret"),
        read_timeout=2,
        retry=RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=60, max_attempts=50),
    )
    return dataclasses.replace(base, **overrides)


def manual(
    line: int, target_region: str, name: str, source: str = "nyc-web-1-2026-11-20"
) -> CopyJob:
    return CopyJob(
        line=line,
        source_region="us-east-1",
        target_region=target_region,
        source_snapshot_name=source,
        target_snapshot_name=name,
    )


def mixed_jobs(count: int = 24) -> list[CopyJob]:
    """Manual instance and disk copies and automatic copies into three regions."""
    regions = ("eu-west-1", "ap-south-1", "us-west-2")
    jobs = []
    for i in range(count):
        region = regions[i % 3]
        if i % 4 == 0:
            job = CopyJob(
                line=i + 2,
                source_region="us-east-1",
                target_region=region,
                source_resource_name="nyc-web-1",
                restore_date="2026-11-19",
                target_snapshot_name=f"auto-{i}",
            )
        elif i % 4 == 1:
            job = CopyJob(
                line=i + 2,
                source_region="eu-central-1",
                target_region=region,
                source_resource_name="fra-web-1",
                use_latest=True,
                target_snapshot_name=f"latest-{i}",
            )
        elif i % 4 == 2:
            job = manual(i + 2, region, f"disk-{i}", source="nyc-web-data-2026-11-20")
        else:
            job = manual(i + 2, region, f"inst-{i}")
        jobs.append(job)
    return jobs


async def run(
    faults: dict[str, Any], jobs: list[CopyJob], **overrides: Any
) -> tuple[Any, Emulator]:
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, **overrides))
    return report, emulator


def assert_each_target_copied_once(report: Any, emulator: Emulator) -> None:
    assert len(report.results) == len({r.job.target for r in report.results})
    assert all(count == 1 for count in emulator.stats.copies_accepted.values())


async def test_manual_and_automatic_copies_into_three_regions() -> None:
    """Every job starts; each target exists in its region with the right kind and origin."""
    jobs = mixed_jobs()
    report, emulator = await run({}, jobs)
    assert [r.status for r in report.results].count(Status.STARTED) == len(jobs)
    assert report.exit_code == 0
    assert report.summary.counts["started"] == len(jobs)
    assert set(report.summary.by_region) == {"eu-west-1", "ap-south-1", "us-west-2"}
    for job in jobs:
        snap = emulator.sim.regions[job.target_region].snapshots[job.target_snapshot_name]
        expected = (
            "DiskSnapshot" if job.target_snapshot_name.startswith("disk") else "InstanceSnapshot"
        )
        assert snap.kind == expected
    assert all(r.operation_id for r in report.results)
    assert len(emulator.stats.copies_accepted) == len(jobs)
    assert_each_target_copied_once(report, emulator)


async def test_throttled_region_below_requested_rate_still_finishes() -> None:
    """A region that throttles below the asked rate slows jobs down; none fails."""
    jobs = [manual(i, "eu-west-2", f"t-{i}") for i in range(20)]
    faults = {"regions": {"eu-west-2": {"copy_rate": 20, "copy_burst": 2}}}
    retry = RetryPolicy(base_delay=0.02, max_delay=0.2, deadline=60, max_attempts=50)
    report, emulator = await run(faults, jobs, rate=40, burst=5, retry=retry)
    assert all(r.status is Status.STARTED for r in report.results)
    assert report.summary.throttles > 0
    assert (
        report.summary.throttles
        == emulator.stats.requests["eu-west-2", "CopySnapshot", "throttled"]
    )
    assert_each_target_copied_once(report, emulator)


async def test_server_errors_are_retried() -> None:
    """5xx answers are retried until the job gets through."""
    jobs = mixed_jobs(18)
    report, emulator = await run({"seed": 5, "error_rate": 0.3}, jobs)
    assert all(r.status is Status.STARTED for r in report.results)
    assert sum(r.attempts for r in report.results) > len(jobs)
    assert_each_target_copied_once(report, emulator)


async def test_lost_answers_after_commit_are_reconciled_not_copied_twice() -> None:
    """A copy whose answer was lost is found by a look-up: started, reconciled, copied once."""
    jobs = [manual(i, "eu-west-1", f"lost-{i}") for i in range(20)]
    report, emulator = await run(
        {"seed": 11, "regions": {"eu-west-1": {"drop_after_rate": 0.5}}}, jobs
    )
    assert all(r.status is Status.STARTED for r in report.results)
    assert any(r.reconciled for r in report.results)
    assert report.summary.reconciled == sum(r.reconciled for r in report.results)
    assert emulator.stats.copies_accepted == {f"eu-west-1/lost-{i}": 1 for i in range(20)}


async def test_connections_dropped_before_commit_are_sent_again() -> None:
    """A request lost before it took effect is sent again after a look-up finds nothing."""
    jobs = [manual(i, "eu-west-1", f"early-{i}") for i in range(12)]
    report, emulator = await run({"seed": 2, "drop_before_rate": 0.4}, jobs)
    assert all(r.status is Status.STARTED for r in report.results)
    assert not any(r.reconciled for r in report.results)
    assert_each_target_copied_once(report, emulator)


async def test_hang_past_the_read_timeout_is_reconciled() -> None:
    """A copy that answers too late is looked up and found: started, reconciled, sent once."""
    faults = {"hang_rate": 1, "hang_seconds": 2, "actions": ["CopySnapshot"]}
    report, emulator = await run(faults, [manual(1, "eu-west-1", "late")], read_timeout=0.2)
    (result,) = report.results
    assert (result.status, result.reconciled) == (Status.STARTED, True)
    assert emulator.stats.copies_accepted == {"eu-west-1/late": 1}


async def test_permanent_errors_fail_at_once_with_their_code() -> None:
    """A missing source fails with NotFoundException after one request; others go on."""
    jobs = [
        manual(2, "eu-west-1", "good"),
        manual(3, "eu-west-1", "bad", source="no-such-snapshot"),
    ]
    report, _ = await run({}, jobs)
    by_name = {r.job.target_snapshot_name: r for r in report.results}
    assert by_name["good"].status is Status.STARTED
    bad = by_name["bad"]
    assert (bad.status, bad.error_code, bad.attempts) == (Status.FAILED, "NotFoundException", 1)
    assert "no-such-snapshot" in bad.error_message
    assert report.exit_code == 1


async def test_throttling_longer_than_the_deadline_fails_those_jobs() -> None:
    """Jobs throttled past their deadline fail with the throttle code; other regions finish."""
    jobs = [manual(1, "eu-west-1", "stuck"), manual(2, "ap-south-1", "free")]
    faults = {"regions": {"eu-west-1": {"copy_rate": 0.001, "copy_burst": 1}}}
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        # Use up eu-west-1's only token so every copy there is throttled.
        emulator._region_faults["eu-west-1"].admit(mutating=True)
        retry = RetryPolicy(base_delay=0.01, max_delay=0.02, deadline=0.3, max_attempts=1000)
        report = await copy_snapshots(jobs, settings_for(url, retry=retry))
    by_name = {r.job.target_snapshot_name: r for r in report.results}
    assert (by_name["stuck"].status, by_name["stuck"].error_code) == (
        Status.FAILED,
        "ThrottlingException",
    )
    assert by_name["stuck"].throttles == by_name["stuck"].attempts > 1
    assert by_name["free"].status is Status.STARTED


async def test_existing_targets_are_skipped_or_failed() -> None:
    """A target already there from the same source is skipped (or failed on request); one
    from another source is a conflict. Existing targets cost no CopySnapshot call."""
    jobs = [
        manual(2, "eu-west-1", "nyc-web-1-dr"),  # in the demo data, copied from this source
        manual(3, "eu-west-1", "nyc-web-1-dr-2", source="nyc-api-1-2026-11-20"),
    ]
    seed = demo_seed()
    seed["regions"]["eu-west-1"]["instanceSnapshots"].append(
        {"name": "nyc-web-1-dr-2", "fromInstanceName": "nyc-web-1", "sizeInGb": 40}
    )
    for mode, first in ((OnExists.SKIP, Status.SKIPPED), (OnExists.FAIL, Status.FAILED)):
        emulator = Emulator(seed=seed)
        async with running_emulator(emulator) as url:
            report = await copy_snapshots(jobs, settings_for(url, on_exists=mode))
        by_name = {r.job.target_snapshot_name: r for r in report.results}
        assert by_name["nyc-web-1-dr"].status is first
        conflict = by_name["nyc-web-1-dr-2"]
        assert (conflict.status, conflict.error_code) == (Status.FAILED, "TargetExists")
        assert "choose another target name" in conflict.error_message
        assert emulator.stats.requests["eu-west-1", "CopySnapshot", "ok"] == 0
        listed = emulator.stats.requests["eu-west-1", "GetInstanceSnapshots", "ok"]
        assert listed == 1  # one listing per region, not a call per job


async def test_in_flight_cap_holds_per_region() -> None:
    """No more copies are open at once in a region than --max-in-flight allows."""
    jobs = [manual(i, "eu-west-1", f"cap-{i}") for i in range(30)]
    report, emulator = await run({"latency_ms": 20}, jobs, max_in_flight=3)
    assert all(r.status is Status.STARTED for r in report.results)
    assert emulator.stats.peak_in_flight["eu-west-1"] <= 3 + 1  # + the region's listing


async def test_stream_yields_each_result_as_it_finishes() -> None:
    """The async iterator API yields one result per job."""
    jobs = mixed_jobs(9)
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url, stream_copies(jobs, settings_for(url)) as results:
        seen = [result async for result in results]
    assert sorted(r.job.line for r in seen) == sorted(j.line for j in jobs)


@pytest.mark.parametrize("count", [1, 40])
async def test_every_job_gets_exactly_one_result(count: int) -> None:
    """Whatever the faults, each job appears once in the results."""
    jobs = mixed_jobs(count)
    faults = {"seed": 9, "error_rate": 0.1, "drop_after_rate": 0.1, "drop_before_rate": 0.1}
    report, emulator = await run(faults, jobs)
    assert sorted(r.job.line for r in report.results) == sorted(j.line for j in jobs)
    assert_each_target_copied_once(report, emulator)


async def test_target_made_after_the_listing_is_judged_like_an_existing_one() -> None:
    """A target another run creates after our listing is skipped (same source), not failed."""
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        original = emulator.sim.op_get_instance_snapshots

        def list_then_race(region: str, params: dict[str, Any]) -> dict[str, Any]:
            body = original(region, params)
            if region == "eu-west-1" and "raced" not in emulator.sim.regions[region].snapshots:
                # An overlapping run copies the same source right after our listing.
                emulator.sim.op_copy_snapshot(
                    region,
                    {
                        "sourceRegion": "us-east-1",
                        "sourceSnapshotName": "nyc-web-1-2026-11-20",
                        "targetSnapshotName": "raced",
                    },
                )
            return body

        emulator.sim.op_get_instance_snapshots = list_then_race  # type: ignore[method-assign]
        report = await copy_snapshots([manual(1, "eu-west-1", "raced")], settings_for(url))
    (result,) = report.results
    assert (result.status, result.attempts, result.reconciled) == (Status.SKIPPED, 1, False)


async def test_target_left_in_error_state_fails_instead_of_skipping() -> None:
    """A target that exists in error state (a failed copy) is reported failed, not skipped."""
    seed = demo_seed()
    seed["regions"]["eu-west-1"]["instanceSnapshots"].append(
        {"name": "broken", "fromInstanceName": "nyc-web-1", "sizeInGb": 40, "state": "error"}
    )
    emulator = Emulator(seed=seed)
    async with running_emulator(emulator) as url:
        report = await copy_snapshots([manual(1, "eu-west-1", "broken")], settings_for(url))
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "TargetFailed")
    assert "delete it" in result.error_message


async def test_callers_own_error_comes_out_as_itself() -> None:
    """An exception raised by the caller's on_result is not wrapped in an exception group."""

    def explode(result: Any) -> None:
        raise KeyError("mine")

    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        with pytest.raises(KeyError, match="mine"):
            await copy_snapshots(
                [manual(1, "eu-west-1", "k1")], settings_for(url), on_result=explode
            )
