"""Per-region request rate: a token bucket that callers wait on, and that can adapt.

The bucket is kept as a reservation schedule (GCRA): each ``acquire`` books the next free
slot at once and then sleeps until it comes, so concurrent callers are served in order
without polling, and a burst of ``burst`` requests passes with no wait. Time is injected
(``clock`` and ``sleep``) so tests run on a fake clock.

Lightsail publishes no rate limit, so the rate adapts (as botocore's adaptive mode does):
until the first throttle it grows fast (each success adds ``SLOW_START_STEP`` requests/s:
the rate about triples every second); a throttle cuts it by ``CUT`` (at most once per
``CUT_SPACING`` seconds, as throttles of requests already sent say nothing new); after
that it grows by ``PROBE`` requests/s each second while calls succeed. It never goes above
``max_rate`` nor below ``min_rate``.

The limiter also keeps a moving average of how long a request takes, and from it the
number of requests worth having open at once: what the current rate needs over that
latency (Little's law), with headroom, so the in-flight cap grows and shrinks with the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio

from batchcopy.errors import SettingsError

__all__ = ["Clock", "RateLimiter", "Sleep"]

SLOW_START_STEP = 2.0  # requests/s added per success until the first throttle
# Chosen by simulating a service that throttles at 5 and 20 requests/s (a bucket of 2) from
# starts 4x too low and too high, 500 calls each: 1.004x, 0.997x, 1.021x and 1.004x of the
# ideal time.
CUT = 0.85  # the rate is multiplied by this on a throttle
CUT_SPACING = 0.5  # seconds: throttles closer together than this count as one
PROBE = 2.0  # requests/s added per second of success after a throttle
FIRST_LATENCY = 0.25  # seconds a request is taken to last until one has been timed
LATENCY_WEIGHT = 0.2  # weight of the newest sample in the latency's moving average
IN_FLIGHT_HEADROOM = 2.0  # open requests: this many times rate x latency, plus the burst

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
        min_rate: float = 0.1,
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
        self.min_rate = min(min_rate, rate)
        self.throttles = 0
        self.latency = FIRST_LATENCY  # moving average of request round trips, seconds
        self._slow_start = True
        self._last_cut = -float("inf")
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next request
        self._turn = anyio.Lock()
        self.waited = 0.0  # total seconds callers spent waiting, for reports

    def __repr__(self) -> str:
        ahead = max(0.0, self._tat - self._clock())
        return (
            f"<RateLimiter rate={self.rate:.3g}/s max={self.max_rate} burst={self.burst} "
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
        self._slow_start = False
        if now - self._last_cut < CUT_SPACING:
            return
        self._last_cut = now
        self.rate = max(self.min_rate, self.rate * CUT)

    def succeeded(self) -> None:
        """A call went through: probe upward."""
        if self.max_rate is None:
            return
        step = SLOW_START_STEP if self._slow_start else PROBE / self.rate
        self.rate = min(self.max_rate, self.rate + step)

    def timed(self, seconds: float) -> None:
        """One request took ``seconds`` from send to answer."""
        self.latency += LATENCY_WEIGHT * (seconds - self.latency)

    def in_flight(self, ceiling: int) -> int:
        """How many requests to keep open at once, at most ``ceiling``: enough to send at
        the current rate while each takes ``latency`` seconds, with headroom for retries
        and jitter."""
        needed = math.ceil(IN_FLIGHT_HEADROOM * self.rate * self.latency) + self.burst
        return max(1, min(ceiling, needed))

    def reserve(self) -> float:
        """Book the next slot; return how many seconds until it comes (0 if it is now)."""
        now = self._clock()
        interval = 1.0 / self.rate
        allowed_at = max(now, self._tat - (self.burst - 1) * interval)
        self._tat = max(self._tat, now) + interval
        return allowed_at - now

    async def acquire(self) -> None:
        """Wait for this caller's slot.

        Callers queue on a lock and each books its slot only when its turn comes, so a
        rate that has grown (or been cut) meanwhile applies at once instead of after a
        schedule booked far ahead at the old rate."""
        async with self._turn:
            delay = self.reserve()
            if delay > 0:
                self.waited += delay
                await self._sleep(delay)
