"""Throttles: batchcopy and botocore's adaptive retry mode, side by side, over a matrix of
limits the client is not told.

Each cell is a service shape (the emulator's write bucket per target region: limit in
requests/s and burst; how many target regions; latency +/- jitter) and a number of jobs. In
each cell, on a freshly reset emulator (one ``python -m batchcopy.emulator --demo`` process
on 127.0.0.1 for the whole benchmark, its faults set with ``POST /_emulator/config``):

* **batchcopy**: ``batchcopy.copy_snapshots(jobs, Settings(endpoint_url=..., credentials=...,
  rate_state=FILE))``, everything else default: it starts at the default ``--rate`` of 5
  requests/s per region, and records what it learned in the cell's own, empty, state file.
* **botocore adaptive**: aiobotocore with ``retries={"mode": "adaptive"}`` (default max
  attempts, 3), 64 calls at once under a semaphore, ``asyncio.gather``, one client per
  region (as ``peers.py`` runs it). It only copies.
* **batchcopy, told the limit**: batchcopy at a fixed ``--rate`` of the cell's limit with
  its burst (``--fixed-rate``): what a sender that knew the service pays all the same (the
  listings before the first copy, each tag after its copy's answer, a late arrival's
  throttle). With a burst of 2 or more, about the floor under the two batchcopy rows; with
  a bucket of one it is no floor (half the arrivals come early); no state file.
* **batchcopy, remembered**: a second pass, after every cell's first, the same cell again
  with the state file the first pass left: each region starts from the rate remembered.

CopySnapshot and TagResource spend the same write bucket in the emulator (as writes do in
Lightsail), and batchcopy tags every copy it makes (its provenance and run-id tags): two
writes per job against botocore's one. So the table gives two ideals: copies only
(``ceil(N / regions) - burst`` requests over the limit; the buckets start full) and copies
plus tags (``2 x ceil(N / regions) - burst``). botocore's wall is over the copies-only
ideal; batchcopy's over both.

For each run: wall time (from before the clients are made to the last job) over the ideal,
CopySnapshot requests per job and the share of them throttled (as the emulator counted
them), every write throttled (copies and tags), failed jobs (and jobs never run), and for
batchcopy the rates each region started and ended at.

Run it from the project root (``pip install -e '.[bench]'``)::

    python benchmarks/throttle_matrix.py            # every cell, about 15 minutes
    python benchmarks/throttle_matrix.py --quick    # two small cells, about 2 minutes
    python benchmarks/throttle_matrix.py --cells 5/5,20/20
    python benchmarks/throttle_matrix.py --cells 7/3:3:60+-30:300,30/90

A cell of ``--cells`` not in the table is ``LIMIT/BURST[:REGIONS[:LATENCY+-JITTER[:JOBS]]]``
(latency in ms; by default 4 regions, 40 +/- 20 ms, and jobs for an ideal near 20 s).

Every run has a hard timeout (``--run-timeout``), the whole benchmark one (``--timeout``,
20 minutes) and a watchdog behind it; the emulator is stopped on the way out. Only
127.0.0.1 is contacted. The figures are wall times: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (
    CREDENTIALS,
    SOURCE_REGION,
    SOURCE_SNAPSHOT,
    control,
    machine,
    source_state,
    start_emulator,
    stop_emulator,
    watchdog,
)

from batchcopy.ratestate import MIN_RATE

REGIONS = (
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "ap-south-1",
    "ap-northeast-1",
    "us-west-2",
    "ca-central-1",
)
SEED = 7
IN_FLIGHT = 64  # botocore's semaphore, as in peers.py
WRITES_PER_JOB = 2  # batchcopy: CopySnapshot, then TagResource, from one bucket
TOLD = "batchcopy, told the limit"
MAX_LIMIT = 1000.0  # writes a second: a cell of one's own, at most
MAX_JOBS = 100_000

Job = tuple[str, str]  # (target region, target snapshot name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """One service shape and run size."""

    limit: float  # writes per second per target region, the emulator's bucket refill
    burst: float  # the bucket's size; full at the start
    regions: int
    latency_ms: float
    jitter_ms: float
    jobs: int

    @property
    def key(self) -> str:
        return f"{self.limit:g}/{self.burst:g}"

    @property
    def label(self) -> str:
        return (
            f"{self.limit:g}, {self.burst:g} ({self.regions} regions, "
            f"{self.latency_ms:g} +/- {self.jitter_ms:g} ms, {self.jobs} jobs)"
        )

    @property
    def per_region(self) -> int:
        return math.ceil(self.jobs / self.regions)

    def ideal(self, writes_per_job: int) -> float:
        """Seconds the emulator's buckets allow for the busiest region's writes."""
        return max(0.0, self.per_region * writes_per_job - self.burst) / self.limit

    def faults(self) -> dict[str, Any]:
        return {
            "seed": SEED,
            "latency_ms": self.latency_ms,
            "latency_jitter_ms": self.jitter_ms,
            "regions": {
                r: {"copy_rate": self.limit, "copy_burst": self.burst}
                for r in REGIONS[: self.regions]
            },
        }

    def make_jobs(self, prefix: str) -> list[Job]:
        regions = REGIONS[: self.regions]
        return [(regions[i % len(regions)], f"{prefix}-{i:06d}") for i in range(self.jobs)]


# The five rows (4-8 regions, 40 +/- 20 ms), then shapes of our own: a small bucket
# with long latency, a burst twice the limit, a fast limit with long, jittery latency.
# Sizes put batchcopy's copies-plus-tags ideal near 20 s.
CELLS = (
    Cell(limit=5, burst=5, regions=8, latency_ms=40, jitter_ms=20, jobs=600),
    Cell(limit=1, burst=1, regions=4, latency_ms=40, jitter_ms=20, jobs=48),
    Cell(limit=5, burst=1, regions=4, latency_ms=40, jitter_ms=20, jobs=200),
    Cell(limit=20, burst=5, regions=4, latency_ms=40, jitter_ms=20, jobs=800),
    Cell(limit=20, burst=20, regions=4, latency_ms=40, jitter_ms=20, jobs=800),
    Cell(limit=2, burst=2, regions=4, latency_ms=120, jitter_ms=40, jobs=80),
    Cell(limit=10, burst=20, regions=6, latency_ms=80, jitter_ms=40, jobs=600),
    Cell(limit=50, burst=50, regions=2, latency_ms=120, jitter_ms=60, jobs=1000),
)
QUICK = (
    Cell(limit=5, burst=5, regions=4, latency_ms=40, jitter_ms=20, jobs=120),
    Cell(limit=20, burst=5, regions=2, latency_ms=40, jitter_ms=20, jobs=200),
)


@dataclass(slots=True)
class Outcome:
    """One tool in one cell: what it did and what the emulator saw."""

    tool: str
    cell: Cell
    wall: float = 0.0
    failed: int = 0
    not_run: int = 0
    copies: int = 0  # CopySnapshot requests the emulator saw
    copies_throttled: int = 0
    writes_throttled: int = 0  # CopySnapshot and TagResource
    error: str = ""
    start_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    end_rates: dict[str, float] = field(default_factory=dict)

    def read_stats(self, stats: dict[str, Any]) -> None:
        for actions in stats.get("requests", {}).values():
            for action, outcomes in actions.items():
                throttled = outcomes.get("throttled", 0)
                if action == "CopySnapshot":
                    self.copies += sum(outcomes.values())
                    self.copies_throttled += throttled
                if action in ("CopySnapshot", "TagResource"):
                    self.writes_throttled += throttled


async def run_botocore(cell: Cell, url: str, jobs: list[Job], give_up: float) -> Outcome:
    """aiobotocore in adaptive retry mode, as peers.py runs it."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    outcome = Outcome(tool="botocore adaptive", cell=cell)
    config = AioConfig(retries={"mode": "adaptive"}, max_pool_connections=IN_FLIGHT)
    gate = asyncio.Semaphore(IN_FLIGHT)
    finished = 0
    started = time.perf_counter()
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            r: await stack.enter_async_context(
                session.create_client(
                    "lightsail",
                    region_name=r,
                    endpoint_url=url,
                    aws_access_key_id=CREDENTIALS[0],
                    aws_secret_access_key=CREDENTIALS[1],
                    config=config,
                )
            )
            for r in sorted({region for region, _ in jobs})
        }

        async def one(job: Job) -> None:
            nonlocal finished
            region, name = job
            async with gate:
                try:
                    await clients[region].copy_snapshot(
                        sourceRegion=SOURCE_REGION,
                        sourceSnapshotName=SOURCE_SNAPSHOT,
                        targetSnapshotName=name,
                    )
                except (ClientError, BotoCoreError):
                    outcome.failed += 1
                finished += 1

        try:
            async with asyncio.timeout(give_up):
                await asyncio.gather(*(one(job) for job in jobs))
        except TimeoutError:
            outcome.not_run = len(jobs) - finished
            outcome.error = "timed out"
        outcome.wall = time.perf_counter() - started
    return outcome


async def run_batchcopy(
    cell: Cell, url: str, jobs: list[Job], give_up: float, state: Path, tool: str
) -> Outcome:
    """``batchcopy.copy_snapshots`` with its defaults and a rate state file; or, told the
    limit, at a fixed rate of it with the service's burst."""
    import batchcopy
    from batchcopy import CopyJob, RunControl, Settings

    settings = Settings(endpoint_url=url, credentials=CREDENTIALS, rate_state=state)
    if tool == TOLD:
        settings = replace(
            settings,
            rate=cell.limit,
            rate_chosen=True,
            burst=max(1, math.floor(cell.burst)),  # never more than the service holds
            adaptive=False,
            rate_state=None,
        )

    copy_jobs = [
        CopyJob(
            line=i + 1,
            source_region=SOURCE_REGION,
            source_snapshot_name=SOURCE_SNAPSHOT,
            target_region=region,
            target_snapshot_name=name,
        )
        for i, (region, name) in enumerate(jobs)
    ]
    run_control = RunControl(grace=5.0)
    timer = asyncio.get_running_loop().call_later(give_up, run_control.cancel)
    started = time.perf_counter()
    try:
        report = await batchcopy.copy_snapshots(
            copy_jobs,
            settings,
            control=run_control,
            keep_results=False,
        )
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    summary = report.summary
    ok = sum(summary.counts.get(s, 0) for s in ("succeeded", "started", "skipped"))
    return Outcome(
        tool=tool,
        cell=cell,
        wall=wall,
        failed=summary.counts.get("failed", 0),
        not_run=len(jobs) - ok - summary.counts.get("failed", 0),
        error="timed out" if run_control.exit_code is not None else "",
        start_rates=dict(summary.start_rates),
        end_rates=dict(summary.rates),
    )


async def measured(
    http: aiohttp.ClientSession, url: str, cell: Cell, work: Coroutine[Any, Any, Outcome], tool: str
) -> Outcome:
    """Reset the emulator, set the cell's faults, run, and read what the emulator saw."""
    await control(http, url, "reset", {})
    await control(http, url, "config", cell.faults())
    print(f"  {cell.key}: {tool} ...", end="", file=sys.stderr, flush=True)
    try:
        outcome = await work
    except Exception as exc:  # one broken run must not cost the others
        outcome = Outcome(tool=tool, cell=cell, error=f"{type(exc).__name__}: {exc}")
    outcome.read_stats(await control(http, url, "stats"))
    print(
        f" {outcome.wall:.1f} s, {outcome.failed} failed"
        + (f", {outcome.not_run} not run" if outcome.not_run else "")
        + (f" [{outcome.error}]" if outcome.error else ""),
        file=sys.stderr,
    )
    return outcome


def spread(rates: dict[str, float]) -> str:
    if not rates:
        return "-"
    low, high = f"{min(rates.values()):.1f}", f"{max(rates.values()):.1f}"
    return low if low == high else f"{low}-{high}"


def started_at(outcome: Outcome) -> str:
    if not outcome.start_rates:
        return "-"
    rates = {r: float(v["rate"]) for r, v in outcome.start_rates.items()}
    sources = sorted({str(v["source"]) for v in outcome.start_rates.values()})
    return f"{spread(rates)} ({', '.join(sources)})"


def ratio(wall: float, ideal: float) -> str:
    """wall / ideal; "-" where the bucket alone holds every write (an ideal of 0 s)."""
    return f"{wall / ideal:.2f}" if ideal > 0 else "-"


def table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| limit (req/s), burst | tool | wall (s) | ideal: copies / copies+tags (s) | "
        "wall / ideal, copies | wall / ideal, copies+tags | CopySnapshot requests per job | "
        "copies throttled | writes throttled (copies+tags) | failed jobs | "
        "rate at start (why) | rate at end (req/s) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for o in outcomes:
        c = o.cell
        ran = c.jobs - o.not_run
        tagged = o.tool.startswith("batchcopy")
        both = ratio(o.wall, c.ideal(WRITES_PER_JOB)) if tagged else "-"
        per_job = f"{o.copies / ran:.2f}" if ran else "-"
        share = f"{o.copies_throttled} ({o.copies_throttled / o.copies:.0%})" if o.copies else "0"
        failed = f"{o.failed}" + (f", {o.not_run} not run" if o.not_run else "")
        if o.error:
            failed += f" ({o.error})"
        lines.append(
            f"| {c.label} | {o.tool} | {o.wall:.1f} | {c.ideal(1):.1f} / "
            f"{c.ideal(WRITES_PER_JOB):.1f} | {ratio(o.wall, c.ideal(1))} | {both} | {per_job} | "
            f"{share} | {o.writes_throttled} | {failed} | {started_at(o)} | "
            f"{spread(o.end_rates)} |"
        )
    return lines


async def main_async(args: argparse.Namespace) -> list[Outcome]:
    import batchcopy.lightsail  # noqa: F401  (imported up front: no run pays for it)

    logging.getLogger("batchcopy").addHandler(logging.NullHandler())  # failures: the table
    overall = time.monotonic() + args.timeout
    outcomes: list[Outcome] = []

    def give_up() -> float:
        return max(1.0, min(args.run_timeout, overall - time.monotonic()))

    with tempfile.TemporaryDirectory(prefix="throttle-matrix-") as tmp:
        faults_file = Path(tmp) / "faults.json"
        faults_file.write_text("{}")
        proc, url = await start_emulator(faults_file)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                done: list[Cell] = []

                async def run(i: int, cell: Cell, tool: str) -> Outcome:
                    jobs = cell.make_jobs(f"tm{i}")  # the emulator is reset: names repeat
                    state = Path(tmp) / f"rates-{i}.json"  # each cell learns on its own
                    if tool == "botocore adaptive":
                        work = run_botocore(cell, url, jobs, give_up())
                    else:
                        work = run_batchcopy(cell, url, jobs, give_up(), state, tool)
                    return await measured(http, url, cell, work, tool)

                for i, cell in enumerate(args.cells):
                    if time.monotonic() > overall:
                        print(f"  {cell.key}: skipped, out of time", file=sys.stderr)
                        continue
                    outcomes.append(await run(i, cell, "batchcopy"))
                    outcomes.append(await run(i, cell, "botocore adaptive"))
                    outcomes.append(await run(i, cell, TOLD))
                    done.append(cell)
                # The second pass: each cell again, starting from what its first pass left.
                for i, cell in enumerate(args.cells):
                    if cell not in done or time.monotonic() > overall:
                        print(f"  {cell.key}: remembered run skipped", file=sys.stderr)
                        continue
                    outcomes.append(await run(i, cell, "batchcopy, remembered"))
        finally:
            await stop_emulator(proc)
    return outcomes


def parse_cells(text: str) -> list[Cell]:
    """The table's cells by key (``5/5``), or cells of one's own, comma-separated."""
    known = {cell.key: cell for cell in CELLS}
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise argparse.ArgumentTypeError(f"no cell given, got {text!r}")
    return [known.get(key) or parse_cell(key) for key in keys]


def parse_cell(text: str) -> Cell:
    """``LIMIT/BURST[:REGIONS[:LATENCY+-JITTER[:JOBS]]]``: 4 regions, 40 +/- 20 ms and
    jobs for a copies-plus-tags ideal near 20 s unless given."""
    shape = "LIMIT/BURST[:REGIONS[:LATENCY+-JITTER[:JOBS]]], or a key of the table's"
    parts = text.split(":")
    try:
        if len(parts) > 4:
            raise ValueError("too many parts")
        limit, burst = (float(x) for x in parts[0].split("/"))
        regions = int(parts[1]) if len(parts) > 1 else 4
        latency, jitter = (float(x) for x in (parts[2] if len(parts) > 2 else "40+-20").split("+-"))
        jobs = int(parts[3]) if len(parts) > 3 else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a cell is {shape}; got {text!r} ({exc})") from None
    # Bounds a run can keep: a rate batchcopy accepts, a bucket of up to a minute, jobs and
    # latencies that end within a run's timeout (NaN fails every comparison).
    if not (
        MIN_RATE <= limit <= MAX_LIMIT
        and 1 <= burst <= max(1, 60 * limit)
        and 1 <= regions <= len(REGIONS)
        and 1 <= (jobs if jobs is not None else 1) <= MAX_JOBS
        and 0 <= jitter <= latency <= 5000
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r}: the limit must be {MIN_RATE:g} to {MAX_LIMIT:g} writes a second, the "
            f"burst 1 to a minute of the limit, the regions 1 to {len(REGIONS)}, the jobs 1 "
            f"to {MAX_JOBS:,} and the jitter 0 to the latency, at most 5000 ms"
        )
    if jobs is None:
        jobs = min(MAX_JOBS, math.ceil((20 * limit + burst) / WRITES_PER_JOB) * regions)
    return Cell(
        limit=limit, burst=burst, regions=regions, latency_ms=latency, jitter_ms=jitter, jobs=jobs
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small cells: a smoke run")
    parser.add_argument(
        "--cells",
        type=parse_cells,
        default=list(CELLS),
        help=f"comma-separated cells: {','.join(c.key for c in CELLS)} (all), or"
        " LIMIT/BURST[:REGIONS[:LATENCY+-JITTER[:JOBS]]]",
    )
    parser.add_argument("--run-timeout", type=float, default=150.0, help="seconds per run (150)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds in all (1200)")
    args = parser.parse_args()
    if args.quick:
        args.cells = list(QUICK)
        args.run_timeout = min(args.run_timeout, 60.0)
    code = source_state()
    watchdog(args.timeout + 90)  # the last resort: the timeouts below should end it first

    async def bounded() -> list[Outcome]:
        async with asyncio.timeout(args.timeout + 30):
            return await main_async(args)

    try:
        outcomes = asyncio.run(bounded())
    except TimeoutError:
        sys.exit(f"gave up after {args.timeout + 30:.0f} s")
    outcomes.sort(key=lambda o: args.cells.index(o.cell))  # a cell's runs together, in order
    command = shlex.join(["python", "benchmarks/throttle_matrix.py", *sys.argv[1:]])
    print(f"- Command (from the project root): `{command}`")
    print(*machine(), f"- batchcopy: {source_state()}", sep="\n")
    if source_state() != code:
        print(f"- batchcopy's code changed during the run (at the start: {code})")
    print()
    print("\n".join(table(outcomes)))


if __name__ == "__main__":
    main()
