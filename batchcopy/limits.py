"""Per-region request rate: a token bucket that callers wait on.

The bucket is kept as a reservation schedule (GCRA): each ``acquire`` books the next free
slot at once and then sleeps until it comes, so concurrent callers are served in order
without polling, and a burst of ``burst`` requests passes with no wait. Time is injected
(``clock`` and ``sleep``) so tests run on a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from batchcopy.errors import SettingsError

__all__ = ["Clock", "RateLimiter", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most ``rate`` acquisitions a second on average, with bursts of up to ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not rate > 0:
            raise SettingsError(f"rate must be above 0 requests per second, got {rate}")
        if burst < 1:
            raise SettingsError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next request
        self.waited = 0.0  # total seconds callers spent waiting, for reports

    def __repr__(self) -> str:
        ahead = max(0.0, self._tat - self._clock())
        return f"<RateLimiter rate={self.rate:g}/s burst={self.burst} booked_ahead={ahead:.3f}s>"

    def reserve(self) -> float:
        """Book the next slot; return how many seconds until it comes (0 if it is now)."""
        now = self._clock()
        interval = 1.0 / self.rate
        allowed_at = max(now, self._tat - (self.burst - 1) * interval)
        self._tat = max(self._tat, now) + interval
        return allowed_at - now

    async def acquire(self) -> None:
        """Wait for this caller's slot."""
        delay = self.reserve()
        if delay > 0:
            self.waited += delay
            await self._sleep(delay)
