"""Which failures are retried, and how: the one retry layer (tenacity).

aiobotocore clients are built with ``total_max_attempts=1`` (see lightsail.py), so every
retry happens here, where it is counted and bounded. Throttling and transient faults are
retried with full-jitter exponential backoff (a random wait between 0 and
``min(max_delay, base_delay * 2**n)``); after a throttle the pause is short, since the
region's adaptive rate limiter does the pacing. Faults are bounded by ``max_attempts``; throttles
do not use attempts up (being asked to slow down is not a failure of the request), so
they are bounded by the job's ``deadline`` alone, as everything is: a retry whose wait
would end past the deadline is not made. Permanent errors are raised at once.

:func:`guarded` runs one call so; most calls succeed at once, and tenacity's loop costs
more per call than the rest of a job's bookkeeping, so the loop is built only after a
first failure (which it then counts as its first attempt).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from batchcopy.errors import SettingsError, ThrottledError, TransientError
from batchcopy.limits import Clock, RateLimiter, Sleep

__all__ = ["Guard", "RetryPolicy", "guarded", "is_retryable", "paced"]

T = TypeVar("T")

# Runs one call under a caller's policy (retries, limits) and returns what it returned.
Guard = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]

RETRYABLE = (ThrottledError, TransientError)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try one job before calling it failed."""

    max_attempts: int = 10
    base_delay: float = 0.5  # seconds; the first retry waits up to this
    max_delay: float = 20.0  # the cap on one wait
    deadline: float = 900.0  # seconds from a job's first attempt to its last retry

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise SettingsError(
                f"must be at least 1, got {self.max_attempts}", field="max_attempts"
            )
        if not 0 <= self.base_delay < math.inf:
            raise SettingsError(
                f"must be 0 seconds or more, got {self.base_delay}", field="base_delay"
            )
        if not self.base_delay <= self.max_delay < math.inf:
            raise SettingsError(
                f"must be at least base_delay ({self.base_delay}), got {self.max_delay}",
                field="max_delay",
            )
        if not 0 < self.deadline < math.inf:
            raise SettingsError(
                f"must be a finite number of seconds above 0, got {self.deadline:g}",
                field="deadline",
            )


class _backoff(wait_base):
    """Full-jitter exponential backoff after a fault; after a throttle only a short random
    pause, because the region's rate limiter (which a throttle slows) does the pacing."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._full = wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay)
        self._short = min(policy.base_delay, 1.0)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), ThrottledError):
            return random.uniform(0, self._short)
        return float(self._full(retry_state))


class _faults_exceed(stop_base):
    """Stop after ``limit`` failed attempts, not counting throttles."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._faults = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is not None and not isinstance(outcome.exception(), ThrottledError):
            self._faults += 1
        return self._faults >= self._limit


class _past_deadline(stop_base):
    """Stop when the next wait would end past the deadline (on the injected clock)."""

    def __init__(self, seconds: float, clock: Clock, since: float | None) -> None:
        self._clock = clock
        self._give_up_at = (clock() if since is None else since) + seconds

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + (retry_state.upcoming_sleep or 0.0) > self._give_up_at


def is_retryable(exc: BaseException) -> bool:
    """Throttling and transient faults are retried; everything else is not."""
    return isinstance(exc, RETRYABLE)


def _retrying(
    policy: RetryPolicy,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
    since: float | None = None,
) -> AsyncRetrying:
    """A fresh retry loop: ``async for attempt in _retrying(...): with attempt: ...``.

    The deadline counts from ``since`` (on ``clock``; default now). The last error is
    re-raised as it is once the attempts or the deadline run out.
    """
    return AsyncRetrying(
        retry=retry_if_exception_type(RETRYABLE),
        wait=_backoff(policy),
        stop=_faults_exceed(policy.max_attempts) | _past_deadline(policy.deadline, clock, since),
        sleep=sleep,
        reraise=True,
    )


async def guarded(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
) -> T:
    """``await call()`` under ``policy``: retried on throttles and transient faults; the
    last error is raised once the attempts or the deadline run out.

    The first try goes without the retry loop. If it fails, the loop starts with that
    failure as its first attempt (re-raised, not sent again), so waits, attempts and the
    deadline count exactly as if the loop had run from the start."""
    since = clock()
    try:
        return await call()
    except RETRYABLE as exc:
        failed: list[BaseException] = [exc]
    async for attempt in _retrying(policy, clock=clock, sleep=sleep, since=since):
        with attempt:
            if failed:
                raise failed.pop()
            return await call()
    raise AssertionError("the retry loop ends by returning or raising")  # pragma: no cover


async def paced(
    budget: RateLimiter,
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
) -> T:
    """``await call()`` on ``budget`` (each try waits its turn) under ``policy``. Each
    answer tells an adaptive budget how it went: a throttle slows it, so a budget set
    above what the service allows settles at its limit instead of drawing throttles for
    the whole run."""

    async def once() -> T:
        await budget.acquire()
        try:
            answer = await call()
        except ThrottledError:
            budget.throttled()
            raise
        budget.succeeded()
        return answer

    return await guarded(once, policy, clock=clock, sleep=sleep)
