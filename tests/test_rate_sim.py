"""The adaptive rate against simulated token buckets (tests/ratesim.py, virtual time)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from tests.ratesim import Scenario, simulate

# Services whose bucket holds a second of requests, starts 4x too low and too high, round
# trips of 50 and 150 ms (+/- 50% each way), runs of 20 ideal seconds.
QUIET = [
    Scenario(limit=limit, burst=limit, rtt=rtt, jobs=round(21 * limit), rate=limit * factor)
    for limit in (5.0, 10.0, 20.0, 50.0)
    for rtt in (0.05, 0.15)
    for factor in (0.25, 4.0)
]


@pytest.mark.parametrize("scenario", QUIET, ids=lambda s: f"{s.limit:g}/s-{s.rtt}s-{s.rate:g}")
def test_a_second_of_burst_is_reached_quietly(scenario: Scenario) -> None:
    """Against a bucket of a second's requests, the run ends within 1.05x of the ideal
    time, from a start 4x too low or too high (1.06 from 4x too low at 5 requests/s, where
    two seconds of slow start from 1.25 weigh most), with at most 1.10 requests per job
    (1.15 where the first throttles weigh most: 5 requests/s, or 150 ms round trips)."""
    outcome = simulate(scenario)
    slow_start = scenario.limit == 5 and scenario.rate < scenario.limit
    assert outcome.ratio <= (1.06 if slow_start else 1.05), outcome
    quiet = scenario.limit >= 10 and scenario.rtt <= 0.05
    assert outcome.per_job <= (1.10 if quiet else 1.15), outcome


def test_a_huge_bucket_does_not_let_slow_start_run_away() -> None:
    """A bucket of five seconds' requests, starting full, lets slow start run past the
    limit before the first throttle; the requests throttled then stay under a fifth."""
    outcome = simulate(Scenario(limit=10, burst=50, rtt=0.08, jobs=250, rate=5))
    assert outcome.per_job <= 1.2, outcome
    assert outcome.ratio <= 1.05, outcome


def test_a_small_bucket_costs_time_not_requests() -> None:
    """Against a bucket of 2 (little slack for arrival jitter), requests stay under 1.10
    per job and the run within 1.25x of the ideal."""
    outcome = simulate(Scenario(limit=10, burst=2, rtt=0.08, jobs=400, rate=5))
    assert outcome.per_job <= 1.10, outcome
    assert outcome.ratio <= 1.25, outcome


# Small buckets well above the default start (5 requests/s), 15 ideal seconds, with the
# wall/ideal each is held to; and four lanes on a bucket of one at 5 requests/s, where
# whether slow start recognises it is a toss (a lane it misses is ruled as other buckets).
CLIMBS = [
    *(
        (Scenario(limit=lim, burst=b, rtt=rtt, jobs=round(15 * lim + b), seed=seed), bound)
        for lim, b, rtt, bound in ((20, 2, 0.02, 1.09), (30, 3, 0.02, 1.07), (20, 2, 0.08, 1.11))
        for seed in (1, 2, 3)
    ),
    *(
        (Scenario(limit=5, burst=1, rtt=0.04, jobs=100, regions=4, seed=seed), 1.25)
        for seed in (2, 8, 9)
    ),
]


@pytest.mark.parametrize(
    ("scenario", "bound"),
    CLIMBS,
    ids=lambda x: (
        f"{x.limit:g}/{x.burst:g}-{x.rtt}s-x{x.regions}-s{x.seed}"
        if isinstance(x, Scenario)
        else str(x)
    ),
)
def test_a_rate_that_climbed_from_far_below_is_not_taken_for_the_limit(
    scenario: Scenario, bound: float
) -> None:
    """After slow start's throttle the rate drops to a quarter and climbs back; the
    service's small bucket overflows on the way up, so what gets through before the next
    throttle counts the sender, not the service. Taken for the limit, it left these runs
    1.10-1.43x the ideal, climbing back by probes; the limit is sought between it and the
    rate that throttle came at."""
    outcome = simulate(scenario)
    assert outcome.ratio <= bound, outcome
    assert outcome.per_job <= 1.05, outcome


@pytest.mark.parametrize(
    ("limit", "burst", "fewest"),
    [(1.0, 2.0, 20), (5.0, 5.0, 60), (20.0, 2.0, 100), (50.0, 50.0, 60)],
)
def test_near_the_limit_throttles_come_per_successes_not_per_seconds(
    limit: float, burst: float, fewest: int
) -> None:
    """Once the limit is found, throttles come once per 60-130 successes whatever the
    limit: the limit found is held HOLD successes, then probed past per success, so at 1
    request/s it is not throttled every few seconds, nor at 50 every second; a bucket of
    2 (the probe drains it as soon as it passes the limit) a little over once per 100.
    (At 1 request/s a bucket of 2 drains so slowly past the limit that the probe
    overshoots it by a tenth, and the next throttle comes sooner.) Measured as the
    throttles the last 180 ideal seconds of a run add."""
    short = Scenario(limit=limit, burst=burst, rtt=0.08, jobs=round(90 * limit + burst))
    long = Scenario(limit=limit, burst=burst, rtt=0.08, jobs=round(270 * limit + burst))
    first, whole = simulate(short), simulate(long)
    per_throttle = (whole.jobs - first.jobs) / (whole.throttled - first.throttled)
    assert fewest <= per_throttle <= 130, (first, whole)


@pytest.mark.parametrize("limit", [200.0, 300.0])
def test_a_fast_service_does_not_let_the_rate_run_away(limit: float) -> None:
    """At hundreds of requests a second every throttle comes after many successes; the
    rate must still fall to what got through, not climb on to --max-rate while the
    in-flight cap hides how far it is ahead (a throttle storm: 2.2-2.8 requests per job)."""
    scenario = Scenario(limit=limit, burst=limit, rtt=0.02, jobs=round(30 * limit))
    outcome = simulate(scenario)
    assert outcome.per_job <= 1.10, outcome
    assert outcome.ratio <= 1.10, outcome  # 30 s, a second of it slow start from 5/s
    assert max(outcome.rates) < 1.5 * limit, outcome


def test_the_simulation_is_deterministic_and_a_fixed_rate_is_kept() -> None:
    """The same seed gives the same run, and a fixed rate under the limit sends each job
    once and takes N / rate seconds (the simulator itself adds no delay)."""
    fixed = Scenario(limit=20, burst=20, jobs=201, rate=10, client_burst=1, adaptive=False)
    first, again = simulate(fixed), simulate(fixed)
    assert first == again
    assert first.requests == 201
    assert first.wall == pytest.approx(200 / 10 + fixed.rtt, rel=0.01)


@pytest.mark.parametrize(("limit", "burst"), [(2.0, 10.0), (5.0, 25.0), (10.0, 50.0)])
def test_a_second_run_spends_the_bucket_the_first_one_measured(limit: float, burst: float) -> None:
    """A run of 15 ideal seconds against a bucket of five seconds' requests: the next run,
    starting from what the first learned (the limit and the bucket), sends the bucket at
    once as the service allows, and ends within 1.05x of the ideal, with at most 1.05
    requests per job. Paced from its start instead, it would take 1.15-1.3x."""
    first = Scenario(limit=limit, burst=burst, rtt=0.08, jobs=round(15 * limit + burst))
    learned = simulate(first).learned
    again = simulate(dataclasses.replace(first, known=learned))
    assert again.ratio <= 1.05, (learned, again)
    assert again.per_job <= 1.05, (learned, again)


@pytest.mark.parametrize(
    ("limit", "burst", "remembered", "rtt"),
    [(10.0, 2.0, 50, 0.08), (10.0, 10.0, 50, 0.08), (30.0, 300.0, 315, 0.2)],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_remembered_burst_larger_than_the_bucket_costs_no_time(
    limit: float, burst: float, remembered: int, rtt: float, seed: int
) -> None:
    """The service's bucket is smaller than the last run measured (it shrank, or another
    client spent some): the burst sent at the start runs it dry. That throttle is no cut,
    and what gets through is measured from there, so the burst is not taken for refill
    nor the refill for burst: the run ends within 1.05x of the ideal. (Leaving the whole
    remembered burst out of the first measure cut the rate to a tenth of the limit,
    1.6-2.0x; leaving out all that went through before the throttle came back took a
    bucket of 300 remembered as 315 for a tenth of the limit too.)"""
    again = Scenario(
        limit=limit,
        burst=burst,
        rtt=rtt,
        jobs=round(60 * limit + burst),
        known=((limit, remembered),),
        seed=seed,
    )
    outcome = simulate(again)
    assert outcome.ratio <= 1.05, outcome
    assert outcome.per_job <= 1.10, outcome


@pytest.mark.parametrize(
    ("limit", "burst", "remembered", "jobs"),
    [(2.0, 2.0, (1.33, 2), 100), (10.0, 10.0, (6.7, 10), 150), (15.0, 50.0, (10.0, 48), 300)],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_limit_that_rose_shows_within_a_few_hundred_requests(
    limit: float, burst: float, remembered: tuple[float, int], jobs: int, seed: int
) -> None:
    """A limit that rose by half since the last run: within a few hundred requests, the
    run leaves either the limit rose (the next slow-starts) or a limit well above the
    remembered one, never the old limit again."""
    again = Scenario(limit=limit, burst=burst, rtt=0.08, jobs=jobs, known=(remembered,), seed=seed)
    learned = simulate(again).learned[0]
    assert learned is None or learned[0] >= 1.1 * remembered[0], learned


@pytest.mark.parametrize(
    ("limit", "burst", "remembered", "jobs"),
    [
        (10.0, 50.0, (6.67, 50), 250),
        (1.0, 1.0, (0.7, 1), 61),
        (0.3, 6.0, (0.3, 6), 20),
    ],
)
def test_a_short_lane_never_throttled_is_not_held_at_an_old_limit_for_good(
    limit: float, burst: float, remembered: tuple[float, int], jobs: int
) -> None:
    """A lane too short to be throttled, night after night, whose limit rose (or whose
    bucket of 20 seconds is remembered): by the third night it runs within 1.10x of the
    ideal. Taking only a full bucket's worth beyond the old limit as proof of a rise held
    the first two at the old limit every night (1.26x, 1.41x); a cap of ten seconds on the
    bucket spent at the start, saved as the bucket, held the third at 1.23x."""
    night = Scenario(limit=limit, burst=burst, rtt=0.1, jitter=0.5, jobs=jobs, known=(remembered,))
    for seed in (1, 2):
        night = dataclasses.replace(night, known=simulate(night).learned, seed=seed + 1)
    assert simulate(night).ratio <= 1.10, night


@pytest.mark.parametrize(
    ("limit", "burst", "remembered", "jobs"),
    [(10.0, 50.0, (10.0, 48), 130), (50.0, 250.0, (51.58, 197), 440)],
)
def test_tokens_taken_for_a_limit_that_rose_cost_one_night_of_slow_start(
    limit: float, burst: float, remembered: tuple[float, int], jobs: int
) -> None:
    """A lane that ends 10% past its remembered limit on a bucket's leftover tokens leaves
    "the limit rose": the next night slow-starts behind a full bucket, at 14-22% more
    requests (the README's figures), finds the limit again within 5%, and the night after
    draws no more than 1% more requests than jobs."""
    night = Scenario(limit=limit, burst=burst, rtt=0.08, jobs=jobs, known=(remembered,))
    first = simulate(night)
    assert first.learned == (None,)  # taken for a rise
    night = dataclasses.replace(night, known=first.learned, seed=2)
    second = simulate(night)
    assert 1.10 <= second.per_job <= 1.25, second
    found = second.learned[0]
    assert found is not None
    assert abs(found[0] - limit) <= 0.05 * limit, found
    third = simulate(dataclasses.replace(night, known=second.learned, seed=3))
    assert third.per_job <= 1.01, third


@pytest.mark.parametrize(
    ("limit", "burst", "remembered", "jobs"),
    [(10.0, 200.0, (6.5, 180), 700), (20.0, 400.0, (16.0, 380), 700)],
)
def test_a_limit_that_rose_under_a_large_bucket_is_found_the_same_night(
    limit: float, burst: float, remembered: tuple[float, int], jobs: int
) -> None:
    """A limit that rose since the last run, behind a bucket of 20 seconds: the first
    throttle comes where the rate climbed past the new limit, and the run is found there
    within 1.05x of the ideal. (Taking that throttle for the remembered limit unless more
    got through than it and a full bucket allow re-learned it 1.5% a night: 1.16x and
    1.04x every night.)"""
    outcome = simulate(Scenario(limit=limit, burst=burst, rtt=0.05, jobs=jobs, known=(remembered,)))
    assert outcome.ratio <= 1.05, outcome
    found = outcome.learned[0]
    assert found is not None
    assert found[0] >= 0.95 * limit, found


def test_a_limit_left_high_by_leftover_tokens_is_found_again_the_next_night() -> None:
    """A bucket of 250 remembered as 197 at 50 requests/s: the rate climbs to 110 on the
    tokens left before a throttle, and the run leaves a limit well above 50 (the README's
    65.6). The next night's first throttles find it again: within 5%, at no more than
    1.03 requests per job."""
    night = Scenario(limit=50, burst=250, rtt=0.08, jobs=450, known=((51.58, 197),))
    first = simulate(night)
    high = first.learned[0]
    assert high is not None
    assert high[0] > 60, high
    second = simulate(dataclasses.replace(night, known=first.learned, seed=2))
    assert second.per_job <= 1.03, second
    found = second.learned[0]
    assert found is not None
    assert abs(found[0] - 50) <= 2.5, found


# A bucket of one (no burst at all) at 0.5-2 requests/s, below the default start of 5/s,
# round trips of 20 and 80 ms: runs of one and three ideal minutes.
ONE = [
    Scenario(limit=limit, burst=1, rtt=rtt, jobs=round(minutes * 60 * limit + 1))
    for limit in (0.5, 1.0, 2.0)
    for rtt in (0.02, 0.08)
    for minutes in (1, 3)
]


@pytest.mark.parametrize(
    "scenario", ONE, ids=lambda s: f"{s.limit:g}/s-{s.rtt}s-{s.jobs / s.limit / 60:.0f}min"
)
def test_a_bucket_of_one_is_found_from_its_throttles(scenario: Scenario) -> None:
    """A bucket of one overflows whenever the rate is under the limit, so what gets
    through then measures the sender, not the service; the spacing of its throttles and
    successes does measure it. The run ends within 1.18x of the ideal time (1.12x over
    three minutes), at most 1.20 requests per job. It leaves the next run a limit not
    over the true one, and within 6% under the fastest pace that arrival jitter lets
    through a bucket of one (a token's time plus the arrivals' spread between requests).
    That run, starting there, ends within 1.12x, at most 1.10 requests per job. (Measured
    by what got through, the limit came out 8-35% low and the runs took up to 1.5x.)"""
    first = simulate(scenario)
    long = scenario.jobs > 120 * scenario.limit
    assert first.ratio <= (1.12 if long else 1.18), first
    assert first.per_job <= 1.20, first
    (learned,) = first.learned
    assert learned is not None
    paced = 1 / (1 / scenario.limit + scenario.arrival_spread)
    assert 0.94 * paced <= learned[0] <= scenario.limit, first
    again = simulate(dataclasses.replace(scenario, known=first.learned))
    assert again.ratio <= 1.12, again
    assert again.per_job <= 1.10, again


@pytest.mark.parametrize("burst", [2.0, 5.0, 20.0])
@pytest.mark.parametrize("limit", [0.5, 1.0, 2.0, 3.0])
def test_a_larger_bucket_another_client_drained_is_not_taken_for_one(
    limit: float, burst: float
) -> None:
    """A bucket another client left with one token throttles slow start's second request
    as a bucket of one would. Once it refills past one token, two successes come closer
    than a throttle came after one, and the lane is ruled as any other: the limit it
    leaves is not above the service's (2% for estimates; it was up to 10% over)."""
    for seed in (1, 2):
        scenario = Scenario(
            limit=limit, burst=burst, rtt=0.05, jobs=round(60 * limit + burst), drained=True
        )
        outcome = simulate(dataclasses.replace(scenario, seed=seed))
        (learned,) = outcome.learned
        assert learned is not None
        assert learned[0] <= 1.02 * limit, outcome


@pytest.mark.parametrize("limit", [3.0, 5.0])
def test_runs_sharing_a_bucket_of_one_do_not_pin_each_other_to_the_floor(limit: float) -> None:
    """Two runs on one account share its bucket of one: each one's throttles come at any
    spacing, as the other takes tokens. They contend (5-7x the ideal of one run's jobs),
    but on the first night neither takes the other's share for its limit and falls to the
    floor of 0.1 a second (they took up to 25x and left 0.02 of the limit). Nights that
    start from what such a night left still settle at a tenth of the limit or less, as
    they did before the spacing rule (the README says so)."""
    for seed in (1, 2, 3):
        scenario = Scenario(
            limit=limit, burst=1, rtt=0.04, jobs=round(30 * limit), regions=2, shared=True
        )
        outcome = simulate(dataclasses.replace(scenario, seed=seed))
        assert outcome.wall <= 8 * 2 * scenario.jobs / limit, outcome
        for learned in outcome.learned:
            assert learned is not None
            assert learned[0] >= 0.08 * limit, outcome


def test_what_a_first_run_remembers_is_near_the_limit_either_way() -> None:
    """As README says: with a bucket of 5 or more, what a first run leaves the next is
    within 0.9-1.1 of the limit at 1-50 requests/s, round trips of 20-200 ms and runs of 15
    s and a minute, most of them within 1% (0.91-1.06 here, seed 1), so the next run
    probes past it soon (``KNOWN_HOLD``) rather than holding as at a limit just found."""
    shares = []
    for limit, times, rtt, seconds in itertools.product(
        (1, 5, 20, 50), (1, 5), (0.02, 0.08, 0.2), (15, 60)
    ):
        burst = limit * times
        if burst < 5:
            continue
        scenario = Scenario(limit=limit, burst=burst, rtt=rtt, jobs=round(limit * seconds + burst))
        (learned,) = simulate(scenario).learned
        assert learned is not None, scenario
        shares.append(learned[0] / limit)
    assert all(0.9 <= share <= 1.1 for share in shares), sorted(shares)
    close = sum(0.99 <= share <= 1.01 for share in shares)
    assert close >= 0.6 * len(shares), sorted(shares)


@pytest.mark.parametrize("rate", [5.0, 11.5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_short_run_throttled_only_by_slow_start_remembers_no_limit(
    rate: float, seed: int
) -> None:
    """Ten jobs against a bucket of five: slow start runs far past the limit before the
    bucket runs dry, and the run ends soon after that one throttle. A quarter of where it
    came is no measure of the limit (2-4x it here: 11-19 requests/s), so the
    next run must not start from it as a limit found; it slow-starts instead."""
    scenario = Scenario(limit=5, burst=5, rtt=0.1, jitter=0.2, jobs=10, rate=rate, seed=seed)
    outcome = simulate(scenario)
    assert outcome.throttled >= 1, outcome
    assert outcome.learned == (None,), outcome


@pytest.mark.parametrize(("limit", "jobs"), [(2.0, 2), (3.0, 3)])
def test_a_bucket_of_one_throttled_only_by_slow_start_remembers_no_limit(
    limit: float, jobs: int
) -> None:
    """A lane of two or three jobs on a bucket of one: slow start's second request is
    throttled and the run ends. That one throttle is no limit found (it was stored as one,
    about 1.4x the limit)."""
    for seed in (1, 2, 3):
        outcome = simulate(
            Scenario(limit=limit, burst=1, rtt=0.05, jitter=0.2, jobs=jobs, seed=seed)
        )
        assert outcome.throttled == 1, outcome
        assert outcome.learned == (None,), outcome
