"""Per-region request rate: a token bucket that callers wait on, and that can adapt.

The bucket is kept as a reservation schedule (GCRA): each ``acquire`` books the next free
slot at once and then sleeps until it comes, so concurrent callers are served in order
without polling, and a burst of ``burst`` requests passes with no wait. Time is injected
(``clock`` and ``sleep``) so tests run on a fake clock.

Lightsail publishes no rate limit, so the rate adapts. What a throttle says: the service's
bucket was empty when that request ARRIVED. Between two throttles, then, what got through
is what the bucket refilled: successes / seconds is the service's rate (BBR's
delivery-rate estimate), when the rate was above it all along; less, when the rate was
below it a while and the bucket overflowed.

- **Slow start.** Until the first throttle the rate doubles every ``DOUBLING`` seconds (or
  round trip, if longer) while answers come, and requests go one at a time: a bucket of
  one would throttle a burst. A bucket that starts full hides the service's rate until it
  runs dry, so the first throttle may come far above it: the rate drops to a quarter,
  then climbs back as in slow start to ``REGROW`` of the rate it came at (TCP's
  ssthresh), then probes.
- **A throttle** (once per ``CUT_SPACING`` seconds or two round trips: throttles of
  requests sent before a cut say nothing new, nor do successes within a round trip of
  it) sets the rate to ``1 - MARGIN`` of what got through since the last one, and the
  plateau, where the probing slows down, to what got through (or the rate the throttle
  came at, if lower). After few successes the count is coarse (one success either way),
  and the rate climbs back to its upper end as in slow start; the spans from earlier
  throttles to this one bound that end too (what got through over a long span measures
  the rate finely, unless the bucket overflowed in it: where the rate climbed through a
  span from well below what got through, that end is halfway, in ratio, to the rate the
  throttle came at). Idle spells (nothing to send) are
  left out of the time.
- **A limit found.** A throttle after ``SETTLED`` quiet successes, with what got through
  at least ``NEAR`` of the rate, ends a slow climb to the limit: the rate it came at is
  the limit (a bucket of one overflows below its rate, so what got through undercounts
  it). The plateau goes ``MARGIN / 2`` under it and the rate ``2 MARGIN``, so the
  bucket refills a token or two before the rate closes on the plateau; it is held there
  ``HOLD`` successes before probing past it again (TCP CUBIC's plateau near the last
  loss): once the limit is found, a throttle per 75-130 successes at 5-50 requests/s
  with 80 ms round trips (simulated; ``tests/test_rate_sim.py``).
- **A bucket of one.** Slow start's requests go one at a time, so a bucket of two or more
  lets its second through: if that one is throttled, the bucket holds one token. Such a
  bucket overflows whenever the rate is under the limit, and what got through then
  measures the sender, not the service. The spacing of arrivals does measure it (each
  estimated as half its round trip before its answer): a success says the limit is at
  least 1 / its spacing from the success before it, a throttle that it is under that.
  While the two leave the limit open, the rate goes to their geometric middle, and on as
  successes close the gap; where they meet, a throttle is a limit found, as above, paced
  ``ONE_MARGIN`` under the plateau (no bucket to wait for), and that is what the run
  leaves the next one; a run that starts from a remembered burst of one rules it as one.
  Two successes closer together than a throttle came after one (by more than the
  estimates stray) end the rule for the run: a larger bucket another client had drained,
  another client sharing it, or a limit that rose. The rule needs each request's round
  trip: a budget whose tries are not timed is ruled as other buckets.
- **Between throttles** the rate closes ``APPROACH`` of the gap to the plateau per
  success, then probes past it by ``PROBE`` of it per success, doubling that every
  ``ESCAPE`` successes without a throttle: quiet near the limit, and a limit that rose is
  found again. A plateau measured coarsely (not a limit found) may be well below the
  limit: it is probed ``QUICK`` times as fast, doubling also every ``ESCAPE_SECONDS /
  QUICK`` seconds. A throttle is paced in successes, not seconds, so at 1 request/s it
  costs as few requests as at 50.

Requests are paced on the sender's clock and a cut applies at once: a caller waiting for a
slot booked at the old rate waits again for one at the new. Where a service has no burst
(a bucket of 1), or a bucket smaller than the arrival jitter, no sender can pace so that
every request arrives after the previous one's token refilled: there the rule sits a little
below the limit, trading time for requests (``benchmarks/ratesim_matrix.py`` prints both,
beside the best a sender that knew the limit could do). The rate never goes above
``max_rate`` nor below ``min_rate``, and no second sees more than ``limit`` requests (by
default ``max_rate``): the burst shrinks as the rate nears it. Once throttled, requests are
paced evenly (the burst drops to 1).

A limit an earlier run found (``known_limit``, see :mod:`batchcopy.ratestate`) is taken as
the plateau from the start: no slow start, closing on ``1 - KNOWN_MARGIN`` of it (until
the first throttle), and probing past it only after ``KNOWN_HOLD`` successes (a
remembered limit is likely still the limit, and each probe that finds it costs a
throttle; but fewer than ``HOLD``, as what a run leaves may be a little off either way),
then as past a coarse measure, until a throttle confirms it: a limit that rose since
(another client stopped sharing the account's bucket) is passed within a run of a few
hundred requests. A remembered bucket errs low, so after its burst the service's may still
hold tokens (dozens, in a bucket of hundreds), on which the rate climbs past the limit: a
run that ends ``ROSE`` past it unthrottled takes the limit to have risen, and a throttle
that comes on such tokens is taken for a limit found where it came, as any. Both cost the
next run a few throttles; waiting for proof of a rise (more getting through than the
limit and a full bucket allow) held lanes too short to give it at the old limit every
night.
:meth:`RateLimiter.learned` is what a run leaves the next one: the limit, within what the
spans since its throttles allow, so a probe that overshot does not pass for it. With it
comes the service's bucket as that run measured it (``known_burst``): a bucket that starts
full lets that many requests through at once, and the lane spends them at its start, as
the service allows, instead of pacing them out (no more than ``KNOWN_BURST_SECONDS`` of
the limit: a larger one is no measure a run leaves). Their successes came from the
service's store, not its refill: they do not count as probing past the limit, and what
gets through is measured from the burst's end (a throttle that ends it early, the bucket
holding less than remembered, is no cut). The first throttle of a run that spends a full
bucket (in slow start, or within a known burst) measures it: what got through up to
then, less what the bucket refilled meanwhile at the rate found. Requests sent in the
round trip before the throttle's answer are not counted, so it errs low, except after a
run too short to find the limit well: a learned rate well below the limit undercounts the
refill, and the bucket comes out a token or two high, which costs the next run a
throttle or two at its start (the burst then ends, with no wait to repay it).

The limiter also keeps a moving average of how long a request takes, and from it the
number of requests worth having open at once: what the current rate needs over that
latency (Little's law), with headroom, so the in-flight cap grows and shrinks with the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import anyio

from batchcopy.errors import SettingsError

__all__ = ["Clock", "RateLimiter", "Sleep"]

# Chosen with benchmarks/ratesim_matrix.py (limits 1-50 req/s, buckets 1 to 5x the limit,
# round trips 20-200 ms +/- 50%, runs of 15 s to 3 min from the default --rate), then
# checked against the emulator (benchmarks/throttle_matrix.py).
REGROW = 0.75  # after the first throttle: back to this share of where it came, as in slow start
SETTLED = 20  # successes between two throttles that make a long quiet climb
NEAR = 0.8  # ... if what got through over it was at least this share of the rate
MARGIN = 0.03  # pace this far below the service's measured rate
ONE_MARGIN = 0.015  # ... or below a limit found in a bucket of one (no refill to wait for)
KNOWN_MARGIN = 0.01  # ... or below a limit an earlier run found, until the first throttle
APPROACH = 0.5  # per success: the share of the gap to the plateau closed
DOUBLING = 0.4  # seconds: slow start doubles the rate at most this often
ESCAPE = 80  # successes past the plateau without a throttle after which the probe doubles
ESCAPE_SECONDS = 30.0  # ... or seconds, if fewer, past a plateau measured coarsely
HOLD = 80  # successes a limit just found is held before probing past it
KNOWN_HOLD = 25  # ... or a limit remembered from an earlier run (it may be a little off)
KNOWN_BURST_SECONDS = 60.0  # a remembered bucket is spent up to this many seconds' refill
# Seconds (or two round trips, if longer) within which throttles count as one. Shorter cut
# too often at low rates: the demo (1.5 req/s in one region) took 10.1 s at 0.05, 6.8 at 0.25.
CUT_SPACING = 0.25
PROBE = 0.001  # past the plateau: this share of the plateau added per success, at first
QUICK = 2.0  # ... this many times that, and its doubling this many times as often, where the
# plateau is a coarse measure (not a limit found at a throttle after a quiet climb)
IDLE = 1.0  # no request this long (or ten at the rate): idle, not measured as the service's
FIRST_LATENCY = 0.25  # seconds a request is taken to last until one has been timed
LATENCY_WEIGHT = 0.2  # weight of the newest sample in the latency's moving average
IN_FLIGHT_HEADROOM = 2.0  # open requests: this many times rate x latency, plus the burst
MIN_IN_FLIGHT = 16  # a job keeps its slot through retry pauses: never fewer (but the ceiling)
ROSE = 0.10  # past a remembered limit by this share, unthrottled: it rose
# A span that began at a rate under this share of what got through in it (the rate climbed
# through it from below) may have overflowed the bucket: it bounds the limit from below only.
CLIMBED = 0.8
SPANS = 16  # earlier throttles whose spans bound the limit
RECHECK = 0.05  # seconds: a longer wait for a slot is measured again this often

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class _Cut(NamedTuple):
    """A throttle that cut the rate."""

    at: float  # when
    successes: int  # successes before it
    idle: float  # seconds with nothing to send before it
    rate: float  # the rate it set

    def climbed_past(self, bound: float) -> bool:
        """Whether the span since this cut began well under ``bound`` (the rate only rises
        within a span): climbing from there, the sender may have let the bucket overflow."""
        return self.rate < CLIMBED * bound


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
        known_burst: int = 1,
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
        self._last_cut = -math.inf  # what gets through is measured from here
        self._cut_count = 0  # cuts so far (a caller waiting for a slot sees one come)
        self._cut_successes = 0  # successes before the last cut
        self._idle = 0.0  # seconds with nothing to send, since the first request
        self._cut_idle = 0.0  # ... before the last cut
        self._cuts: list[_Cut] = []  # the last SPANS cuts
        self._upper = math.inf  # the limit is below this, as of the last cut
        self._margin = MARGIN  # paced this far below the plateau
        self._found = False  # the plateau is a limit this run found, not a guess or a memory
        self._successes = 0
        self._plateau = rate
        self._above = 0  # successes since the rate last rose past the plateau
        self._above_since = clock()
        self._grown_at = clock()  # when slow start last raised the rate
        self._regrow_to = 0.0  # after the first throttle: back to this rate as in slow start
        self._first_sent: float | None = None  # when the first request was booked
        # The only cut was slow start's: the plateau is a guess (a quarter of where the
        # throttle came), not a measure of the limit.
        self._guessed = False
        self._spending = True  # the bucket the service started with is being spent
        # At the throttle that ended that: successes, and seconds since the first request.
        self._drained: tuple[int, float] | None = None
        self._known_burst = 1  # the remembered bucket spent at the start
        self._remembered_burst = 1  # ... and as remembered, if more
        self._hold = 0  # successes left before probing past the plateau
        self._sample = FIRST_LATENCY  # the last request's round trip
        self._ok_at = -math.inf  # when the latest success reached the service (estimated)
        self._one = False  # the service's bucket holds one token (see _burst_spent)
        # Where a bucket holds one token: the limit is at least the fastest two successes
        # in a row came (1 / their spacing), and under the slowest a throttle came after
        # the success before it.
        self._low = 0.0
        self._high = math.inf
        self._wobble = 0.0  # moving average of how far a round trip strays from the average
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()  # theoretical arrival time of the next request
        self._turn = anyio.Lock(fast_acquire=True)  # no yield when nobody queues
        self.halted = False  # see halt()
        if known_limit is not None and self.adaptive:
            # Learned by an earlier run: no slow start, paced evenly, closing on it as after
            # a throttle there.
            self._slow_start = False
            self._plateau = max(known_limit, self.min_rate)
            # A bucket of one, unless the earlier run measured more (its successes and
            # throttles tell, see _doubt_one): no slow start here to show it.
            self._one = known_burst <= 1
            self._remembered_burst = max(1, known_burst)
            # A bucket larger than a minute at the limit is no measure a run leaves (a
            # damaged or hand-made state file): each token past the real bucket costs a
            # throttle, up to the requests in flight.
            known_burst = min(known_burst, math.ceil(KNOWN_BURST_SECONDS * self._plateau))
            self.burst = self._known_burst = max(1, known_burst)
            self._spending = self.burst > 1
            self._hold = KNOWN_HOLD
            self._margin = KNOWN_MARGIN
            self._last_cut = clock()  # what gets through is measured from the start

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
        """The service said slow down: cut the rate to what got through (once per
        ``CUT_SPACING`` seconds)."""
        self.throttles += 1
        if not self.adaptive:
            return
        if not self._timed:
            # The spacing of arrivals needs round trips: a budget whose tries are not
            # timed (AssumeRole's) is not ruled by it.
            self._one = False
        now = self._clock()
        if self._spending or self.burst > 1:
            self._burst_spent(now)
        gap = self._arrived(now) - self._ok_at
        if 0 < gap < math.inf:
            self._high = min(self._high, 1 / gap)
            self._doubt_one()
        # Throttles of requests sent before the last cut come back within a round trip.
        if now - self._last_cut < max(CUT_SPACING, 2 * self.latency):
            return
        self._margin = MARGIN
        self._hold = 0
        self._found = False
        if self._slow_start:
            # The first throttle: the service's bucket ran dry, maybe only now after a
            # burst that hid its rate. Far below, then probing up.
            self._regrow_to = self.rate * REGROW
            self._grown_at = now
            self._set_rate(max(self.min_rate, self.rate / 4))
            self._plateau = self.rate
            self._slow_start = False
            self._guessed = True
        else:
            self._guessed = False
            # What got through since the last cut is what the bucket refilled (or less,
            # if the rate was below the limit a while): the service's rate, give or take.
            got, busy = self._since_cut(now)
            _, self._upper = self._span_bounds(now)
            busy = max(busy, 1e-3)
            rate = got / busy if got else self.rate / 2
            self._regrow_to = 0.0
            if self._one:
                # A bucket of one keeps nothing back: whatever came before, this request
                # came under a token's time after the success before it. (Never under
                # what got through since the last cut: half the rate, if nothing did.)
                self._high = min(self._high, self.rate)
                between = self._between()
                at = max(self._high, rate)
                self._margin = 0.0
                if between is not None:
                    # Successes and throttles leave the limit open between two rates:
                    # halfway (in ratio) there, and on as successes close the gap.
                    plateau = again = max(between, rate)
                else:
                    # Under where the throttle came, after a dip. If two successes in a row
                    # have come, the bounds meet: a limit found, held there; if not, the
                    # bounds stay open until they come.
                    plateau = at * (1 - MARGIN / 2)
                    again = at * (1 - 2 * MARGIN)
                    if self._low:
                        self._hold = HOLD
                        self._found = True
                        self._margin = ONE_MARGIN
            elif got >= SETTLED and rate >= NEAR * self.rate:
                # A long quiet climb, and what got through kept up with the rate (a bucket
                # of one overflows below its rate, so it undercounts): the rate the
                # throttle came at is the limit. Held just under it a while, after a dip
                # that refills the bucket.
                plateau = self.rate * (1 - MARGIN / 2)
                again = self.rate * (1 - 2 * MARGIN)
                self._hold = HOLD
                self._found = True
            else:
                # Few successes measure the rate coarsely: it may be up to one more a
                # span above, or as much as the spans since earlier throttles allow
                # (:meth:`_span_bounds`). Back there as in slow start, then probing.
                plateau = min(self.rate, rate)
                again = plateau * (1 - MARGIN)
                ceiling = (got + 1) / busy
                if self._cuts and self._cuts[-1].climbed_past(ceiling):
                    # Climbed from well below: the bucket overflowed on the way, so what got
                    # through undercounts. The limit lies between it and where this came.
                    ceiling = math.sqrt(ceiling * self.rate)
                self._regrow_to = min(self.rate, ceiling, self._upper) * (1 - MARGIN)
                self._grown_at = now
            self._plateau = max(self.min_rate, plateau)
            self._set_rate(max(self.min_rate, again))
        self._measure_from(now)
        self._cut_count += 1
        self._cuts = [
            *self._cuts[-(SPANS - 1) :],
            _Cut(now, self._successes, self._idle, self.rate),
        ]
        self._above = 0

    def _burst_spent(self, now: float) -> None:
        """The service's bucket ran dry: requests go one at a time from now on (a burst
        would only be throttled), and one spent goes on from its last request, not repaid
        by a wait. If it was the bucket the service started with, what got through so far
        measures it (see :meth:`bucket`). A known burst the service held less of than
        remembered ends here, with no cut: what gets through is measured from now."""
        if self._spending and not self._slow_start:
            self._measure_from(now)
        if self._spending and self._first_sent is not None:
            self._drained = (self._successes, max(0.0, now - self.latency - self._first_sent))
            # In slow start, one at a time: a bucket of two or more lets the second through.
            self._one = self._slow_start and self._successes == 1
        self._spending = False
        self._tat -= (self._burst() - 1) / self.rate
        self.burst = 1

    def learned(self) -> tuple[float, bool] | None:
        """What a next run can start from (see :meth:`_learned`), never above
        ``max_rate``: a plateau set where a bucket of one let more through than that is
        no limit the next run may start at. A run held under a remembered limit by
        ``max_rate`` and never throttled learned nothing of it: None, so the next run
        starts from the earlier one's."""
        found = self._learned()
        if found is None or self.max_rate is None or found[0] <= self.max_rate:
            return found
        if not self.throttles:
            return None
        return self.max_rate, found[1]

    def _learned(self) -> tuple[float, bool] | None:
        """What a next run can start from: the rate reached and whether it is the limit (a
        throttle came at it, in this run or the one ``known_limit`` came from), then what
        got through: at the last throttle, or since, if more. Not the rate itself, which
        may be probing past the limit when the run ends; but a run that probed ``ROSE``
        past a known limit with no throttle leaves the rate it reached, as not a limit, and
        one throttled only by slow start leaves a floor, as not a limit either. None if
        nothing was learned: a fixed rate, or no request answered."""
        if not self.adaptive or not (self._successes or self.throttles):
            return None
        if self._slow_start:
            # Never throttled: a floor, no more than what got through. The rate doubles
            # with every answer, whether or not there were requests to send at it.
            return max(self.min_rate, min(self.rate, self._throughput())), False
        if not self.throttles and self.rate > self._plateau * (1 + ROSE):
            # Probed well past a remembered limit without a throttle: the limit rose. The
            # next run slow-starts from the rate reached, to find it in seconds, not by
            # this run's probing a night at a time. (Or the bucket kept back tokens beyond
            # the remembered burst, which errs low: see the module's docstring.)
            return self.rate, False
        now = self._clock()
        got, busy = self._since_cut(now)
        if self._guessed:
            # Throttled only where slow start outran a bucket that hid the limit: no
            # measure of it, only a floor for the next run to slow-start from: what got
            # through since (the bucket the service started with left out), and no more
            # than a quarter of where the throttle came.
            return max(
                self.min_rate, min(self._cuts[-1].rate, got / busy if busy > 0 else 0)
            ), False
        if self._one and self._cuts:
            # A bucket of one overflows whenever the rate is under the limit: what got
            # through over a span measures the sender, not the service.
            return max(self.min_rate, self._plateau), True
        since = min(self.rate, got / busy) if got >= SETTLED and busy > 0 else 0.0
        # Within what the spans since this run's throttles say of the limit.
        lower = min(self.rate, self._span_bounds(now)[0])
        limit = min(max(self._plateau, since, lower), max(self._upper, lower))
        return max(self.min_rate, limit), True

    def _throughput(self) -> float:
        """Successes a second since the first request, idle spells left out."""
        if self._first_sent is None:
            return 0.0
        got, busy = self._since(self._clock(), self._first_sent, 0, 0.0)
        return got / busy if busy > 0 else self.rate

    def bucket(self) -> int:
        """The service's burst as this run measured it, for a next run that starts from
        :meth:`learned`: what got through before the bucket first ran dry, less what it
        refilled meanwhile at the learned limit; or the known burst, if spent without a
        throttle (as remembered: a cap on what is spent says nothing of it); 1 if unknown."""
        if self._drained is None:
            return self._remembered_burst
        learned = self.learned()
        if learned is None or not learned[1]:
            return 1
        got, seconds = self._drained
        return max(1, math.floor(got - learned[0] * seconds))

    def _arrived(self, now: float) -> float:
        """When the request answered now reached the service: half its round trip ago."""
        return now - self._sample / 2

    def _doubt_one(self) -> None:
        """Two successes in a row came closer than a throttle came after one, by more than
        the estimates stray (``MARGIN`` of the spacing, and twice the round trips'
        wobble): the bucket let two through (it holds more than one, or the limit rose),
        or another client takes its tokens. Ruled as other buckets from now on."""
        closest, slowest = (1 + MARGIN) / self._low if self._low else math.inf, 1 / self._high
        if self._one and closest < slowest - 2 * self._wobble:
            self._one = False

    def _between(self) -> float | None:
        """Where a bucket holds one token, and the limit is still open between the
        fastest pair of successes and the slowest throttle: the geometric middle of the
        two (a success there raises the one, a throttle lowers the other). None
        otherwise."""
        if self._one and 0 < self._low * (1 + 2 * MARGIN) < self._high < math.inf:
            return math.sqrt(self._low * self._high)
        return None

    def _span_bounds(self, now: float) -> tuple[float, float]:
        """What the spans from each of the last cuts to now say of the service's rate:
        (above, below). A throttle says the bucket held under a token; so, of a span
        between two throttles with ``got`` successes, the bucket refilled more than
        got - 1 tokens, and (unless it overflowed while the rate was below its refill)
        fewer than got + 1. The lower bound holds at any time; the upper, when ``now`` is
        a throttle, and the rate the span began at (it only rose within it) was at least
        ``CLIMBED`` of that bound: one that climbed from well below may have let the bucket
        overflow. A long span narrows what one short one leaves coarse."""
        lower, upper = 0.0, math.inf
        for cut in self._cuts:
            got, span = self._since(now, cut.at, cut.successes, cut.idle)
            if span <= 0:
                continue
            lower = max(lower, (got - 1) / span)
            if not cut.climbed_past((got + 1) / span):
                upper = min(upper, (got + 1) / span)
        return lower, upper

    def _measure_from(self, now: float) -> None:
        """What gets through is counted from now (a cut, or the end of a known burst)."""
        self._last_cut = now
        self._cut_successes = self._successes
        self._cut_idle = self._idle

    def _since_cut(self, now: float) -> tuple[int, float]:
        """Successes since the last cut, and the seconds there was something to send."""
        return self._since(now, self._last_cut, self._cut_successes, self._cut_idle)

    def _since(self, now: float, at: float, successes: int, idle: float) -> tuple[int, float]:
        """Successes since ``at`` (when there had been ``successes``, and ``idle`` seconds
        with nothing to send), and the seconds since then there was something to send."""
        return self._successes - successes, now - at - (self._idle - idle)

    def succeeded(self) -> None:
        """A call went through: probe upward."""
        if self.max_rate is None:
            return
        now = self._clock()
        self._successes += 1
        arrived = self._arrived(now)
        if arrived > self._ok_at:
            self._low = max(self._low, 1 / (arrived - self._ok_at))
            self._ok_at = arrived
            self._doubt_one()
            between = self._between()
            if between is not None and self._cuts:
                self._plateau = between
        if self._spending and not self._slow_start:
            # A known burst going through: the service had it in store, so it says nothing
            # of the rate, and is not counted as probing past the plateau; what gets
            # through is measured from its end.
            self._spending = self._successes < self._known_burst
            if not self._spending:
                self._measure_from(now)
            return
        if now - self._last_cut < self.latency:
            return  # sent before the cut: says nothing of the new rate
        if self._slow_start or self.rate < self._regrow_to:
            # Doubling every DOUBLING seconds (or round trip, if longer) while answers come.
            period = max(self.latency, DOUBLING)
            step = self.rate * (2 ** min((now - self._grown_at) / period, 1.0) - 1)
            if not self._slow_start:
                step = min(step, self._regrow_to - self.rate)
                self._plateau = max(self._plateau, self.rate + step)
            self._grown_at = now
        elif self.rate < self._plateau * (1 - self._margin):
            # Below where the last throttle came: close the gap fast.
            self._above = 0
            gap = self._plateau * (1 - self._margin) - self.rate
            step = max(APPROACH * gap, PROBE * self._plateau)
        elif self._hold:
            self._hold -= 1  # a known limit: held a while before probing past it
            step = 0.0
        else:
            # Past it: slowly at first, faster the longer no throttle comes.
            if not self._above:
                self._above_since = now
            self._above += 1
            doublings = self._above / ESCAPE
            pace = 1.0
            if not self._found:
                pace = QUICK
                doublings = max(doublings, QUICK * (now - self._above_since) / ESCAPE_SECONDS)
            step = pace * PROBE * self._plateau * 2 ** min(doublings, 30.0)
        self._set_rate(min(self.max_rate, self.rate + min(step, self.rate)))

    def _set_rate(self, rate: float) -> None:
        """Change the rate. What is booked ahead is rescaled to the new rate: compressed
        when it grows, so a slow start from a low rate does not stall; stretched when it
        is cut, so the next request waits by the new rate. Never above ``max_rate``."""
        if self.max_rate is not None:
            rate = min(rate, self.max_rate)
        now = self._clock()
        ahead = self._tat - now
        if ahead > 0:
            self._tat = now + ahead * self.rate / rate
        self.rate = rate

    def timed(self, seconds: float) -> None:
        """One request took ``seconds`` from send to answer. A sample is taken as at most
        four times the average, so one timeout or hang does not pass for the latency."""
        self._sample = seconds
        seconds = min(seconds, 4 * self.latency)
        if self._timed:
            self._wobble += LATENCY_WEIGHT * (abs(seconds - self.latency) - self._wobble)
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
        burst = self.burst
        if self._slow_start and self.adaptive:
            burst = 1  # a bucket of 1 takes one at a time
        if self.limit is None:
            return burst
        return max(1, min(burst, math.floor(self.limit - self.rate + 1)))

    def _next_slot(self) -> float:
        """When the next request may go, at the current rate (not booked)."""
        return self._tat - (self._burst() - 1) / self.rate

    def reserve(self) -> float:
        """Book the next slot; return how many seconds until it comes (0 if it is now)."""
        now = self._clock()
        if self._first_sent is None:
            self._first_sent = now
        if now - self._tat > max(IDLE, 10 / self.rate):
            self._idle += now - self._tat  # nothing to send: no measure of the service's rate
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
            while True:
                while self._next_slot() - self._clock() > RECHECK and not self.halted:
                    await self._sleep(RECHECK)
                if self.halted:
                    return  # nothing is sent now: the caller, seeing why, sends nothing
                cuts = self._cut_count
                delay = self.reserve()
                if delay > 0:
                    await self._sleep(delay)
                if self._cut_count == cuts:
                    return
                # Cut while waiting: the slot was booked at the old rate.

    def halt(self) -> None:
        """Let every caller waiting for a slot go at once (within ``RECHECK``), and every
        later one without waiting: the run is stopping, and callers check that before
        they send. Requests queued behind a slow rate would otherwise hold a gentle stop
        for as long as the queue takes to drain."""
        self.halted = True
