"""Fault injection: each scenario keeps both promises.

Every scenario runs real aiobotocore clients against the emulator with one kind of trouble
switched on and asserts: every job is in the results exactly once, and no target was
accepted twice (the emulator's ``copies_accepted``), plus what that trouble should lead to.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio

from batchcopy import RetryPolicy, Status, copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from tests.helpers import assert_each_target_copied_once, manual, mixed_jobs, run, settings_for


async def test_throttle_storm_everything_completes() -> None:
    """A throttle storm (a bucket of one at 4 requests/s, a sender starting at 200) for a
    while: calls are throttled, jobs wait it out and all complete, and the summary counts
    the throttled requests by action as the service saw them."""
    jobs = [manual(i, "eu-west-1", f"storm-{i}") for i in range(24)]
    emulator = Emulator(seed=demo_seed())
    storm = {"seed": 3, "regions": {"eu-west-1": {"copy_rate": 4, "copy_burst": 1}}}
    emulator.configure(FaultConfig.from_json(storm))
    retry = RetryPolicy(base_delay=0.02, max_delay=0.2, deadline=60, max_attempts=3)
    async with running_emulator(emulator) as url, anyio.create_task_group() as tg:

        async def calm_down() -> None:
            await anyio.sleep(0.8)
            emulator.configure(FaultConfig())

        tg.start_soon(calm_down)
        report = await copy_snapshots(jobs, settings_for(url, retry=retry, rate=200))
    assert all(r.status is Status.STARTED for r in report.results)
    throttled = {
        action: emulator.stats.requests["eu-west-1", action, "throttled"]
        for action in ("CopySnapshot", "TagResource")
    }
    assert sum(throttled.values()) >= len(jobs) // 3  # the storm throttled calls ...
    assert report.summary.throttles == throttled["CopySnapshot"]
    # Every throttled request is counted by its action, tags and reads too.
    counted = {a: n for a, n in throttled.items() if n}
    assert report.summary.throttled_by_action == counted
    assert_each_target_copied_once(report, emulator)  # ... and none failed or doubled


async def test_a_read_storm_neither_throttles_nor_slows_the_copies() -> None:
    """Following copies (--wait) through a storm on reads (a bucket of one at 3 requests/s,
    polled at up to 40): the waiting budget settles at the service's read limit (few reads
    throttled, every copy seen succeeded), no CopySnapshot or TagResource is throttled and
    the copy rate is never cut (a read's throttle is not the copies' limit), and the
    summary counts the throttled reads by action."""
    jobs = [manual(i, "eu-west-1", f"reads-{i}") for i in range(12)]
    storm = {
        "seed": 5,
        "operation_seconds": 0.2,
        "regions": {"eu-west-1": {"read_rate": 3, "read_burst": 1}},
    }
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(storm))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(
            jobs, settings_for(url, rate=20, burst=2, wait=True, wait_read_rate=40)
        )
    assert [r.status for r in report.results] == [Status.SUCCEEDED] * len(jobs)
    requests = emulator.stats.requests
    throttled = {
        action: n
        for (region, action, outcome), n in requests.items()
        if region == "eu-west-1" and outcome == "throttled" and n
    }
    assert throttled, "the storm throttled no read"
    assert throttled.get("GetInstanceSnapshot", 0) <= len(jobs)  # not 12x, as at a fixed 40/s
    assert "CopySnapshot" not in throttled
    assert "TagResource" not in throttled
    assert report.summary.throttles == 0
    assert report.summary.rates["eu-west-1"] >= 20  # never cut from where it started
    assert report.summary.throttled_by_action == throttled
    assert_each_target_copied_once(report, emulator)


async def test_throttling_past_the_deadline_fails_only_those_jobs() -> None:
    """Throttling that outlasts the per-job deadline fails those jobs with the throttle code;
    jobs in other regions are unaffected."""
    jobs = [
        manual(1, "eu-west-1", "stuck-1"),
        manual(2, "eu-west-1", "stuck-2"),
        manual(3, "ap-south-1", "free-1"),
        manual(4, "ap-south-1", "free-2"),
    ]
    emulator = Emulator(
        seed=demo_seed(),
        faults=FaultConfig.from_json(
            {"regions": {"eu-west-1": {"copy_rate": 0.001, "copy_burst": 1}}}
        ),
    )
    emulator._faults(emulator.caller, "eu-west-1").admit(mutating=True)  # spend the one token
    retry = RetryPolicy(base_delay=0.01, max_delay=0.02, deadline=0.3)
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, retry=retry))
    by_name = {r.job.target_snapshot_name: r for r in report.results}
    for name in ("stuck-1", "stuck-2"):
        assert (by_name[name].status, by_name[name].error_code) == (
            Status.FAILED,
            "ThrottlingException",
        )
        assert by_name[name].throttles == by_name[name].attempts > 1
    assert by_name["free-1"].status is by_name["free-2"].status is Status.STARTED
    assert_each_target_copied_once(report, emulator)


async def test_lost_answers_after_commit_no_duplicate_no_false_failure() -> None:
    """Answers lost after the copy was made: looked up, reconciled, never sent twice."""
    jobs = [manual(i, "eu-west-1", f"lost-{i}") for i in range(20)]
    report, emulator = await run({"seed": 11, "drop_after_rate": 0.5}, jobs)
    assert all(r.status is Status.STARTED for r in report.results)
    assert report.summary.reconciled > 0
    assert emulator.stats.copies_accepted == {f"eu-west-1/lost-{i}": 1 for i in range(20)}
    assert_each_target_copied_once(report, emulator)


async def test_connections_reset_before_send_are_retried() -> None:
    """Connections dropped before the request took effect: looked up, found absent, resent."""
    jobs = mixed_jobs(15)
    report, emulator = await run({"seed": 2, "drop_before_rate": 0.4}, jobs)
    assert all(r.status is Status.STARTED for r in report.results)
    assert sum(r.attempts for r in report.results) > len(jobs)
    assert not any(r.reconciled for r in report.results)
    assert_each_target_copied_once(report, emulator)


async def test_5xx_bursts_are_retried_4xx_fail_at_once() -> None:
    """5xx answers are retried until they pass; a 4xx (a missing source) fails after one
    request."""
    jobs = [*mixed_jobs(12), manual(99, "ca-central-1", "orphan", source="no-such-snapshot")]
    burst = {"error_rate": 0.5}
    faults = {"seed": 5, "regions": dict.fromkeys(("eu-west-1", "ap-south-1", "us-west-2"), burst)}
    report, emulator = await run(faults, jobs)
    by_name = {r.job.target_snapshot_name: r for r in report.results}
    orphan = by_name.pop("orphan")
    assert (orphan.status, orphan.error_code, orphan.attempts) == (
        Status.FAILED,
        "NotFoundException",
        1,
    )
    assert all(r.status is Status.STARTED for r in by_name.values())
    assert sum(r.attempts for r in by_name.values()) > len(by_name)
    assert_each_target_copied_once(report, emulator)


async def test_hang_longer_than_the_read_timeout_is_reconciled() -> None:
    """A copy whose answer comes after the read timeout is looked up and found: started,
    reconciled, sent once."""
    faults = {"hang_rate": 1, "hang_seconds": 2, "actions": ["CopySnapshot"]}
    report, emulator = await run(faults, [manual(1, "eu-west-1", "late")], read_timeout=0.2)
    (result,) = report.results
    assert (result.status, result.reconciled) == (Status.STARTED, True)
    assert emulator.stats.copies_accepted == {"eu-west-1/late": 1}


async def test_everything_at_once() -> None:
    """Errors, resets and lost answers together: every job once, every target once."""
    faults = {"seed": 9, "error_rate": 0.1, "drop_after_rate": 0.1, "drop_before_rate": 0.1}
    jobs = mixed_jobs(40)
    report, emulator = await run(faults, jobs)
    assert sorted(r.job.line for r in report.results) == sorted(j.line for j in jobs)
    assert all(r.status is Status.STARTED for r in report.results)
    assert_each_target_copied_once(report, emulator)


async def test_adaptive_rate_finds_a_limit_it_was_not_told() -> None:
    """Regions throttling at a rate batchcopy is not told: starting 4x too high, each
    region's rate is cut to near that limit and every job completes."""
    regions = ("eu-west-1", "ap-south-1")
    jobs = [manual(i, regions[i % 2], f"adapt-{i}") for i in range(120)]
    limit = {"copy_rate": 10, "copy_burst": 2}
    faults = {"regions": dict.fromkeys(regions, limit)}
    report, emulator = await run(faults, jobs, rate=40, burst=2, max_in_flight=16)
    assert all(r.status is Status.STARTED for r in report.results)
    assert all(5 < rate < 20 for rate in report.summary.rates.values()), report.summary.rates
    assert_each_target_copied_once(report, emulator)


async def test_a_lost_last_answer_is_not_final_and_a_resume_finds_the_copy(
    tmp_path: Path,
) -> None:
    """The copy is made but the connection drops on the last attempt: the job fails with
    its outcome unknown (not final in the journal), and --resume finds the copy: started,
    reconciled, copied once."""
    emulator = Emulator(seed=demo_seed())
    drop = {"drop_after_rate": 1, "actions": ["CopySnapshot"]}
    emulator.configure(FaultConfig.from_json(drop))
    job = manual(1, "eu-west-1", "lost-answer")
    once = RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=30, max_attempts=1)
    async with running_emulator(emulator) as url:
        settings = settings_for(url, retry=once)
        first = await copy_snapshots([job], settings, report_dir=tmp_path / "r")
        emulator.configure(FaultConfig())
        again = await copy_snapshots([job], settings, report_dir=tmp_path / "r", resume=True)
    (failed,) = first.results
    assert failed.status is Status.FAILED
    assert "may have been made" in failed.error_message
    (found,) = again.results
    assert (found.status, found.reconciled, again.exit_code) == (Status.STARTED, True, 0)
    assert emulator.stats.copies_accepted == {"eu-west-1/lost-answer": 1}


async def test_a_lost_answers_copy_dated_before_the_request_is_reported_as_clock_skew() -> None:
    """Lightsail's clock an hour behind ours: the copy found after a lost answer is dated
    before our request. It is reported as a clock skew (not skipped, not TargetExists) and
    left open for a resume, and it is never copied twice."""
    emulator = Emulator(seed=demo_seed(), clock=lambda: time.time() - 3600)
    emulator.configure(FaultConfig.from_json({"drop_after_rate": 1, "actions": ["CopySnapshot"]}))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots([manual(1, "eu-west-1", "skewed")], settings_for(url))
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "ClockSkew")
    assert "check the clock" in result.error_message
    assert result.outcome_unknown
    assert emulator.stats.copies_accepted == {"eu-west-1/skewed": 1}
