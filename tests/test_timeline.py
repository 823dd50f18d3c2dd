"""timeline.json: the run's time series for the report page, small, agreeing with summary.json."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import anyio

from batchcopy import RunControl, Status, copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.jobs import CopyJob, JobResult
from batchcopy.lightsail import LightsailClients
from batchcopy.timeline import (
    ACCOUNTS_SHOWN,
    MAX_BUCKETS,
    WAIT_ERROR,
    Timeline,
    WaitHistogram,
    merge_timelines,
)
from tests.helpers import EmulatorProcess, manual, run_cli, settings_for, write_manifest
from tests.test_pruner import history, prune, seed_of

START = 1_795_996_800.0  # 2026-11-30T00:00:00Z
ENDED = {"completed": ("started", "succeeded", "skipped"), "failed": ("failed",)}


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def result(region: str, status: Status, account: str = "") -> JobResult:
    job = CopyJob(
        line=2,
        source_region="us-east-1",
        target_region=region,
        source_snapshot_name="src",
        target_snapshot_name=f"t-{region}",
        account=account,
    )
    return JobResult(job=job, status=status)


def lengths(data: dict[str, Any]) -> set[int]:
    """The lengths of every array in a timeline."""
    series = [*data["regions"].values(), *data.get("accounts", {}).values()]
    return {len(values) for one in series for values in one.values()}


def ended_by_region(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """summary.json's by_region, as completed / failed per region."""
    return {
        region: {kind: sum(c.get(s, 0) for s in statuses) for kind, statuses in ENDED.items()}
        for region, c in counts.items()
    }


def totals(data: dict[str, Any], *, earlier: bool = True) -> dict[str, dict[str, int]]:
    """completed / failed per region: the buckets' sums, plus earlier runs' if asked."""
    summed = {
        region: {kind: sum(series[kind]) for kind in ENDED}
        for region, series in data["regions"].items()
    }
    for region, counts in data.get("earlier", {}).items() if earlier else ():
        mine = summed.setdefault(region, {"completed": 0, "failed": 0})
        for kind, count in counts.items():
            mine[kind] += count
    return {r: c for r, c in summed.items() if any(c.values())}


def test_a_million_results_over_a_day_stay_small() -> None:
    """A day-long run of a million jobs in many regions and accounts writes a timeline under
    200 KB, at most 600 buckets, every array as long, every job counted once."""
    clock = FakeClock()
    timeline = Timeline(clock=clock, rates=lambda: {"eu-west-1": 4.5, "ap-south-1": 2.25})
    regions = ("eu-west-1", "ap-south-1", "us-west-2", "eu-central-1", "ca-central-1")
    accounts = [f"{100000000000 + i}" for i in range(80)]
    samples = [
        result(region, status, account)
        for region in regions
        for account in accounts
        for status in (Status.STARTED, Status.FAILED, Status.NOT_STARTED)
    ]
    chooser = random.Random(7)
    day = 24 * 3600
    count = 1_000_000
    for i in range(count):
        clock.now = START + day * i / count
        one = chooser.choice(samples)
        timeline.request(one.job.target_region)
        if i % 10 == 0:
            timeline.throttled(one.job.target_region)
        timeline.add_result(one)
    text = json.dumps(timeline.to_json(), separators=(",", ":"))
    data = json.loads(text)
    assert len(text) < 200_000
    assert lengths(data) == {len(data["regions"]["eu-west-1"]["completed"])}
    assert 300 < len(data["regions"]["eu-west-1"]["completed"]) <= MAX_BUCKETS
    assert data["bucket_seconds"] == 256.0  # doubled from 1 s until a day fits in 600
    requests = sum(sum(s["requests"]) for s in data["regions"].values())
    ended = sum(sum(s["completed"]) + sum(s["failed"]) for s in data["regions"].values())
    assert requests == count
    assert 0.6 * count < ended < 0.7 * count  # not_started is in neither
    assert len(data["accounts"]) == ACCOUNTS_SHOWN + 1  # the rest summed as "other"
    by_account = sum(sum(s["completed"]) + sum(s["failed"]) for s in data["accounts"].values())
    assert by_account == ended


def test_merging_buckets_keeps_every_count_and_the_later_rate() -> None:
    """When a run outgrows 600 buckets their width doubles; counts add up as before and a
    merged bucket's rate is the later of the two."""
    clock = FakeClock()
    timeline = Timeline(clock=clock)
    for second in range(MAX_BUCKETS):
        clock.now = START + second + 0.5
        timeline.add_result(result("eu-west-1", Status.STARTED))
        timeline.request("eu-west-1")
        timeline.sample_rates({"eu-west-1": float(second)})
    before = timeline.to_json()
    assert before["bucket_seconds"] == 1.0
    assert before["regions"]["eu-west-1"]["rate"][:3] == [0.0, 1.0, 2.0]
    clock.now = START + MAX_BUCKETS + 0.5
    timeline.add_result(result("eu-west-1", Status.FAILED))
    after = timeline.to_json()
    ireland = after["regions"]["eu-west-1"]
    assert after["bucket_seconds"] == 2.0
    assert len(ireland["completed"]) == MAX_BUCKETS // 2 + 1
    assert ireland["completed"][:2] == [2, 2]
    assert (sum(ireland["completed"]), sum(ireland["failed"])) == (MAX_BUCKETS, 1)
    assert sum(ireland["requests"]) == MAX_BUCKETS
    assert ireland["rate"][:3] == [1.0, 3.0, 5.0]
    assert ireland["failed"][-1] == 1


def test_statuses_map_to_completed_failed_or_neither() -> None:
    """started, succeeded and skipped count as completed, failed as failed; not_started and
    in_progress (never sent, still copying) count in neither."""
    timeline = Timeline(clock=FakeClock())
    for status in Status:
        timeline.add_result(result("eu-west-1", status))
    ireland = timeline.to_json()["regions"]["eu-west-1"]
    assert (ireland["completed"], ireland["failed"]) == ([3], [1])
    assert ireland["rate"] == [None]  # no limiter read: no rate to draw


def test_accounts_appear_only_when_there_are_several() -> None:
    """A run in one account has no per-account series; a run in two has both, by id."""
    one = Timeline(clock=FakeClock())
    one.add_result(result("eu-west-1", Status.STARTED))
    assert "accounts" not in one.to_json()
    two = Timeline(clock=FakeClock())
    two.add_result(result("eu-west-1", Status.STARTED))
    two.add_result(result("eu-west-1", Status.FAILED, account="111122223333"))
    accounts = two.to_json()["accounts"]
    assert accounts == {
        "111122223333": {"completed": [0], "failed": [1]},
        "base": {"completed": [1], "failed": [0]},
    }


def test_started_at_is_the_runs_start_in_utc() -> None:
    """started_at says when the run began, as UTC with milliseconds."""
    timeline = Timeline(clock=FakeClock(START + 0.25))
    data = timeline.to_json()
    assert data["started_at"] == "2026-11-30T00:00:00.250Z"
    assert (data["version"], data["bucket_seconds"]) == (1, 1.0)


def test_wait_percentiles_are_within_the_stated_error() -> None:
    """Copy wait times read from the histogram are within WAIT_ERROR of the exact
    nearest-rank percentiles; the largest is exact."""
    chooser = random.Random(3)
    durations = [chooser.lognormvariate(4, 1.2) for _ in range(20_000)]
    histogram = WaitHistogram()
    for seconds in durations:
        histogram.add(seconds)
    ordered = sorted(durations)
    for fraction in (0.5, 0.9, 0.99):
        exact = ordered[math.ceil(fraction * len(ordered)) - 1]
        assert abs(histogram.percentile(fraction) - exact) <= WAIT_ERROR * exact
    assert histogram.max == max(durations)
    assert len(histogram.bins) < 400


def test_wait_times_are_grouped_by_size() -> None:
    """Each size class (a power of two of GB, at least 8) says how many copies finished and
    their p50, p90 and longest wait."""
    timeline = Timeline(clock=FakeClock())
    for seconds in range(1, 101):
        timeline.waited(8, float(seconds))
    timeline.waited(20, 500.0)
    by_size = timeline.to_json()["wait"]["by_size"]
    assert [row["size_gb_max"] for row in by_size] == [8, 32]
    small = by_size[0]
    assert (small["count"], small["max_s"]) == (100, 100.0)
    assert abs(small["p50_s"] - 50) <= WAIT_ERROR * 50 + 0.05
    assert abs(small["p90_s"] - 90) <= WAIT_ERROR * 90 + 0.05
    big = {"size_gb_max": 32, "count": 1, "p50_s": 500.0, "p90_s": 500.0, "max_s": 500.0}
    assert by_size[1] == big


def read_timeline(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "timeline.json").read_text())
    assert len(lengths(data)) == 1, "every array as long"
    return data


async def test_a_throttled_run_records_requests_throttles_and_the_rate(tmp_path: Path) -> None:
    """After a run against a throttling region, timeline.json's totals equal summary.json's
    counts, its requests the writes the lane's rate paces (copies and their tags), its
    throttles those of them throttled, and the region's rate is drawn."""
    faults = {"regions": {"eu-west-1": {"copy_rate": 20, "copy_burst": 1}}}
    jobs = [manual(i + 2, "eu-west-1", f"t-{i}") for i in range(12)]
    jobs.append(manual(20, "ap-south-1", "bad", source="no-such-snapshot"))
    jobs.append(manual(21, "eu-west-1", "nyc-web-1-dr"))  # in the demo data: skipped
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, rate=200), report_dir=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    data = read_timeline(tmp_path)
    assert totals(data) == ended_by_region(summary["by_region"])
    assert "earlier" not in data
    ireland = data["regions"]["eu-west-1"]
    assert sum(ireland["throttled"]) > 0
    by_action = summary["throttled_by_action"]
    writes_throttled = by_action.get("CopySnapshot", 0) + by_action.get("TagResource", 0)
    assert sum(sum(s["throttled"]) for s in data["regions"].values()) == writes_throttled
    sent = sum(
        n
        for (_, action, _), n in emulator.stats.requests.items()
        if action in ("CopySnapshot", "TagResource")
    )
    assert sum(sum(s["requests"]) for s in data["regions"].values()) == sent
    rates = [rate for rate in ireland["rate"] if rate is not None]
    assert rates, "the lane's rate is drawn"
    assert math.isclose(rates[-1], report.summary.rates["eu-west-1"], abs_tol=0.01)
    assert ireland["rate"][-1] == rates[-1]  # the rate at the end is the one the run ended at
    assert "wait" not in data


async def test_a_wait_run_records_how_long_copies_took(tmp_path: Path) -> None:
    """A --wait run's timeline counts its succeeded copies and says how long they took by
    size; every one is in some size class."""
    jobs = [manual(i + 2, "eu-west-1", f"w-{i}") for i in range(4)]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 0.3}))
    async with running_emulator(emulator) as url:
        settings = settings_for(url, wait=True, wait_read_rate=100)
        await copy_snapshots(jobs, settings, report_dir=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    data = read_timeline(tmp_path)
    assert summary["counts"]["succeeded"] == 4
    assert totals(data) == ended_by_region(summary["by_region"])
    by_size = data["wait"]["by_size"]
    assert sum(row["count"] for row in by_size) == 4
    assert all(0 < row["p50_s"] <= row["p90_s"] <= row["max_s"] for row in by_size)


async def test_a_resumed_run_shows_its_own_time_and_counts_earlier_jobs_apart(
    tmp_path: Path,
) -> None:
    """A resume's timeline starts with the resume and has in its buckets only the jobs it
    ran; those the stopped run finished are under "earlier", so both together equal
    summary.json's counts."""
    jobs = [manual(i + 2, "eu-west-1", f"r-{i}") for i in range(10)]
    jobs.append(manual(30, "ap-south-1", "bad", source="no-such-snapshot"))
    control = RunControl(grace=5)
    seen: list[JobResult] = []

    def stop_after_three(one: JobResult) -> None:
        seen.append(one)
        if len(seen) == 3:
            control.stop()

    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        settings = settings_for(url, rate=5, burst=1, max_in_flight=1)
        first = await copy_snapshots(
            jobs, settings, report_dir=tmp_path, control=control, on_result=stop_after_three
        )
        done_first = {r.job.target for r in first.results if r.status.final}
        assert 3 <= len(done_first) < len(jobs)
        first_timeline = read_timeline(tmp_path)
        first_summary = json.loads((tmp_path / "summary.json").read_text())
        assert totals(first_timeline) == ended_by_region(first_summary["by_region"])
        await copy_snapshots(jobs, settings_for(url), report_dir=tmp_path, resume=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    data = read_timeline(tmp_path)
    assert data["started_at"] > first_timeline["started_at"]
    assert totals(data) == ended_by_region(summary["by_region"])
    earlier = sum(sum(c.values()) for c in data["earlier"].values())
    assert earlier == len(done_first)
    in_buckets = sum(sum(c.values()) for c in totals(data, earlier=False).values())
    assert in_buckets == len(jobs) - len(done_first)


async def test_a_throttled_prune_records_its_deletes(tmp_path: Path) -> None:
    """A prune's timeline.json counts its deletes as requests and its rows deleted as
    completed, per region, equal to its summary.json, with the throttles and the rate."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    faults = FaultConfig.from_json({"regions": {"eu-west-1": {"copy_rate": 80, "copy_burst": 2}}})
    emulator = Emulator(seed=seed_of(snapshots), faults=faults)
    report = await prune(emulator, {"weekly": 3}, delete=True, report_dir=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    data = read_timeline(tmp_path)
    ireland = data["regions"]["eu-west-1"]
    deleted = summary["by_region"]["eu-west-1"]["deleted"]
    assert (sum(ireland["completed"]), sum(ireland["failed"])) == (deleted, 0)
    assert sum(ireland["requests"]) == summary["delete_requests"] == report.summary.requests
    assert sum(ireland["throttled"]) >= summary["throttled_requests"] > 0
    assert ireland["rate"][-1] is not None


def test_the_cli_run_writes_timeline_json_beside_summary_json(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """`batchcopy run --report-dir` leaves timeline.json next to summary.json, agreeing
    with its counts."""
    rows = [f"us-east-1,eu-west-1,nyc-web-2-2026-11-20,,,,cli-{i}" for i in range(3)]
    rows.append("us-east-1,ap-south-1,no-such-snapshot,,,,cli-orphan")
    manifest = write_manifest(tmp_path / "jobs.csv", rows)
    report = tmp_path / "r"
    done = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report), "--quiet"
    )
    assert done.returncode == 1, done.stderr  # the orphan fails
    summary = json.loads((report / "summary.json").read_text())
    data = read_timeline(report)
    assert totals(data) == ended_by_region(summary["by_region"])
    assert totals(data) == {
        "eu-west-1": {"completed": 3, "failed": 0},
        "ap-south-1": {"completed": 0, "failed": 1},
    }


async def test_copies_cut_off_by_a_cancel_count_as_failed_when_the_run_ends(
    tmp_path: Path,
) -> None:
    """Copies sent but cut off by a cancel are failed (Interrupted) in summary.json, and
    the timeline counts them in the bucket the run ended in."""
    faults = {"hang_rate": 1, "hang_seconds": 20, "actions": ["CopySnapshot"]}
    jobs = [manual(i + 2, "eu-west-1", f"c-{i}") for i in range(3)]
    control = RunControl(grace=0)
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    sending = anyio.Event()

    class Watcher:
        def on_call(self, region: str, action: str) -> None:
            if action == "CopySnapshot":
                sending.set()

        def on_throttle(self, region: str, action: str) -> None:
            pass

    async with running_emulator(emulator) as url:
        settings = settings_for(url, read_timeout=30)
        async with LightsailClients(settings) as api, anyio.create_task_group() as tg:
            api.watch(Watcher())

            async def run() -> None:
                await copy_snapshots(jobs, settings, report_dir=tmp_path, control=control, api=api)

            tg.start_soon(run)
            await sending.wait()  # a copy is on its way
            control.cancel()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"]["failed"] >= 1
    data = read_timeline(tmp_path)
    assert totals(data) == ended_by_region(summary["by_region"])
    ireland = data["regions"]["eu-west-1"]
    assert ireland["failed"][-1] == summary["counts"]["failed"]


def test_the_last_bucket_is_the_runs_end() -> None:
    """A run that ends after a quiet spell draws the spell: its buckets reach the end."""
    clock = FakeClock()
    timeline = Timeline(clock=clock)
    timeline.add_result(result("eu-west-1", Status.STARTED))
    clock.now = START + 9.5
    ireland = timeline.to_json()["regions"]["eu-west-1"]
    assert ireland["completed"] == [1] + [0] * 9


def test_shards_timelines_merge_into_one_clock_with_every_count_and_summed_rates() -> None:
    """Timelines of shards that started apart, with buckets of other widths, merge into one
    from the earliest start: every count kept, each bucket's rate the sum of the shards'
    in that region, within MAX_BUCKETS, and the earlier runs' counts added."""
    first = {
        "version": 1, "started_at": "2026-11-30T08:00:00.000Z", "bucket_seconds": 1.0,
        "regions": {"eu-west-1": {"completed": [1, 2, 3], "failed": [0, 1, 0],
                                  "requests": [2, 3, 3], "throttled": [1, 0, 0],
                                  "rate": [2.0, 3.0, None]}},
        "earlier": {"eu-west-1": {"completed": 4, "failed": 1}},
    }  # fmt: skip
    second = {
        "version": 1, "started_at": "2026-11-30T08:00:01.000Z", "bucket_seconds": 2.0,
        "regions": {"eu-west-1": {"completed": [5, 0], "failed": [0, 2],
                                  "requests": [5, 2], "throttled": [0, 0], "rate": [4.0, 4.0]},
                    "ap-south-1": {"completed": [7] * 700, "failed": [0] * 700,
                                   "requests": [7] * 700, "throttled": [0] * 700,
                                   "rate": [1.0] * 700}},
    }  # fmt: skip
    merged = merge_timelines([first, second, {"broken": True}])
    assert merged is not None
    assert merged["started_at"] == "2026-11-30T08:00:00.000Z"
    assert len(lengths(merged)) == 1  # every array as long
    assert len(merged["regions"]["eu-west-1"]["completed"]) <= MAX_BUCKETS
    for region, shards in {"eu-west-1": (first, second), "ap-south-1": (second,)}.items():
        for kind in ("completed", "failed", "requests", "throttled"):
            want = sum(sum(t["regions"][region][kind]) for t in shards)  # type: ignore[index]
            assert sum(merged["regions"][region][kind]) == want
    assert merged["bucket_seconds"] >= 2.0
    # The first bucket (4 s wide, to stay within MAX_BUCKETS) holds each shard's later
    # reading, added: both shards paced lanes in the region.
    assert merged["bucket_seconds"] == 4.0
    assert merged["regions"]["eu-west-1"]["rate"][0] == 3.0 + 4.0
    assert merged["earlier"] == {"eu-west-1": {"completed": 4, "failed": 1}}
    assert merge_timelines([{"broken": True}]) is None
