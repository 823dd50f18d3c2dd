"""The per-region rate limiter, on a fake clock: bursts, steady rate, fairness."""

from __future__ import annotations

import anyio
import pytest

from batchcopy.errors import SettingsError
from batchcopy.limits import RateLimiter


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
