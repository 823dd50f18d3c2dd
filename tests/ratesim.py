"""A deterministic simulation of batchcopy's adaptive rate against a throttling service.

Nothing here really waits: the run happens on an asyncio event loop whose clock is virtual
(a wait for a timer moves the clock to it at once), so minutes of traffic take well under a
second, and the same seed gives the same figures. The real :class:`RateLimiter` is what is
simulated, through its clock and sleep injection; around it sits what the engine does with
it, per region (``engine.py``'s ``_run_lane``, ``_attempt`` and ``retry.py``'s ``_backoff``):

- a start from what an earlier run learned, as the engine makes it (``KNOWN_START`` of the
  limit, with ``known_limit`` and ``known_burst``), when the scenario has it (``known``:
  each region's, as :attr:`Outcome.learned` gives them);
- an in-flight cap from ``limiter.in_flight(max_in_flight)``, refitted as each job ends;
- each try: ``acquire()``, then a one-way latency, then the service's token bucket decides
  at the request's ARRIVAL, then the answer takes the return latency; ``timed()`` gets the
  round trip; a throttle calls ``throttled()`` and retries after a random pause of up to
  ``min(base_delay, 1)`` seconds; a success calls ``succeeded()``.

The service: a token bucket per region (``limit`` tokens a second up to ``burst``, starting
full, or down to one token where another client has just spent it: ``drained``), as the
emulator's; or one for all regions (``shared``: runs that share an account's limit, one lane
each). Latencies are ``rtt / 2`` each way, each drawn uniformly within ``jitter`` (a
fraction: 0.5 is +/- 50%) of that.

A test helper and the engine of ``benchmarks/ratesim_matrix.py``; it prints nothing.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from dataclasses import dataclass
from typing import Any

import anyio

from batchcopy.engine import KNOWN_START
from batchcopy.limits import RateLimiter

__all__ = ["Outcome", "Scenario", "simulate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One service and one run: per-region limits, the network, the jobs, the start rate."""

    limit: float  # the service's requests/s per region
    burst: float  # its bucket size
    rtt: float = 0.05  # seconds, round trip (half each way)
    jitter: float = 0.5  # each way: uniform within +/- this fraction of rtt / 2
    jobs: int = 500  # per region
    regions: int = 1
    rate: float = 5.0  # --rate: where the limiter starts
    client_burst: int = 5  # --burst
    max_rate: float = 10_000.0  # --max-rate
    adaptive: bool = True  # --no-adaptive: the rate stays at ``rate``
    max_in_flight: int = 128  # --max-in-flight
    base_delay: float = 0.5  # the retry policy's: a throttle pauses up to min(this, 1) s
    # Per region, (limit, burst) remembered from an earlier run (the rate state), or None
    # where it found no limit: a second run.
    known: tuple[tuple[float, int] | None, ...] = ()
    seed: int = 1
    drained: bool = False  # the service's bucket starts with one token: another client spent it
    shared: bool = False  # the regions draw on one bucket: runs sharing an account's limit

    @property
    def ideal(self) -> float:
        """Seconds the service's buckets allow at best: they start full, then refill."""
        return max(0.0, self.jobs - self.burst) / self.limit

    @property
    def arrival_spread(self) -> float:
        """Seconds between the earliest and latest arrival of a request sent at one time."""
        return self.rtt * self.jitter


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a simulated run came to."""

    wall: float  # seconds from the start to the last job's answer
    requests: int  # all requests sent, throttled ones included
    throttled: int
    jobs: int  # in all regions
    ideal: float
    rates: tuple[float, ...]  # each region's rate at the end
    # Per region, in order: what a next run starts from, (limit, burst), if a limit was found.
    learned: tuple[tuple[float, int] | None, ...] = ()

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal if self.ideal else float("inf")

    @property
    def per_job(self) -> float:
        return self.requests / self.jobs


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking for ``timeout``, moves the loop's clock on."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.now += timeout
        elif not ready and timeout is None:
            raise RuntimeError("the simulation is stuck: nothing is scheduled")
        return ready


class _VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: idle waits take no real time."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._virtual.now


class _Bucket:
    """The service's token bucket (as the emulator's ``TokenBucket``), on the loop's clock."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


async def _region(
    s: Scenario, index: int, bucket: _Bucket, rng: random.Random, counts: list[int]
) -> tuple[float, RateLimiter]:
    """One lane against one bucket; returns (time of the last answer, its limiter)."""
    loop = asyncio.get_running_loop()
    known_limit, known_burst = (s.known[index] if s.known else None) or (None, 1)
    limiter = RateLimiter(
        s.rate if known_limit is None else KNOWN_START * known_limit,
        s.client_burst,
        max_rate=s.max_rate if s.adaptive else None,
        limit=s.max_rate,
        known_limit=known_limit,
        known_burst=known_burst,
        clock=loop.time,
        sleep=asyncio.sleep,
    )
    slots = anyio.CapacityLimiter(limiter.in_flight(s.max_in_flight))
    last = 0.0

    def one_way() -> float:
        return s.rtt / 2 * rng.uniform(1 - s.jitter, 1 + s.jitter)

    async def job(slot: object) -> None:
        nonlocal last
        try:
            while True:
                await limiter.acquire()
                sent = loop.time()
                counts[0] += 1
                await asyncio.sleep(one_way())
                admitted = bucket.take(loop.time())
                await asyncio.sleep(one_way())
                limiter.timed(loop.time() - sent)
                if admitted:
                    limiter.succeeded()
                    last = max(last, loop.time())
                    return
                counts[1] += 1
                limiter.throttled()
                await asyncio.sleep(rng.uniform(0, min(s.base_delay, 1.0)))
        finally:
            slots.total_tokens = limiter.in_flight(s.max_in_flight)
            slots.release_on_behalf_of(slot)

    async with anyio.create_task_group() as tg:
        for _ in range(s.jobs):
            slot = object()
            await slots.acquire_on_behalf_of(slot)
            tg.start_soon(job, slot)
    return last, limiter


def simulate(scenario: Scenario) -> Outcome:
    """Run ``scenario`` on virtual time; the same scenario (seed included) gives the same
    outcome."""
    rng = random.Random(scenario.seed)
    counts = [0, 0]  # requests, throttled

    async def run() -> list[tuple[float, RateLimiter]]:
        ends: dict[int, tuple[float, RateLimiter]] = {}

        def bucket() -> _Bucket:
            made = _Bucket(scenario.limit, scenario.burst, asyncio.get_running_loop().time())
            if scenario.drained:
                made.tokens = 1.0
            return made

        shared = bucket() if scenario.shared else None

        async def lane(index: int, seed: int) -> None:
            mine = shared or bucket()
            ends[index] = await _region(scenario, index, mine, random.Random(seed), counts)

        async with anyio.create_task_group() as tg:
            for index in range(scenario.regions):
                tg.start_soon(lane, index, rng.randrange(2**32))
        return [ends[index] for index in range(scenario.regions)]

    with asyncio.Runner(loop_factory=_VirtualLoop) as runner:
        ends = runner.run(run())
    return Outcome(
        wall=max(end for end, _ in ends),
        requests=counts[0],
        throttled=counts[1],
        jobs=scenario.jobs * scenario.regions,
        ideal=scenario.ideal,
        rates=tuple(sorted(limiter.rate for _, limiter in ends)),
        learned=tuple(_learned(limiter) for _, limiter in ends),
    )


def _learned(limiter: RateLimiter) -> tuple[float, int] | None:
    """What a next run starts from, (limit, burst), as the engine has it; None if no limit
    was found (a next run slow-starts)."""
    learned = limiter.learned()
    if learned is None or not learned[1]:
        return None
    return (learned[0], limiter.bucket())
