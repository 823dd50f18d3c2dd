"""The per-region rate limiter, on a fake clock: bursts, steady rate, fairness."""

from __future__ import annotations

import math

import anyio
import pytest

from batchcopy.errors import SettingsError
from batchcopy.limits import CUT, DOUBLING, MARGIN, RateLimiter


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def test_burst_passes_at_once_then_one_per_interval() -> None:
    """The first `burst` requests wait for nothing; after that they are spaced 1/rate apart."""
    fake = FakeTime()
    limiter = RateLimiter(rate=4, burst=3, clock=fake.clock, sleep=fake.sleep)
    delays = [limiter.reserve() for _ in range(6)]
    assert delays == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75])


def test_quiet_spell_refills_the_burst_but_no_more() -> None:
    """After a pause the burst is available again, never more than the burst."""
    fake = FakeTime()
    limiter = RateLimiter(rate=2, burst=2, clock=fake.clock, sleep=fake.sleep)
    for _ in range(5):
        limiter.reserve()
    fake.now = 100.0
    delays = [limiter.reserve() for _ in range(4)]
    assert delays == pytest.approx([0, 0, 0.5, 1.0])


async def test_sustained_rate_matches_the_setting() -> None:
    """Many concurrent callers together get through at the configured rate."""
    fake = FakeTime()
    limiter = RateLimiter(rate=10, burst=1, clock=fake.clock, sleep=fake.sleep)
    done: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        done.append(fake.now)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(caller)
    assert len(done) == 50
    # 50 requests at 10/s with a burst of 1 take 4.9 s of (fake) time.
    assert max(done) == pytest.approx(4.9)
    assert "rate=10/s" in repr(limiter)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_settings_are_refused(rate: float, burst: int) -> None:
    """A rate of zero or less, or a burst below one, is refused with a clear error."""
    with pytest.raises(SettingsError, match=r"rate must be above 0|burst must be at least 1"):
        RateLimiter(rate=rate, burst=burst)


def test_adaptive_rate_doubles_every_round_trip_until_the_first_throttle() -> None:
    """Before any throttle each success adds ln 4 / latency: a round trip's successes,
    answering the requests of the round trip before (at half the rate), double the rate
    (slow start)."""
    fake = FakeTime()
    limiter = RateLimiter(rate=20, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        limiter.timed(0.5)
    for _ in range(3):
        limiter.succeeded()
    assert limiter.rate == pytest.approx(20 + 3 * math.log(4) / 0.5, rel=0.01)
    rate, sent = limiter.rate, 0.0
    while sent < rate / 2 * 0.5:  # a round trip's successes, sent at half the rate
        limiter.succeeded()
        sent += 1
    assert 1.7 * rate < limiter.rate < 2.2 * rate  # about doubled (whole successes)


def test_slow_start_on_a_fast_link_doubles_at_most_every_doubling_period() -> None:
    """On a 20 ms round trip slow start still takes DOUBLING seconds to double the rate:
    a bucket that starts full answers everything at first, and doubling every 20 ms would
    run far past the limit before the first throttle comes back."""
    fake = FakeTime()
    limiter = RateLimiter(rate=20, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        limiter.timed(0.02)
    sent = 0.0
    while sent < 20 / 2 * DOUBLING:  # a doubling period's successes, at half the rate
        limiter.succeeded()
        sent += 1
    assert 20 * 1.5 < limiter.rate < 20 * 2.2  # not the 2**12 of a 20 ms doubling


def test_first_throttle_drops_to_what_got_through() -> None:
    """The throttle that ends slow start drops the rate to what the last successes got
    through, however far the rate had run ahead; never below a quarter of the start."""
    fake = FakeTime()
    limiter = RateLimiter(rate=5, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):  # 30 successes a second; the rate runs far ahead
        fake.now += 1 / 30
        limiter.succeeded()
    assert limiter.rate > 60
    fake.now += 1 / 30
    limiter.throttled()
    assert limiter.rate == pytest.approx(30, rel=0.05)
    early = RateLimiter(rate=40, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    early.throttled()  # throttled before anything got through: a start far too high
    assert early.rate == pytest.approx(10)


def test_a_throttle_after_an_idle_spell_cuts_by_cut_only() -> None:
    """What got through before a quiet spell (a region with no jobs for a while) is not
    taken for the service's pace: a throttle after it cuts by CUT, not to that rate."""
    fake = FakeTime()
    limiter = RateLimiter(rate=20, max_rate=100, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start
    for _ in range(10):  # ten successes at 20/s
        fake.now += 0.05
        limiter.reserve()
        limiter.succeeded()
    fake.now += 60  # no requests for a minute
    limiter.reserve()
    rate = limiter.rate
    limiter.throttled()
    assert limiter.rate == pytest.approx(rate * CUT)


def test_throttle_cuts_the_rate_once_per_spell() -> None:
    """After slow start a throttle cuts the rate by CUT; more throttles from calls already
    sent do not cut again."""
    fake = FakeTime()
    limiter = RateLimiter(rate=80, max_rate=100, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start
    fake.now += 2
    start = limiter.rate
    for _ in range(5):
        limiter.throttled()
    assert limiter.rate == pytest.approx(start * CUT)
    fake.now += 2
    limiter.throttled()
    assert limiter.rate == pytest.approx(start * CUT * CUT)
    assert limiter.throttles == 7


def test_throttles_of_one_spell_cap_the_rate_at_what_the_service_let_through() -> None:
    """Two throttles a second apart with 9 successes between say the service's bucket
    refills about 10 times a second, whatever the rate was: the rate drops to just under
    that at once, not 10% per cut."""
    fake = FakeTime()
    limiter = RateLimiter(rate=200, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start; opens the spell
    limiter._set_rate(100.0)  # as if it had climbed back meanwhile
    for _ in range(9):
        fake.now += 0.1
        limiter.succeeded()
    fake.now += 0.1
    limiter.throttled()
    assert limiter.rate == pytest.approx((9 + 1) / 1.0 * (1 - MARGIN), rel=0.01)


def test_below_the_plateau_the_rate_climbs_back_fast_then_probes_slowly() -> None:
    """After a cut the rate returns to where the throttle came within a few seconds, then
    creeps past it (PROBE a second), and speeds up the longer no throttle comes (CUBIC's
    plateau), so a limit that rose is found again in seconds too."""
    fake = FakeTime()
    limiter = RateLimiter(rate=40, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start: a quarter of the start
    fake.now += 10
    limiter._set_rate(20.0)
    limiter.throttled()  # a plateau at 20, cut to 18
    assert limiter.rate == pytest.approx(20 * CUT)

    def second() -> None:
        for _ in range(round(limiter.rate)):
            fake.now += 1 / limiter.rate
            limiter.succeeded()

    for _ in range(3):
        second()
    assert 19 < limiter.rate < 20.5  # back near the plateau (less the margin)
    second()
    near = limiter.rate
    second()
    assert near < limiter.rate < near * 1.1  # creeping
    for _ in range(5):
        second()
    assert limiter.rate > 2 * near  # no throttle for seconds: the probe speeds up


def test_a_long_run_without_throttles_never_overflows() -> None:
    """Hours of successes past the plateau keep the rate within max_rate, with no error."""
    fake = FakeTime()
    limiter = RateLimiter(rate=5, max_rate=50, clock=fake.clock, sleep=fake.sleep)
    fake.now += 1
    limiter.throttled()
    for _ in range(1000):
        fake.now += 10
        limiter.succeeded()
    assert limiter.rate == 50


def test_rate_never_goes_above_the_cap_or_below_the_floor() -> None:
    """However many successes or throttles, the rate stays within [min_rate, max_rate]."""
    fake = FakeTime()
    limiter = RateLimiter(rate=5, max_rate=8, min_rate=1, clock=fake.clock, sleep=fake.sleep)
    for _ in range(1000):
        limiter.succeeded()
    assert limiter.rate == 8
    for _ in range(100):
        fake.now += 5
        limiter.throttled()
    assert limiter.rate == 1


def test_fixed_rate_does_not_adapt() -> None:
    """Without a max_rate the limiter keeps its rate whatever happens."""
    limiter = RateLimiter(rate=5)
    limiter.throttled()
    limiter.succeeded()
    assert limiter.rate == 5
    assert not limiter.adaptive


async def test_adaptive_limiter_settles_near_an_unknown_limit() -> None:
    """Against a simulated service that throttles above a rate it does not tell (5 or 20
    requests/s), starting 4x too low or too high, 500 calls get through within 1.05x of the
    ideal time; fewer than a quarter as many requests are throttled, even when the service's
    bucket starts full and lets slow start run far past the limit before the first throttle."""
    for limit in (5.0, 20.0):
        for start in (limit / 4, limit * 4):
            for bucket in (2.0, limit):
                fake = FakeTime()
                limiter = RateLimiter(rate=start, max_rate=100, clock=fake.clock, sleep=fake.sleep)
                tokens, stamp, accepted, throttled = bucket, 0.0, 0, 0
                while accepted < 500:
                    await limiter.acquire()
                    tokens = min(bucket, tokens + (fake.now - stamp) * limit)  # the service
                    stamp = fake.now
                    if tokens >= 1:
                        tokens -= 1
                        accepted += 1
                        limiter.succeeded()
                    else:
                        throttled += 1
                        limiter.throttled()
                case = (limit, start, bucket, fake.now, throttled)
                assert fake.now <= 1.05 * 500 / limit, case
                assert throttled < 500 / 4, case


def test_in_flight_cap_follows_rate_and_latency() -> None:
    """Requests kept open grow with the rate and the measured latency, shrink on a cut, and
    never pass the ceiling."""
    fake = FakeTime()
    limiter = RateLimiter(rate=100, burst=2, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):
        limiter.timed(0.1)  # requests take 100 ms
    slow = limiter.in_flight(ceiling=500)
    assert slow == pytest.approx(2 * 100 * 0.1 + 2, abs=1)
    for _ in range(200):
        limiter.succeeded()  # the rate climbs
    fast = limiter.in_flight(ceiling=500)
    assert fast > 10 * slow
    assert limiter.in_flight(ceiling=16) == 16
    for _ in range(10):
        limiter.throttled()
        fake.now += 1.0  # each throttle a second apart, so each one cuts
    assert limiter.in_flight(ceiling=500) < fast * CUT**9
    for _ in range(30):
        limiter.timed(1.0)  # the service got slower: more open requests for the same rate
    assert limiter.in_flight(ceiling=10_000) > limiter.rate * 1.0


def test_a_faster_rate_applies_to_slots_booked_at_the_slower_one() -> None:
    """When the rate grows, the next caller waits by the new rate, not behind a schedule
    booked at the old one (a start far too low must not stall the run)."""
    fake = FakeTime()
    limiter = RateLimiter(rate=1, burst=1, max_rate=1000, clock=fake.clock, sleep=fake.sleep)
    limiter.reserve()
    limiter.reserve()  # booked a second ahead, at 1 request/s
    for _ in range(10):
        limiter.succeeded()
    assert limiter.rate > 20
    # The two slots already booked, at the new rate: well under a tenth of a second.
    assert limiter.reserve() == pytest.approx(2 / limiter.rate)


async def test_a_caller_already_waiting_goes_as_soon_as_the_rate_grows() -> None:
    """A caller waiting for a slot booked at a slow rate is let through by the rate that
    grew while it waited (slow start from a low --rate), not after the old interval."""
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        fake.now += seconds
        for _ in range(10):  # successes come back while the caller waits
            limiter.succeeded()
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(rate=1, burst=1, max_rate=1000, clock=fake.clock, sleep=sleep)
    await limiter.acquire()  # the first request goes at once; the next slot is a second away
    await limiter.acquire()
    assert limiter.rate > 20
    assert fake.now < 0.1  # not the second the slot was worth at 1 request/s


def test_after_a_throttle_requests_are_paced_without_bursts() -> None:
    """Once the service has throttled, the next requests are spaced evenly even after a
    quiet spell: a burst would only be throttled again."""
    fake = FakeTime()
    limiter = RateLimiter(rate=10, burst=5, max_rate=100, clock=fake.clock, sleep=fake.sleep)
    assert [limiter.reserve() for _ in range(3)] == [0, 0, 0]  # a burst passes at first
    limiter.throttled()
    fake.now += 10  # a quiet spell
    delays = [limiter.reserve() for _ in range(3)]
    assert delays[0] == 0
    assert delays[1] > 0
    assert delays[2] > delays[1]


def test_one_timeout_does_not_pass_for_the_latency() -> None:
    """A request that hangs for a minute moves the latency estimate (and so the in-flight
    cap and the throttle spacing) by a bounded step, not to a minute."""
    limiter = RateLimiter(rate=10, max_rate=100)
    for _ in range(20):
        limiter.timed(0.1)
    limiter.timed(60.0)
    assert limiter.latency < 0.2
    assert limiter.in_flight(ceiling=128) < 128


@pytest.mark.parametrize(
    ("rate", "burst", "cap", "adaptive"),
    [(2, 5, 2, True), (2, 5, 2, False), (5, 5, 10, True), (5, 20, 10, False), (1, 5, 3, True)],
)
async def test_no_second_sees_more_than_the_cap(
    rate: float, burst: int, cap: float, adaptive: bool
) -> None:
    """With a cap (--max-rate), no one-second window sees more than the cap (plus one at
    the window's edge), bursts after quiet spells and a rate climbing in slow start
    included, adaptive or not."""
    fake = FakeTime()
    limiter = RateLimiter(
        rate,
        burst,
        max_rate=cap if adaptive else None,
        limit=cap,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    sent: list[float] = []
    for _ in range(3):
        for _ in range(40):
            await limiter.acquire()
            sent.append(fake.now)
            limiter.timed(0.05)
            limiter.succeeded()
        fake.now += 5.0  # a quiet spell: the burst is available again
    busiest = max(sum(t <= s < t + 1 for s in sent) for t in sent)
    assert busiest <= cap + 1


def test_a_burst_over_the_cap_is_cut_to_fit() -> None:
    """A burst that would pass the cap in its first second is cut: at --max-rate 2 with the
    default --burst 5 requests go one at a time, half a second apart, not five at once."""
    fake = FakeTime()
    limiter = RateLimiter(rate=2, burst=5, max_rate=2, clock=fake.clock, sleep=fake.sleep)
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0.5, 1.0])
    assert "burst=1" in repr(limiter)


async def test_a_halted_limiter_lets_its_waiting_callers_go_at_once() -> None:
    """At one request a second, ten callers queue for nine seconds; halted two seconds in
    (a run stopping), the rest get through at once instead of draining at the rate, and so
    does any later caller."""
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        fake.now += seconds
        if fake.now >= 2.0:
            limiter.halt()
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(rate=1, burst=1, clock=fake.clock, sleep=sleep)
    passed: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        passed.append(fake.now)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
    assert len(passed) == 10
    assert max(passed) < 2.5  # not 9 s: the queue did not drain at one a second
    await limiter.acquire()
    assert fake.now < 2.5


def test_a_known_limit_is_closed_on_without_slow_start() -> None:
    """Started below a limit an earlier run found, the rate closes on it and stays near it
    while calls succeed: it never doubles as a slow start would, and it paces evenly."""
    fake = FakeTime()
    limiter = RateLimiter(
        9.5, 5, max_rate=1000, known_limit=10.0, clock=fake.clock, sleep=fake.sleep
    )
    assert [limiter.reserve() for _ in range(2)] == pytest.approx([0, 1 / 9.5])
    for _ in range(10):  # a second's successes
        fake.now += 0.1
        limiter.succeeded()
    assert 9.5 < limiter.rate < 10.0 * (1 - MARGIN)  # closing on it, not doubling
    assert limiter.learned() == (pytest.approx(max(limiter.rate, 10.0)), True)


def test_what_a_limiter_learned_for_the_next_run() -> None:
    """Nothing is learned before an answer or at a fixed rate; successes alone give the
    rate reached (not a limit); a throttle makes it a limit the next run starts below."""
    fake = FakeTime()
    limiter = RateLimiter(5, max_rate=1000, clock=fake.clock, sleep=fake.sleep)
    assert limiter.learned() is None
    fake.now += 0.5
    limiter.succeeded()
    rate, known = limiter.learned() or (0.0, True)
    assert (rate, known) == (limiter.rate, False)
    assert rate > 5
    fake.now += 0.5
    limiter.throttled()
    rate, known = limiter.learned() or (0.0, False)
    assert known
    assert rate >= limiter.rate
    fixed = RateLimiter(5, clock=fake.clock, sleep=fake.sleep)
    fixed.succeeded()
    fixed.throttled()
    assert fixed.learned() is None
