"""The adaptive rate against simulated token buckets: wall / ideal and requests per job.

Runs ``tests/ratesim.py`` (the real limiter on virtual time, no network) over a matrix of
services and runs, and prints, per (limit, burst), the worst cell and the bound it is held
to: with a burst of 2 or more, 1.05x the ideal and 1.10 requests per job; with a burst of 1
and an arrival spread under half the spacing between requests, 1.10x and 1.20; with a
burst of 1 and more spread than that, no bound (shown for the trade-off). The ideal is
(N - burst) / limit: the bucket starts full.

    python benchmarks/ratesim_matrix.py            # the whole matrix, a few minutes
    python benchmarks/ratesim_matrix.py --quick    # one latency, one length

Figures are simulated, so they do not depend on the machine; the same seeds give the same
table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ratesim import Outcome, Scenario, simulate

LIMITS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
RTTS = (0.02, 0.08, 0.2)  # seconds; each way rtt / 2 +/- 50%
SECONDS = (20.0, 120.0)  # how long the ideal run lasts
SEEDS = (1, 2)


def bursts(limit: float) -> list[float]:
    return sorted({1.0, 2.0, limit, 5 * limit})


def starts(limit: float) -> list[float]:
    return sorted({5.0, limit / 4, limit * 4})  # the default --rate, 4x too low and too high


def bound(s: Scenario) -> tuple[float, float] | None:
    """(wall / ideal, requests per job) the cell is held to, or None (measured only)."""
    if s.burst >= 2:
        return 1.05, 1.10
    if s.arrival_spread < 0.5 / s.limit:
        return 1.10, 1.20
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one latency (80 ms), 20 s runs")
    args = parser.parse_args()
    rtts, seconds = ((0.08,), (20.0,)) if args.quick else (RTTS, SECONDS)
    began = time.perf_counter()
    worst: dict[tuple[float, float, bool], tuple[float, float, int, int]] = {}
    misses: list[tuple[Scenario, Outcome]] = []
    for limit in LIMITS:
        for burst in bursts(limit):
            for rtt in rtts:
                for length in seconds:
                    for rate in starts(limit):
                        for seed in SEEDS:
                            s = Scenario(
                                limit=limit,
                                burst=burst,
                                rtt=rtt,
                                jobs=round(limit * length + burst),
                                rate=rate,
                                seed=seed,
                            )
                            o = simulate(s)
                            held = bound(s)
                            key = (limit, burst, held is not None)
                            ratio, per_job, cells, missed = worst.get(key, (0.0, 0.0, 0, 0))
                            miss = held is not None and (o.ratio > held[0] or o.per_job > held[1])
                            worst[key] = (
                                max(ratio, o.ratio),
                                max(per_job, o.per_job),
                                cells + 1,
                                missed + miss,
                            )
                            if miss:
                                misses.append((s, o))
    print(
        f"rtt {', '.join(f'{r * 1000:g}' for r in rtts)} ms (+/- 50% each way); ideal runs of "
        f"{', '.join(f'{x:g}' for x in seconds)} s; starts 5, limit/4, 4x limit; seeds {SEEDS}\n"
    )
    print("| limit | burst | bound | cells | worst wall/ideal | worst req/job | misses |")
    print("|---|---|---|---|---|---|---|")
    by_cell: dict[tuple[float, float], list[tuple[bool, tuple[float, float, int, int]]]]
    by_cell = defaultdict(list)
    for (limit, burst, held), figures in worst.items():
        by_cell[limit, burst].append((held, figures))
    for (limit, burst), rows in by_cell.items():
        for held, (ratio, per_job, cells, missed) in rows:
            if not held:
                text = "none (spread >= spacing/2)"
            elif burst >= 2:
                text = "1.05x, 1.10"
            else:
                text = "1.10x, 1.20"
            print(
                f"| {limit:g} | {burst:g} | {text} | {cells} | {ratio:.3f} | {per_job:.3f} | "
                f"{missed if held else '-'} |"
            )
    print(f"\n{len(misses)} cells outside their bound")
    for s, o in misses[:40]:
        print(
            f"- limit {s.limit:g} burst {s.burst:g} rtt {s.rtt * 1000:g} ms N {s.jobs} "
            f"start {s.rate:g} seed {s.seed}: {o.ratio:.3f}x, {o.per_job:.3f} req/job, "
            f"rate at the end {o.rates[0]:.2f}"
        )
    print(f"\n({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
