"""Learned rates remembered between runs: the state file, and runs that start from it."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from batchcopy import Status, copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.ratestate import ENV, LearnedRate, RateState, default_path, scope_of
from tests.helpers import EmulatorProcess, manual, run_cli, settings_for, write_manifest

NOW = 1_800_000_000.0
DAY = 86400.0


def state(path: Path, *, scope: str = "aws", max_age: float = 7 * DAY) -> RateState:
    return RateState(path, scope=scope, max_age=max_age, wall=lambda: NOW)


def learned(rate: float, *, throttled: bool = True, age: float = 0.0) -> LearnedRate:
    return LearnedRate(rate=rate, throttled=throttled, at=NOW - age)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_round_trip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What a run saves, per lane (base account and named accounts), the next run loads."""
    path = tmp_path / "cache" / "rates.json"  # its folder is made
    saved = {
        "eu-west-2": LearnedRate(rate=4.8, throttled=True, burst=3, at=NOW),
        "123456789012/us-east-1": learned(12.5, throttled=False),
    }
    state(path).save(saved)
    assert state(path).load() == saved
    assert warnings(caplog) == []


def test_each_endpoint_and_profile_keeps_its_own_rates(tmp_path: Path) -> None:
    """Rates learned against an emulator, or with another profile, never set the pace of
    runs against Lightsail with the default credentials."""
    path = tmp_path / "rates.json"
    state(path, scope=scope_of("http://127.0.0.1:8080", None)).save({"eu-west-2": learned(1.0)})
    state(path, scope=scope_of(None, "prod")).save({"eu-west-2": learned(2.0)})
    state(path, scope=scope_of(None, None)).save({"eu-west-2": learned(3.0)})
    assert state(path, scope="aws").load() == {"eu-west-2": learned(3.0)}
    assert state(path, scope="aws profile prod").load() == {"eu-west-2": learned(2.0)}


def test_concurrent_runs_both_keep_their_lanes(tmp_path: Path) -> None:
    """Runs that finish at the same moment each keep the lanes they learned: none is lost
    to another's write."""
    path = tmp_path / "rates.json"
    writers = 16
    start = threading.Barrier(writers)

    def finish(i: int) -> None:
        start.wait()
        state(path).save({f"region-{i}": learned(float(i + 1))})

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state(path).load() == {f"region-{i}": learned(float(i + 1)) for i in range(writers)}


@pytest.mark.parametrize(
    "text",
    [
        '{"format_version": 1, "endpoints": {"aws": {"eu-west-2": {"rate": 4.8, "thro',  # torn
        "\x00\x9f\xff garbage",
        '{"format_version": 1, "endpoints": {"aws": {"eu-west-2": {"rate": "fast"}}}}',
        '{"format_version": 99, "endpoints": {}}',
        "[]",
    ],
)
def test_a_torn_or_corrupted_file_is_ignored_with_one_warning_then_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """A state file cut short or not a state file: every lane starts afresh, one warning
    names the file, and the run's own rates then replace it cleanly."""
    path = tmp_path / "rates.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    memory = state(path)
    assert memory.load() == {}
    memory.save({"eu-west-2": learned(6.0)})
    said = warnings(caplog)
    assert len(said) == 1
    assert str(path) in said[0]
    assert "ignored" in said[0]
    assert state(path).load() == {"eu-west-2": learned(6.0)}
    assert json.loads(path.read_text())["format_version"] == 1


def test_an_unwritable_state_file_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A state file that can be neither read nor written (its folder is a file): the run
    goes on, with one warning that names it."""
    path = tmp_path / "not-a-folder" / "rates.json"
    path.parent.write_text("")
    memory = state(path)
    assert memory.load() == {}
    memory.save({"eu-west-2": learned(6.0)})
    state(path).save({"eu-west-2": learned(6.0)})  # a run that only writes it
    said = warnings(caplog)
    assert len(said) == 2
    assert "remembered rates ignored" in said[0]
    assert "learned rates not remembered" in said[1]
    assert all(str(path) in warning for warning in said)


def test_a_bad_entry_costs_its_own_lane_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One entry with an impossible rate (0, negative, NaN) among good ones: that lane
    starts afresh, with one warning; every other lane, of this endpoint and of others (a
    real account's, learned by other runs), is used and kept when the run saves."""
    path = tmp_path / "rates.json"
    state(path).save({"eu-west-1": learned(5.0), "eu-west-2": learned(6.0)})
    state(path, scope="http://127.0.0.1:4566").save({"eu-west-1": learned(2.0)})
    data = json.loads(path.read_text())
    data["endpoints"]["aws"]["eu-west-1"]["rate"] = -5
    path.write_text(json.dumps(data))
    memory = state(path)
    assert memory.load() == {"eu-west-2": learned(6.0)}
    said = warnings(caplog)
    assert len(said) == 1
    assert "1 remembered rates ignored" in said[0]
    memory.save({"eu-west-3": learned(7.0)})
    assert state(path).load() == {"eu-west-2": learned(6.0), "eu-west-3": learned(7.0)}
    other = state(path, scope="http://127.0.0.1:4566").load()
    assert other == {"eu-west-1": learned(2.0)}


@pytest.mark.parametrize("rate", [1e-300, 0.001, 0.0099])
def test_a_remembered_rate_below_the_floor_is_not_a_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rate: float
) -> None:
    """A rate under one request in 100 s (a hand edit, a file from elsewhere) would stall
    its lane for hours: it is ignored with a warning, as one that is not a number is."""
    path = tmp_path / "rates.json"
    state(path).save({"eu-west-1": learned(5.0), "eu-west-2": learned(0.01)})
    data = json.loads(path.read_text())
    data["endpoints"]["aws"]["eu-west-1"]["rate"] = rate
    path.write_text(json.dumps(data))
    assert state(path).load() == {"eu-west-2": learned(0.01)}
    assert "1 remembered rates ignored" in warnings(caplog)[0]


def test_a_burst_is_a_whole_number_of_requests_and_one_if_unrecorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry written before bursts were recorded starts its lane one request at a
    time; one whose burst is not a whole number of at least one costs that lane only."""
    path = tmp_path / "rates.json"
    lanes: dict[str, dict[str, object]] = {
        "old": {"rate": 5.0, "throttled": True, "at": NOW},
        "good": {"rate": 5.0, "throttled": True, "burst": 7, "at": NOW},
    }
    for name, burst in [("zero", 0), ("text", "3"), ("flag", True), ("half", 2.5)]:
        lanes[name] = {"rate": 5.0, "throttled": True, "burst": burst, "at": NOW}
    path.write_text(json.dumps({"format_version": 1, "endpoints": {"aws": lanes}}))
    loaded = state(path).load()
    assert loaded == {
        "old": learned(5.0),
        "good": LearnedRate(rate=5.0, throttled=True, burst=7, at=NOW),
    }
    assert loaded["old"].burst == 1
    assert warnings(caplog) == [f"{path}: 4 remembered rates ignored (zero: not a burst: 0)"]


def test_an_entry_from_the_future_is_not_used(tmp_path: Path) -> None:
    """An entry dated ahead of now (a clock set wrong, a hand edit) passes no age check:
    it is not used; one from a few minutes ahead (clocks a little apart) is."""
    path = tmp_path / "rates.json"
    state(path).save({"far": learned(9.0, age=-10 * 365 * DAY), "near": learned(7.0, age=-60)})
    assert state(path).load() == {"near": learned(7.0, age=-60)}


def test_stale_entries_are_ignored(tmp_path: Path) -> None:
    """A rate learned longer ago than the run's max age is not used; a fresh one is."""
    path = tmp_path / "rates.json"
    state(path).save({"old": learned(9.0, age=8 * DAY), "new": learned(7.0, age=6 * DAY)})
    assert state(path).load() == {"new": learned(7.0, age=6 * DAY)}
    assert set(state(path, max_age=9 * DAY).load()) == {"old", "new"}


def test_the_state_file_is_in_the_user_cache_unless_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """By default rates live in the user's cache folder; BATCHCOPY_RATE_STATE names another."""
    monkeypatch.setenv(ENV, str(tmp_path / "mine.json"))
    assert default_path() == tmp_path / "mine.json"
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_path() == tmp_path / "cache" / "batchcopy" / "rates.json"


# -- runs that remember, against the emulator -----------------------------------------------

LIMIT = 40  # eu-west-1's copy limit today, requests/s (a copy and its tags: two requests)
FAULTS = {"regions": {"eu-west-1": {"copy_rate": LIMIT, "copy_burst": 2}}}


async def test_a_limit_that_dropped_since_is_found_again_without_failing_jobs(
    tmp_path: Path,
) -> None:
    """Remembered at 200 requests/s, a region limited to 40 today: every job still starts,
    none fails, and the lower rate is what is remembered for the next run."""
    path = tmp_path / "rates.json"
    jobs = [manual(i + 2, "eu-west-1", f"copy-{i}") for i in range(40)]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(FAULTS))
    async with running_emulator(emulator) as url:
        memory = RateState(path, scope=scope_of(url, None))
        memory.save({"eu-west-1": LearnedRate(rate=200.0, throttled=True, at=time.time())})
        report = await copy_snapshots(jobs, settings_for(url, rate=5, burst=5, rate_state=path))
        after = memory.load()["eu-west-1"]
    assert [r.status for r in report.results].count(Status.STARTED) == len(jobs)
    assert report.summary.counts["failed"] == 0
    assert report.summary.start_rates == {"eu-west-1": {"rate": 190.0, "source": "remembered"}}
    assert report.summary.throttles > 0
    assert after.throttled
    assert after.rate < 2 * LIMIT


async def test_a_limit_that_rose_since_is_not_remembered_as_the_limit(tmp_path: Path) -> None:
    """Remembered at 20 requests/s, a region allowing 80 today: the run holds 20 a while,
    then probes past it with no throttle, and leaves the rate it reached as not a limit,
    so the next run slow-starts from there (it would otherwise creep up a night at a
    time, each run held under the old limit)."""
    path = tmp_path / "rates.json"
    jobs = [manual(i + 2, "eu-west-1", f"copy-{i}") for i in range(80)]
    faults = {"regions": {"eu-west-1": {"copy_rate": 80, "copy_burst": 2}}}
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        memory = RateState(path, scope=scope_of(url, None))
        memory.save({"eu-west-1": LearnedRate(rate=20.0, throttled=True, at=time.time())})
        settings = settings_for(url, rate=5, burst=5, rate_state=path)
        report = await copy_snapshots(jobs, settings)
        after = memory.load()["eu-west-1"]
        again = await copy_snapshots([manual(2, "eu-west-1", "again")], settings)
    assert report.summary.start_rates == {"eu-west-1": {"rate": 19.0, "source": "remembered"}}
    assert report.summary.throttles == 0
    assert report.summary.counts["started"] == len(jobs)
    assert not after.throttled
    assert after.rate > 20.0 * 1.10
    assert again.summary.start_rates == {
        "eu-west-1": {"rate": round(after.rate, 2), "source": "remembered"}
    }


async def test_the_next_run_starts_just_below_the_limit_the_last_one_found(
    tmp_path: Path,
) -> None:
    """A first run slow-starts from the default rate and is throttled at the region's
    limit; the next run of the same scenario starts just below the rate it remembered."""
    path = tmp_path / "rates.json"
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(FAULTS))
    async with running_emulator(emulator) as url:
        settings = settings_for(url, rate=20, burst=5, rate_state=path)
        first = await copy_snapshots(
            [manual(i + 2, "eu-west-1", f"first-{i}") for i in range(80)], settings
        )
        remembered = RateState(path, scope=scope_of(url, None)).load()["eu-west-1"]
        kept = json.loads(path.read_text())["endpoints"][scope_of(url, None)]["eu-west-1"]
        second = await copy_snapshots(
            [manual(i + 2, "eu-west-1", f"second-{i}") for i in range(30)], settings
        )
        chosen = await copy_snapshots(
            [manual(2, "eu-west-1", "chosen")],
            settings_for(url, rate=5, rate_chosen=True, rate_state=path),
        )
    assert first.summary.start_rates == {"eu-west-1": {"rate": 20.0, "source": "default"}}
    assert remembered.throttled
    assert remembered.rate < 2 * LIMIT
    # The region's bucket, measured and kept. How close it comes is the simulation's to
    # show (tests/test_limits.py): a run of 80 jobs finds the limit coarsely, and then the
    # bucket may come out a token high (3 against 2 on a loaded machine).
    assert kept["burst"] == remembered.burst >= 1
    assert second.summary.start_rates == {
        "eu-west-1": {"rate": round(0.95 * remembered.rate, 2), "source": "remembered"}
    }
    assert second.summary.counts["started"] == 30
    assert chosen.summary.start_rates == {"eu-west-1": {"rate": 5.0, "source": "rate"}}


async def test_a_run_without_a_state_file_remembers_nothing(tmp_path: Path) -> None:
    """Without rate_state (the API's default) a run neither starts from nor writes a file,
    and a fixed rate is never remembered."""
    path = tmp_path / "rates.json"
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(FAULTS))
    async with running_emulator(emulator) as url:
        off = await copy_snapshots([manual(2, "eu-west-1", "off-a")], settings_for(url, rate=5))
        fixed = settings_for(url, rate=5, adaptive=False, rate_state=path)
        await copy_snapshots([manual(3, "eu-west-1", "fixed-b")], fixed)
    assert off.summary.start_rates == {"eu-west-1": {"rate": 5.0, "source": "default"}}
    assert not path.exists()


async def test_a_floor_remembered_below_the_rate_gives_way_to_it(tmp_path: Path) -> None:
    """A rate reached without a throttle is a floor: a next run starts at the higher of it
    and the settings' rate, and says which it used."""
    path = tmp_path / "rates.json"
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(FAULTS))
    async with running_emulator(emulator) as url:
        scope = scope_of(url, None)
        RateState(path, scope=scope).save(
            {"eu-west-1": LearnedRate(rate=2.0, throttled=False, at=time.time())}
        )
        low = await copy_snapshots(
            [manual(2, "eu-west-1", "floor-a")], settings_for(url, rate=5, rate_state=path)
        )
        RateState(path, scope=scope).save(
            {"eu-west-1": LearnedRate(rate=8.0, throttled=False, at=time.time())}
        )
        high = await copy_snapshots(
            [manual(3, "eu-west-1", "floor-b")], settings_for(url, rate=5, rate_state=path)
        )
    assert low.summary.start_rates == {"eu-west-1": {"rate": 5.0, "source": "default"}}
    assert high.summary.start_rates == {"eu-west-1": {"rate": 8.0, "source": "remembered"}}


async def test_a_run_held_under_a_remembered_limit_by_max_rate_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    """A remembered limit of 10; a run with --max-rate 4 on a service that never throttles
    it learned nothing of that limit: the file keeps 10 as the limit found, not the cap."""
    path = tmp_path / "rates.json"
    async with running_emulator(Emulator(seed=demo_seed())) as url:
        scope = scope_of(url, None)
        RateState(path, scope=scope).save(
            {"eu-west-1": LearnedRate(rate=10.0, throttled=True, at=time.time())}
        )
        capped = await copy_snapshots(
            [manual(i + 2, "eu-west-1", f"capped-{i}") for i in range(12)],
            settings_for(url, rate=3, burst=1, max_rate=4, rate_state=path),
        )
        kept = RateState(path, scope=scope).load()["eu-west-1"]
    assert capped.summary.counts["started"] == 12
    assert (kept.rate, kept.throttled) == (10.0, True)


# -- the CLI ---------------------------------------------------------------------------------

ROWS = [f"us-east-1,eu-west-1,nyc-api-1-2026-11-20,,,,api-{i}" for i in range(8)]


def test_run_shows_where_each_region_started_and_why(live: EmulatorProcess, tmp_path: Path) -> None:
    """`run --rate-state FILE` prints each region's starting rate and why: the default the
    first time, the remembered rate the next, --rate when given; summary.json has them."""
    path = tmp_path / "rates.json"
    common = ["--endpoint-url", live.url, "--rate-state", str(path)]
    first = run_cli(
        "run", str(write_manifest(tmp_path / "a.csv", ROWS)), *common,
        "--report-dir", str(tmp_path / "r1"),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "Rates at the start: eu-west-1 5/s (default)" in first.stdout
    remembered = json.loads(path.read_text())["endpoints"][live.url]["eu-west-1"]
    second = run_cli(
        "run", str(write_manifest(tmp_path / "b.csv", [r + "-b" for r in ROWS])), *common,
        "--report-dir", str(tmp_path / "r2"),
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    start = json.loads((tmp_path / "r2" / "summary.json").read_text())["start_rates"]
    below = 0.95 if remembered["throttled"] else 1.0  # a limit found: just below it
    assert start == {
        "eu-west-1": {"rate": round(below * remembered["rate"], 2), "source": "remembered"}
    }
    assert f"eu-west-1 {start['eu-west-1']['rate']:g}/s (remembered)" in second.stdout
    third = run_cli(
        "run", str(write_manifest(tmp_path / "c.csv", [r + "-c" for r in ROWS])), *common,
        "--report-dir", str(tmp_path / "r3"), "--rate", "3",
    )  # fmt: skip
    assert third.returncode == 0, third.stderr
    assert "Rates at the start: eu-west-1 3/s (--rate)" in third.stdout


def test_no_rate_state_leaves_the_default_file_alone(live: EmulatorProcess, tmp_path: Path) -> None:
    """`run` remembers in the default file; --no-rate-state writes nothing; giving both
    --rate-state and --no-rate-state, or a max age of 0 days, is a usage error (exit 2)."""
    default = tmp_path / "default.json"
    env = {ENV: str(default)}
    manifest = str(write_manifest(tmp_path / "m.csv", ROWS[:1]))
    off = run_cli(
        "run", manifest, "--endpoint-url", live.url, "--report-dir", str(tmp_path / "r1"),
        "--no-rate-state", env=env,
    )  # fmt: skip
    assert off.returncode == 0, off.stderr
    assert not default.exists()
    both = run_cli(
        "run", manifest, "--endpoint-url", live.url, "--no-rate-state",
        "--rate-state", str(tmp_path / "x.json"), env=env,
    )  # fmt: skip
    assert both.returncode == 2
    assert "--rate-state or --no-rate-state, not both" in both.stderr
    ageless = run_cli("run", manifest, "--rate-state-max-age", "0", env=env)
    assert ageless.returncode == 2
    assert "--rate-state-max-age must be days above 0" in ageless.stderr
    other = str(write_manifest(tmp_path / "n.csv", ROWS[1:2]))  # a copy to make, to learn from
    on = run_cli(
        "run", other, "--endpoint-url", live.url, "--report-dir", str(tmp_path / "r2"), env=env,
    )  # fmt: skip
    assert on.returncode == 0, on.stderr
    assert "eu-west-1" in json.loads(default.read_text())["endpoints"][live.url]
