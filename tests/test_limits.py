"""The per-region rate limiter, on a fake clock: bursts, steady rate, fairness."""

from __future__ import annotations

import anyio
import pytest

from batchcopy.errors import SettingsError
from batchcopy.limits import (
    DOUBLING,
    ESCAPE,
    HOLD,
    KNOWN_HOLD,
    MARGIN,
    REGROW,
    ROSE,
    RateLimiter,
)
from tests.ratesim import Scenario, simulate


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


def _successes(limiter: RateLimiter, fake: FakeTime, count: int, every: float) -> None:
    for _ in range(count):
        fake.now += every
        limiter.succeeded()


def test_slow_start_doubles_every_doubling_period_while_answers_come() -> None:
    """Before any throttle the rate doubles every DOUBLING seconds of successes (a round
    trip, if longer), never more than doubling on one success, however fast the answers:
    a bucket that starts full answers everything at first."""
    fake = FakeTime()
    limiter = RateLimiter(rate=20, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        limiter.timed(0.02)
    _successes(limiter, fake, 100, 2 * DOUBLING / 100)  # two doubling periods, 20 ms apart
    assert limiter.rate == pytest.approx(80, rel=0.01)  # not the 2**40 of a 20 ms doubling
    slow = RateLimiter(rate=20, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        slow.timed(2.0)  # two-second round trips: a doubling a round trip
    _successes(slow, fake, 10, 0.2)
    assert slow.rate == pytest.approx(40, rel=0.01)
    fake.now += 60  # a minute without answers, then one: doubles, no more
    slow.succeeded()
    assert slow.rate == pytest.approx(80, rel=0.01)


def test_slow_start_sends_one_at_a_time() -> None:
    """Until the service has said where its limit is, requests are paced one at a time,
    whatever --burst says: a bucket of one would throttle all but the first of a burst."""
    fake = FakeTime()
    limiter = RateLimiter(rate=10, burst=5, max_rate=100, clock=fake.clock, sleep=fake.sleep)
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0.1, 0.2])
    fixed = RateLimiter(rate=10, burst=5, clock=fake.clock, sleep=fake.sleep)
    assert [fixed.reserve() for _ in range(3)] == [0, 0, 0]  # a fixed rate keeps its burst


def test_the_first_throttle_drops_to_a_quarter_then_climbs_back_as_in_slow_start() -> None:
    """The throttle that ends slow start may come far above the service's rate (a bucket
    that started full hid it): the rate drops to a quarter, then climbs back as in slow
    start to REGROW of where the throttle came (TCP's ssthresh), and from there probes."""
    fake = FakeTime()
    limiter = RateLimiter(rate=80, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()
    assert limiter.rate == pytest.approx(20)
    fake.now += 0.3  # past the round trip after the cut
    _successes(limiter, fake, 1, DOUBLING / 5)
    assert 20 < limiter.rate <= 40  # doubling at most
    _successes(limiter, fake, 10, DOUBLING / 5)
    assert limiter.rate == pytest.approx(80 * REGROW, rel=0.02)  # and not far past it
    _successes(limiter, fake, 20, 1 / 60)
    assert 80 * REGROW < limiter.rate < 80 * REGROW * 1.1  # probing


def test_throttles_of_requests_sent_before_a_cut_do_not_cut_again() -> None:
    """Throttles within CUT_SPACING of a cut (requests already on their way) and successes
    within a round trip of it say nothing of the new rate: neither moves it."""
    fake = FakeTime()
    limiter = RateLimiter(rate=80, max_rate=100, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        limiter.timed(0.1)
    limiter.throttled()
    rate = limiter.rate
    for _ in range(5):
        fake.now += 0.01
        limiter.throttled()
        limiter.succeeded()
    assert limiter.rate == rate
    assert limiter.throttles == 6


def test_a_throttle_cuts_to_what_got_through_since_the_last_one() -> None:
    """Throttles a second apart with 9 successes between say the service's bucket refills
    about 9 times a second, whatever the rate was: the rate drops to just under that at
    once; with nothing through between them it halves."""
    fake = FakeTime()
    limiter = RateLimiter(rate=200, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start
    limiter._set_rate(100.0)  # as if it had climbed back meanwhile
    _successes(limiter, fake, 9, 0.1)
    fake.now += 0.1
    limiter.throttled()
    assert limiter.rate == pytest.approx(9 / 1.0 * (1 - MARGIN), rel=0.01)
    fake.now += 1
    rate = limiter.rate
    limiter.throttled()
    assert limiter.rate == pytest.approx(rate / 2 * (1 - MARGIN), rel=0.01)


def test_a_throttle_after_an_idle_spell_measures_only_the_busy_time() -> None:
    """A lane with nothing to send for a minute (a region whose jobs ran out for a while)
    does not take that minute for the service's slowness: what got through is counted over
    the time it was sending."""
    fake = FakeTime()
    limiter = RateLimiter(rate=40, max_rate=100, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start at 10/s
    for _ in range(10):  # ten successes at 10/s
        fake.now += 0.1
        limiter.reserve()
        limiter.succeeded()
    fake.now += 60  # nothing to send for a minute
    limiter.reserve()
    limiter.throttled()
    assert limiter.rate > 5  # not the 10 / 61 s of the whole spell


def test_after_a_long_quiet_climb_the_rate_stays_near_where_the_throttle_came() -> None:
    """A throttle that ends a climb of SETTLED quiet successes or more marks the limit:
    the rate dips twice the margin under where it came, even where less got through (a
    bucket of one wastes what refills while the rate is below it), climbs back to half a
    margin under it, and holds there HOLD successes before probing past it."""
    fake = FakeTime()
    limiter = RateLimiter(rate=40, max_rate=1000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start at 10/s
    limiter._regrow_to = 0.0  # no climb back as in slow start: probing alone
    _successes(limiter, fake, 30, 1 / 9.5)  # quiet, 9.5 a second through at 10-11
    fake.now += 1 / 9.5
    came_at = limiter.rate
    limiter.throttled()
    assert limiter.rate == pytest.approx(came_at * (1 - 2 * MARGIN), rel=0.001)
    assert limiter.rate > 30 / (31 / 9.5) * (1 - MARGIN)  # above what got through, less 3%
    fake.now += 1.0  # past the throttles of requests already on their way
    _successes(limiter, fake, 10, 0.1)
    plateau = came_at * (1 - MARGIN / 2) * (1 - MARGIN)
    assert limiter.rate == pytest.approx(plateau, rel=0.001)
    _successes(limiter, fake, HOLD - 10, 0.1)
    assert limiter.rate == pytest.approx(plateau, rel=0.001)  # held
    _successes(limiter, fake, 10, 0.1)
    assert plateau < limiter.rate < came_at  # then probing past it, slowly


def test_below_the_plateau_the_rate_climbs_back_fast_then_probes_slowly() -> None:
    """After a cut the rate returns to the plateau within a few successes, then creeps
    past it, and speeds up the longer no throttle comes (CUBIC's plateau), so a limit that
    rose is found again."""
    fake = FakeTime()
    limiter = RateLimiter(rate=80, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start at 20
    limiter._regrow_to = 0.0  # no climb back as in slow start: the plateau alone
    limiter._plateau = 20.0
    limiter._set_rate(15.0)
    fake.now += 1  # past the round trip after the cut
    _successes(limiter, fake, 5, 1 / 15)
    assert 19 < limiter.rate <= 20 * (1 - MARGIN) + 0.1  # back near the plateau
    near = limiter.rate
    _successes(limiter, fake, 20, 1 / 20)
    assert near < limiter.rate < near * 1.1  # creeping
    _successes(limiter, fake, 4 * ESCAPE, 1 / 20)
    assert limiter.rate > 2 * near  # no throttle for long: the probe speeds up


async def test_a_caller_waiting_when_the_rate_is_cut_waits_by_the_new_rate() -> None:
    """A caller already waiting for a slot booked at the old rate, when a throttle cuts
    it, waits for a slot at the new rate instead of sending into the service's limit."""
    fake = FakeTime()
    cut_at = 0.09  # while it sleeps the last part of its wait

    async def sleep(seconds: float) -> None:
        if fake.now < cut_at <= fake.now + seconds:
            fake.now = cut_at
            limiter.throttled()  # a throttle comes back while the caller waits
            await anyio.lowlevel.checkpoint()
            return
        fake.now += seconds
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(rate=10, max_rate=100, clock=fake.clock, sleep=sleep)
    await limiter.acquire()
    await limiter.acquire()  # its slot was 0.1 s away at 10/s
    assert limiter.rate == pytest.approx(2.5)
    assert fake.now >= cut_at + 1 / 2.5  # booked again, at 2.5/s


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
    _successes(limiter, fake, 1000, 0.1)
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
    requests/s), starting 4x too low or too high, 500 calls get through within 1.06x of the
    ideal time (1.055 at 20/s with a bucket of 2 from a start of 5, the slowest); fewer than
    a tenth as many requests are throttled, even when the service's bucket starts full and
    lets slow start run far past the limit before the first throttle."""
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
                assert fake.now <= 1.06 * 500 / limit, case
                assert throttled < 500 / 10, case


def test_in_flight_cap_follows_rate_and_latency() -> None:
    """Requests kept open grow with the rate and the measured latency, shrink on a cut, and
    never pass the ceiling."""
    fake = FakeTime()
    limiter = RateLimiter(rate=100, burst=2, max_rate=10_000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):
        limiter.timed(0.1)  # requests take 100 ms
    slow = limiter.in_flight(ceiling=500)
    assert slow == pytest.approx(2 * 100 * 0.1 + 2, abs=1)
    _successes(limiter, fake, 200, 0.05)  # the rate climbs
    fast = limiter.in_flight(ceiling=500)
    assert fast > 10 * slow
    assert limiter.in_flight(ceiling=16) == 16
    for _ in range(10):
        limiter.throttled()
        fake.now += 1.0  # each throttle a second apart, so each one cuts
    assert limiter.in_flight(ceiling=500) < fast / 10
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
    _successes(limiter, fake, 10, DOUBLING / 2)  # five doublings
    assert limiter.rate > 20
    # What was left of the slot booked, at the new rate: well under a tenth of a second.
    assert limiter.reserve() < 0.1


async def test_a_caller_already_waiting_goes_as_soon_as_the_rate_grows() -> None:
    """A caller waiting for a slot booked at a slow rate is let through by the rate that
    grew while it waited (slow start from a low --rate), not after the old interval."""
    fake = FakeTime()

    async def sleep(seconds: float) -> None:
        fake.now += seconds
        limiter.succeeded()  # successes come back while the caller waits
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(rate=1, burst=1, max_rate=1000, clock=fake.clock, sleep=sleep)
    await limiter.acquire()  # the first request goes at once; the next slot is a second away
    await limiter.acquire()
    assert limiter.rate > 2
    assert fake.now < 0.7  # not the second the slot was worth at 1 request/s


def test_after_a_throttle_requests_are_paced_without_bursts() -> None:
    """Once the service has throttled, the next requests are spaced evenly even after a
    quiet spell: a burst would only be throttled again."""
    fake = FakeTime()
    limiter = RateLimiter(rate=10, burst=5, max_rate=100, clock=fake.clock, sleep=fake.sleep)
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
    assert 9.5 < limiter.rate < 10.0  # closing on it, not doubling
    assert limiter.learned() == (pytest.approx(max(limiter.rate, 10.0)), True)


def test_a_remembered_limit_passed_without_a_throttle_is_found_again_next_run() -> None:
    """A run that starts from a remembered limit, holds it, then probes well past it with
    no throttle (the limit rose) leaves the rate it reached as not a limit, so the next run
    slow-starts from there instead of creeping up a night at a time. A run that stays near
    the remembered limit, or is throttled, still leaves it as the limit."""
    fake = FakeTime()
    limiter = RateLimiter(3.8, max_rate=1000, known_limit=4.0, clock=fake.clock, sleep=fake.sleep)
    _successes(limiter, fake, KNOWN_HOLD + 10, 0.25)  # held, then probing a little: no news
    assert limiter.rate < 4.0 * (1 + ROSE)
    assert limiter.learned() == (pytest.approx(4.0, rel=0.01), True)
    _successes(limiter, fake, 100, 0.2)  # 5 a second get through, never throttled: it rose
    assert limiter.rate > 4.0 * (1 + ROSE)
    assert limiter.learned() == (limiter.rate, False)
    limiter.throttled()  # a throttle at last: what it says is the limit again
    learned = limiter.learned()
    assert learned is not None
    assert learned[1]


@pytest.mark.parametrize(("bucket", "timed"), [(2, True), (1, True), (1, False)])
def test_a_throttle_below_a_known_limit_cuts_to_what_got_through(bucket: int, timed: bool) -> None:
    """The first throttle of a run that started from a remembered limit (no slow start, no
    earlier cut) measures what got through since the start: the rate drops just under it,
    not to the floor. Where the bucket was measured at one token, the spacing measures it:
    successes a quarter of a second apart, and a throttle as long after the last; but only
    where each request's round trip is timed, as the engine times copies and tags (a
    budget whose tries are not timed, as AssumeRole's, is not measured so)."""
    fake = FakeTime()
    limiter = RateLimiter(
        4.75, max_rate=1000, known_limit=5.0, known_burst=bucket, clock=fake.clock, sleep=fake.sleep
    )
    for _ in range(10):  # the limit fell to 4 a second
        fake.now += 1 / 4
        if timed:
            limiter.timed(0.05)
        limiter.succeeded()
    fake.now += 0.25
    if timed:
        limiter.timed(0.05)
    limiter.throttled()
    spacing = bucket == 1 and timed
    # A known burst (of 2 or more) came from the service's store: measured from its end.
    spent = bucket if bucket > 1 else 0
    got = 4 * (1 - 2 * MARGIN) if spacing else (10 - spent) / (2.75 - spent / 4) * (1 - MARGIN)
    assert limiter.rate == pytest.approx(got, rel=0.01)


def test_what_is_learned_is_what_got_through_not_a_probing_rate() -> None:
    """A run that ends while probing past the limit leaves what got through at its last
    throttle, not the probe's rate: the next run starts below the limit, not above it.
    Successes since then at a higher pace (a limit that rose) are what it leaves instead."""
    fake = FakeTime()
    limiter = RateLimiter(40, max_rate=1000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()  # ends slow start at 10/s
    fake.now += 0.3
    _successes(limiter, fake, 10, 0.2)  # 5 a second got through
    limiter.throttled()
    limit = limiter.learned()
    assert limit is not None
    assert limit[0] == pytest.approx(10 / 2.3, rel=0.01)
    limiter._set_rate(6.0)  # probing past it when the run ends
    _successes(limiter, fake, 3, 1 / 6)
    assert limiter.learned() == (pytest.approx(limit[0]), True)
    _successes(limiter, fake, 60, 1 / 8)  # the limit rose: 8 a second get through
    rate, known = limiter.learned() or (0.0, False)
    assert known
    assert limit[0] * 1.2 < rate <= limiter.rate


def test_what_a_limiter_learned_for_the_next_run() -> None:
    """Nothing is learned before an answer or at a fixed rate; successes alone give the
    rate reached (not a limit), no more than what got through. Slow start's throttle, where
    a full bucket may have hidden the limit until the rate was far past it, measures
    nothing: still not a limit, and no more than a quarter of where it came. A throttle
    after that makes it a limit the next run starts below."""
    fake = FakeTime()
    limiter = RateLimiter(5, max_rate=1000, clock=fake.clock, sleep=fake.sleep)
    assert limiter.learned() is None
    limiter.reserve()
    fake.now += 0.5
    limiter.succeeded()
    rate, known = limiter.learned() or (0.0, True)
    assert (rate, known) == (pytest.approx(1 / 0.5), False)  # one answer in half a second
    assert limiter.rate > 5
    _successes(limiter, fake, 8, 0.4)  # the rate doubles with each; 9 got through in 3.7 s
    rate, known = limiter.learned() or (0.0, True)
    assert (rate, known) == (pytest.approx(9 / 3.7), False)
    assert limiter.rate > 100
    fake.now += 0.5
    came_at = limiter.rate
    limiter.throttled()
    rate, known = limiter.learned() or (0.0, True)
    assert not known
    assert rate <= came_at / 4
    fake.now += 1.0
    _successes(limiter, fake, 10, 0.1)
    limiter.throttled()
    rate, known = limiter.learned() or (0.0, False)
    assert known
    assert rate >= limiter.rate
    fixed = RateLimiter(5, clock=fake.clock, sleep=fake.sleep)
    fixed.succeeded()
    fixed.throttled()
    assert fixed.learned() is None


def test_a_known_burst_is_spent_at_the_start_then_paced_from_its_last_request() -> None:
    """A lane that knows the service's bucket sends that many requests at once, then one
    per interval. A throttle within it (the bucket was not full) ends the burst without a
    wait to repay it: the next request comes one interval after the last one, and the
    bucket is measured again as what got through before it."""
    fake = FakeTime()
    limiter = RateLimiter(
        4.75, max_rate=1000, known_limit=5.0, known_burst=4, clock=fake.clock, sleep=fake.sleep
    )
    assert [limiter.reserve() for _ in range(5)] == pytest.approx([0, 0, 0, 0, 1 / 4.75])
    assert limiter.bucket() == 4  # spent, nothing said otherwise
    fake.now += 0.05
    limiter.timed(0.05)
    limiter.succeeded()
    limiter.succeeded()
    limiter.throttled()  # the third of the four came back throttled
    assert limiter.bucket() == 2
    # The sixth request: two intervals after the burst (0.42 s), not five (1.05 s).
    assert limiter.reserve() + fake.now < 0.5


async def test_a_caller_waiting_when_a_known_burst_ends_keeps_its_slot() -> None:
    """The end of a known burst is no cut: a caller already waiting for its slot, booked
    at the same rate, goes when it comes rather than booking again (a lost slot)."""
    fake = FakeTime()
    ended_at = 0.103  # in the last part of the fourth caller's wait

    async def sleep(seconds: float) -> None:
        end = fake.now + seconds
        if fake.now < ended_at <= end:
            fake.now = ended_at
            for _ in range(3):
                limiter.succeeded()  # the burst's answers come while the caller waits
        fake.now = end
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(
        9.5, max_rate=1000, known_limit=10.0, known_burst=3, clock=fake.clock, sleep=sleep
    )
    for _ in range(3):
        await limiter.acquire()  # the burst, at once
    await limiter.acquire()
    assert fake.now == pytest.approx(1 / 9.5)  # one interval after the burst, not two


def test_a_remembered_bucket_is_spent_only_to_a_minute_of_the_limit() -> None:
    """A state file naming a bucket of 10**8 (damaged, or written by hand) does not send
    requests by the million at the start: at most a minute of the remembered limit goes at
    once. What the run leaves is the bucket as remembered, not the cap: a spent cap says
    nothing of the bucket, and a cap kept would shrink it for good."""
    fake = FakeTime()
    limiter = RateLimiter(
        9.5,
        max_rate=1000,
        known_limit=10.0,
        known_burst=10**8,
        limit=10**9,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    at_once = 0
    while limiter.reserve() == 0:
        at_once += 1
    assert 590 <= at_once <= 600  # a minute at the remembered limit, not 10**8
    assert limiter.bucket() == 10**8
    # At a limit of one request in 100 s, a minute holds no whole token: a remembered
    # bucket of ten still goes one request at a time, but is not ruled as a bucket of one.
    slow = RateLimiter(0.0095, max_rate=1000, known_limit=0.01, known_burst=10)
    assert slow.burst == 1
    assert not slow._one
    assert slow.bucket() == 10


def test_a_first_run_measures_the_bucket_and_never_more_than_it() -> None:
    """What a run leaves the next one of the service's bucket is what got through before
    it first ran dry, less the refill: at most the true bucket (a larger one would be
    throttled at the next run's start), and most of it where the bucket is large."""
    for limit, burst, rtt in [(1, 5, 0.2), (5, 25, 0.08), (10, 50, 0.02), (20, 20, 0.2)]:
        for seed in (1, 2):
            scenario = Scenario(
                limit=limit, burst=burst, rtt=rtt, jobs=30 * limit + burst, seed=seed
            )
            learned = simulate(scenario).learned[0]
            assert learned is not None
            assert 0.25 * burst <= learned[1] <= burst, (scenario, learned)


def test_a_known_burst_spent_at_the_start_neither_probes_nor_passes_for_the_rate() -> None:
    """A remembered bucket of 200 goes through at once at the start: the service had those
    tokens in store, so they are no sign the rate may climb past the remembered limit, and
    the first throttle measures the limit from what got through after them."""
    fake = FakeTime()
    limiter = RateLimiter(
        47.5, max_rate=1000, known_limit=50.0, known_burst=200, clock=fake.clock, sleep=fake.sleep
    )
    limiter.timed(0.02)
    _successes(limiter, fake, 200, 0.0005)  # the bucket's store, within 0.1 s
    assert limiter.rate <= 50.0
    _successes(limiter, fake, 50, 1 / 40)  # then 40 a second: the limit fell to 40
    fake.now += 1 / 40
    limiter.throttled()
    assert limiter.rate < 40.0


def test_a_known_limit_is_held_a_while_before_probing_past_it() -> None:
    """A run that starts from a remembered limit closes on it and stays under it for
    KNOWN_HOLD successes (each probe past a limit that has not moved costs a throttle);
    after that it probes, so a limit that rose is still found."""
    fake = FakeTime()
    limiter = RateLimiter(4.75, max_rate=1000, known_limit=5.0, clock=fake.clock, sleep=fake.sleep)
    _successes(limiter, fake, KNOWN_HOLD, 0.2)
    assert 4.8 < limiter.rate <= 5.0
    _successes(limiter, fake, 2 * ESCAPE, 0.2)
    assert limiter.rate > 5.1


def test_a_throttle_in_a_bucket_of_one_never_sets_the_rate_past_max_rate() -> None:
    """A bucket of one cuts to no less than what got through since the last cut; even
    when that measures more than --max-rate (successes close together), the rate stays
    within it."""
    fake = FakeTime()
    limiter = RateLimiter(
        1.9, 5, max_rate=2.0, known_limit=2.0, known_burst=1, clock=fake.clock, sleep=fake.sleep
    )
    for at in (0.1, 0.2, 0.3):
        fake.now = at
        limiter.timed(0.02)
        limiter.succeeded()
    fake.now = 0.35
    limiter.timed(0.02)
    limiter.throttled()
    assert 0 < limiter.rate <= 2.0
    for _ in range(30):
        fake.now += 0.6
        limiter.timed(0.02)
        limiter.succeeded()
    assert limiter.rate <= 2.0
    assert limiter.learned() == (2.0, True)  # nor is more than --max-rate remembered


def test_a_run_held_under_a_remembered_limit_by_max_rate_leaves_it_as_it_was() -> None:
    """A remembered limit of 10, a run with --max-rate 8 that is never throttled: it
    learned nothing of the limit, so it leaves nothing (the next run starts from the
    earlier one's 10), not 8 as a limit found."""
    fake = FakeTime()
    limiter = RateLimiter(7.6, max_rate=8.0, known_limit=10.0, clock=fake.clock, sleep=fake.sleep)
    _successes(limiter, fake, 200, 1 / 8)
    assert limiter.rate <= 8.0
    assert limiter.learned() is None


def test_a_floor_left_by_slow_start_leaves_out_the_bucket_it_spent() -> None:
    """A bucket of 50 spent in slow start, then its throttle, then two successes in a
    second: the run leaves a floor (not a limit) of what got through since, not the 50
    that the full bucket let through in a second."""
    fake = FakeTime()
    limiter = RateLimiter(5, max_rate=1000, clock=fake.clock, sleep=fake.sleep)
    limiter.reserve()
    _successes(limiter, fake, 50, 0.02)
    limiter.throttled()
    _successes(limiter, fake, 2, 0.5)
    rate, known = limiter.learned() or (0.0, True)
    assert not known
    assert rate <= 2 / 1.0 + 0.01
