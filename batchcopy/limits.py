"""Per-region request rate: a token bucket that callers wait on, and that can adapt.

The bucket is kept as a reservation schedule (GCRA): each ``acquire`` books the next free
slot at once and then sleeps until it comes, so concurrent callers are served in order
without polling, and a burst of ``burst`` requests passes with no wait. Time is injected
(``clock`` and ``sleep``) so tests run on a fake clock.

Lightsail publishes no rate limit, so the rate adapts. What a throttle says: the service's
bucket was empty when that request ARRIVED. Two throttles of one spell therefore bracket
the service's own rate: what got through between them is what its bucket refilled, give
or take a request, so (successes + 1) / seconds is at most its rate whatever ours was (BBR's
delivery-rate estimate, made safe by the throttles at both ends). Every throttle caps the
rate at ``1 - MARGIN`` of that bound (spells end after ``SPELL`` seconds without a throttle,
four round trips or ``SPELL_REQUESTS`` requests, if longer: after a quiet spell the bucket
may have refilled, and successes no longer measure its rate).

Until the first throttle the rate doubles every round trip, as TCP's slow start does (each
success adds ``ln 4 / latency``; never more than doubling at once), but at most every
``DOUBLING`` seconds: a bucket that starts full lets its first ``burst`` requests through
whatever the rate, and doubling every 20 ms round trip would run far past the limit before
the first throttle, with every request then in flight throttled. The first throttle drops
the rate to what got through over the last few successes (at least a quarter of the start).
After that a throttle also cuts by ``CUT`` (once per ``CUT_SPACING`` seconds or two round
trips: throttles of requests sent before a cut say nothing new), and the rate it came at
becomes the plateau, as in CUBIC: below it the rate closes ``APPROACH`` of the gap a second;
past it, it probes by ``PROBE`` a second (at least ``PROBE_FLOOR`` requests/s), doubling
that every ``ESCAPE`` seconds without a throttle, so a limit that rose (or a plateau set by
a burst, not the rate) is found again in seconds.

The trade-off chosen where a service has no burst (a bucket of 1) and arrivals jitter by
more than a small part of the spacing between requests: no sender can pace so that every
request arrives after the previous one's token refilled, and a throttled request costs a
send slot as well as a request (its retry takes a later slot), so pacing at the limit
throttles half the requests and gets through two-thirds of the limit. The rule sits below
the limit instead, at the rate where throttles stop: fewer requests, longer runs
(``benchmarks/ratesim_matrix.py`` prints both). It never goes above ``max_rate`` nor
below ``min_rate``, and no second sees more than ``limit`` requests (by default
``max_rate``): the burst shrinks as the rate nears it. Once throttled, requests are paced
evenly (the burst drops to 1): a burst would only be throttled.

A limit an earlier run found (``known_limit``, see :mod:`batchcopy.ratestate`) is taken as
the plateau from the start: no slow start, paced evenly, closing on it and probing past it
as after a throttle there; :meth:`RateLimiter.learned` is what a run leaves the next one.

The limiter also keeps a moving average of how long a request takes, and from it the
number of requests worth having open at once: what the current rate needs over that
latency (Little's law), with headroom, so the in-flight cap grows and shrinks with the rate.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from batchcopy.errors import SettingsError

__all__ = ["Clock", "RateLimiter", "Sleep"]

# Chosen with benchmarks/ratesim_matrix.py (limits 1-50 req/s, buckets 1 to 5x the limit,
# round trips 20-200 ms +/- 50%, starts 4x too low and too high), then checked against the
# emulator (benchmarks/targets.py).
CUT = 0.9  # the rate is multiplied by this on a throttle (0.85 cut too deep at low bursts)
MARGIN = 0.03  # pace this far below the service's measured rate
APPROACH = 1.0  # per second: the share of the gap to the plateau closed
DOUBLING = 0.25  # seconds: slow start doubles the rate at most this often
ESCAPE = 1.0  # seconds: past the plateau without a throttle, the probe doubles this often
SPELL = 1.0  # seconds without a throttle that end a spell of them (or four round trips,
SPELL_REQUESTS = 8  # or the time this many requests take, if longer)
# Seconds (or two round trips, if longer) within which throttles count as one. Shorter cut
# too often at low rates: the demo (1.5 req/s in one region) took 10.1 s at 0.05, 6.8 at 0.25.
CUT_SPACING = 0.25
PROBE = 0.02  # past the plateau: this share of the rate added a second, at first
PROBE_FLOOR = 0.05  # ... but at least this many requests/s a second
DELIVERY_SAMPLE = 10  # recent successes that tell the rate that got through
IDLE = 1.0  # no requests this long (or for ten at the rate): earlier successes no longer count
FIRST_LATENCY = 0.25  # seconds a request is taken to last until one has been timed
LATENCY_WEIGHT = 0.2  # weight of the newest sample in the latency's moving average
IN_FLIGHT_HEADROOM = 2.0  # open requests: this many times rate x latency, plus the burst
MIN_IN_FLIGHT = 16  # a job keeps its slot through retry pauses: never fewer (but the ceiling)
RECHECK = 0.05  # seconds: a longer wait for a slot is measured again this often

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most ``rate`` acquisitions a second on average, with bursts of up to ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        max_rate: float | None = None,
        limit: float | None = None,
        min_rate: float = 0.1,
        known_limit: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not rate > 0:
            raise SettingsError(f"rate must be above 0 requests per second, got {rate}")
        if burst < 1:
            raise SettingsError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self.max_rate = max_rate  # None: the rate is fixed and does not adapt
        # Requests in any one second, at most (a burst included); by default the max_rate.
        self.limit = limit if limit is not None else max_rate
        self.min_rate = min(min_rate, rate)
        self.throttles = 0
        self.latency = FIRST_LATENCY  # moving average of request round trips, seconds
        self._timed = False
        self._slow_start = True
        self._delivered: deque[float] = deque(maxlen=DELIVERY_SAMPLE)  # success times
        self._start_rate = rate
        self._last_cut = -float("inf")
        self._successes = 0
        self._spell = (-math.inf, 0)  # the first throttle of this spell: when, successes then
        self._last_throttle = -math.inf
        self._plateau = rate
        self._above_since = clock()  # when the rate last rose past the plateau
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next request
        self._turn = anyio.Lock(fast_acquire=True)  # no yield when nobody queues
        self.halted = False  # see halt()
        if known_limit is not None and self.adaptive:
            # Learned by an earlier run: no slow start, paced evenly, closing on it as after
            # a throttle there.
            self._slow_start = False
            self._plateau = known_limit
            self.burst = 1

    def __repr__(self) -> str:
        ahead = max(0.0, self._tat - self._clock())
        return (
            f"<RateLimiter rate={self.rate:.3g}/s max={self.max_rate} burst={self._burst()} "
            f"latency={self.latency * 1000:.0f}ms booked_ahead={ahead:.3f}s>"
        )

    @property
    def adaptive(self) -> bool:
        return self.max_rate is not None

    def throttled(self) -> None:
        """The service said slow down: cut the rate (once per ``CUT_SPACING`` seconds)."""
        self.throttles += 1
        if not self.adaptive:
            return
        now = self._clock()
        bound = self._served_at_most(now)
        rate = min(self.rate, bound * (1 - MARGIN))
        # Throttles of requests sent before the last cut come back within a round trip.
        if now - self._last_cut >= max(CUT_SPACING, 2 * self.latency):
            self._last_cut = now
            self.burst = 1  # the service is at its limit: a burst now would only be throttled
            self._plateau = min(self.rate, bound)
            rate = min(rate, self.rate * CUT)
            if self._slow_start:
                rate = min(rate, max(self._got_through(now), self._start_rate / 4))
            self._slow_start = False
        self._plateau = min(self._plateau, bound)
        self._above_since = now
        self._set_rate(max(self.min_rate, rate))

    def learned(self) -> tuple[float, bool] | None:
        """What a next run can start from: the rate reached and whether it is the limit (a
        throttle came at it, in this run or the one ``known_limit`` came from), then the
        plateau (or the rate, if it went past it since). None if nothing was learned: a
        fixed rate, or no request answered."""
        if not self.adaptive or not (self._successes or self.throttles):
            return None
        if self._slow_start:
            return self.rate, False
        return max(self.rate, self._plateau), True

    def _served_at_most(self, now: float) -> float:
        """At most the service's own rate, from the throttles of this spell: its bucket was
        empty at the first and at this one, so what got through in between is what it
        refilled, give or take a request."""
        if now - self._last_throttle > max(SPELL, 4 * self.latency, SPELL_REQUESTS / self.rate):
            self._spell = (now, self._successes)  # a new spell
        self._last_throttle = now
        began, count = self._spell
        if now <= began:
            return math.inf
        return (self._successes - count + 1) / (now - began)

    def succeeded(self) -> None:
        """A call went through: probe upward."""
        if self.max_rate is None:
            return
        now = self._clock()
        self._successes += 1
        self._delivered.append(now)
        if self._slow_start:
            # Never more than doubling on one success: a service's first burst of
            # successes on a fast link must not throw the rate far ahead.
            step = min(math.log(4) / max(self.latency, DOUBLING), self.rate)
        elif self.rate < self._plateau * (1 - MARGIN):
            # Below where the last throttle came: close the gap fast.
            self._above_since = now
            gap = self._plateau * (1 - MARGIN) - self.rate
            step = max(APPROACH * gap, PROBE_FLOOR) / self.rate
        else:
            # At or past it: slowly at first, faster the longer no throttle comes.
            doublings = min((now - self._above_since) / ESCAPE, 30.0)  # no float overflow
            step = max(PROBE * self.rate, PROBE_FLOOR) * 2**doublings / self.rate
        self._set_rate(min(self.max_rate, self.rate + min(step, self.rate)))

    def _set_rate(self, rate: float) -> None:
        """Change the rate. A schedule booked at a slower rate is compressed to the faster
        one, so it does not hold the next callers back for seconds."""
        ahead = self._tat - self._clock()
        if ahead > 0 and rate > self.rate:
            self._tat -= ahead * (1 - self.rate / rate)
        self.rate = rate

    def _got_through(self, now: float) -> float:
        """Successes per second lately: over the last ``DELIVERY_SAMPLE`` successes, so the
        estimate follows a rate that was climbing, at any scale."""
        if not self._delivered:
            return 0.0
        return len(self._delivered) / max(now - self._delivered[0], 1e-3)

    def timed(self, seconds: float) -> None:
        """One request took ``seconds`` from send to answer. A sample is taken as at most
        four times the average, so one timeout or hang does not pass for the latency."""
        seconds = min(seconds, 4 * self.latency)
        if self._timed:
            self.latency += LATENCY_WEIGHT * (seconds - self.latency)
        else:
            self.latency, self._timed = seconds, True  # the first sample replaces the guess

    def in_flight(self, ceiling: int) -> int:
        """How many requests to keep open at once, at most ``ceiling``: enough to send at
        the current rate while each takes ``latency`` seconds, with headroom for retries
        and jitter."""
        needed = math.ceil(IN_FLIGHT_HEADROOM * self.rate * self.latency) + self.burst
        return max(1, min(ceiling, max(MIN_IN_FLIGHT, needed)))

    def _burst(self) -> int:
        """The burst allowed now: within ``limit``. A burst of b then the rate r put
        b + r - 1 requests in one second, so b is cut to limit - r + 1 (at least 1): at a
        rate at the limit, requests go one at a time."""
        if self.limit is None:
            return self.burst
        return max(1, min(self.burst, math.floor(self.limit - self.rate + 1)))

    def _next_slot(self) -> float:
        """When the next request may go, at the current rate (not booked)."""
        return self._tat - (self._burst() - 1) / self.rate

    def reserve(self) -> float:
        """Book the next slot; return how many seconds until it comes (0 if it is now)."""
        now = self._clock()
        if now - self._tat > max(IDLE, DELIVERY_SAMPLE / self.rate):
            self._delivered.clear()  # idle a while: earlier successes say nothing of the pace
        allowed_at = max(now, self._next_slot())
        self._tat = max(self._tat, now) + 1.0 / self.rate
        return allowed_at - now

    async def acquire(self) -> None:
        """Wait for this caller's slot.

        Callers queue on a lock and each books its slot only when its turn comes, so a
        rate that has grown (or been cut) meanwhile applies at once instead of after a
        schedule booked far ahead at the old rate. A wait longer than ``RECHECK`` is
        taken in steps and measured again after each: in slow start the rate doubles
        within a round trip, and the slot comes sooner than it looked."""
        async with self._turn:
            while self._next_slot() - self._clock() > RECHECK and not self.halted:
                await self._sleep(RECHECK)
            if self.halted:
                return  # nothing is sent now: the caller, seeing why, sends nothing
            delay = self.reserve()
            if delay > 0:
                await self._sleep(delay)

    def halt(self) -> None:
        """Let every caller waiting for a slot go at once (within ``RECHECK``), and every
        later one without waiting: the run is stopping, and callers check that before
        they send. Requests queued behind a slow rate would otherwise hold a gentle stop
        for as long as the queue takes to drain."""
        self.halted = True
