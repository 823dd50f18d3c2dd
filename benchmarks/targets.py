"""batchcopy's own speed targets, measured against the emulator: engine overhead and the
adaptive rate.

1. Engine overhead. No server-side limits, 50 ms latency per request. A bare aiobotocore
   loop (the clients batchcopy builds: one attempt per call, the same pool; 64 copies at
   once under a semaphore, ``asyncio.gather``) and ``batchcopy.copy_snapshots`` with its
   default settings copy N snapshots into four regions, alternately, ``--repeat`` times each,
   against the same emulator process. Both are timed from before they make their clients
   to the last answer (batchcopy's time also holds its listing of each region, its slow
   start from the default --rate and its report). batchcopy tags every copy it makes (its
   provenance: the source and the run), so the loop sends the same two requests per copy:
   CopySnapshot, then TagResource with two tags. Target: batchcopy's copies/s at least 90%
   of the loop's (medians compared).

2. Adaptive rate. The emulator limits each of 8 target regions to a rate batchcopy is not
   told (5 and 20 copies/s, bucket of the same size, 50 ms latency); batchcopy starts 4x
   too high and 4x too low (``--rate``) and copies N jobs spread over the 8 regions.
   Every job is two writes on that limit, its copy and its tag, so the ideal time is
   2N / (regions x rate). Target: within 1.05x of it, zero failed jobs. The
   ideal that also counts the emulator's full buckets at the start (a little shorter) is
   shown beside it.

Run it from the project root (``pip install -e '.[bench]'``)::

    python benchmarks/targets.py               # both parts, about 6 minutes
    python benchmarks/targets.py --quick       # small N, about a minute
    python benchmarks/targets.py --part adaptive --limits 20

It prints a table per part and PASS or MISS against each target. Every run is bounded (a
per-run timeout and a watchdog on the whole), the emulator is stopped on the way out, and
only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (
    CREDENTIALS,
    SOURCE_REGION,
    SOURCE_SNAPSHOT,
    control,
    start_emulator,
    stop_emulator,
    watchdog,
)

# The loop tags each copy as batchcopy does (its source and its run).
BARE_TAGS = [
    {"key": "batchcopy:source", "value": f"{SOURCE_REGION}/{SOURCE_SNAPSHOT}"},
    {"key": "batchcopy:run-id", "value": "bare-loop"},
]
OVERHEAD_REGIONS = ("eu-west-1", "eu-west-2", "ap-south-1", "us-west-2")
ADAPTIVE_REGIONS = (
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "ap-south-1",
    "ap-northeast-1",
    "us-west-2",
    "ca-central-1",
)
LATENCY = {"seed": 7, "latency_ms": 50}
IN_FLIGHT = 64  # the bare loop's semaphore
OVERHEAD_TARGET = 0.90
ADAPTIVE_TARGET = 1.05

Job = tuple[str, str]  # (target region, target snapshot name)


@dataclass(slots=True)
class Outcome:
    wall: float = 0.0
    ok: int = 0
    failed: int = 0
    not_run: int = 0
    copy_requests: int = 0
    throttled: int = 0
    duplicates: int = 0
    rates: dict[str, float] = field(default_factory=dict)


def make_jobs(n: int, regions: tuple[str, ...], prefix: str) -> list[Job]:
    return [(regions[i % len(regions)], f"{prefix}-{i:06d}") for i in range(n)]


def read_stats(outcome: Outcome, stats: dict[str, Any]) -> None:
    for actions in stats.get("requests", {}).values():
        copies = actions.get("CopySnapshot", {})
        outcome.copy_requests += sum(copies.values())
        outcome.throttled += copies.get("throttled", 0)
    outcome.duplicates = sum(n - 1 for n in stats.get("copies_accepted", {}).values() if n > 1)


async def bare_loop(url: str, jobs: list[Job], give_up: float) -> Outcome:
    """aiobotocore with the client settings batchcopy uses, a semaphore and gather."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    outcome = Outcome()
    regions = sorted({region for region, _ in jobs})
    config = AioConfig(
        retries={"total_max_attempts": 1}, max_pool_connections=2 * IN_FLIGHT, read_timeout=60
    )
    gate = asyncio.Semaphore(IN_FLIGHT)
    started = time.perf_counter()  # as batchcopy's, the time includes making the clients
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            region: await stack.enter_async_context(
                session.create_client(
                    "lightsail",
                    region_name=region,
                    endpoint_url=url,
                    aws_access_key_id=CREDENTIALS[0],
                    aws_secret_access_key=CREDENTIALS[1],
                    config=config,
                )
            )
            for region in regions
        }

        async def one(job: Job) -> None:
            region, name = job
            async with gate:
                try:
                    await clients[region].copy_snapshot(
                        sourceRegion=SOURCE_REGION,
                        sourceSnapshotName=SOURCE_SNAPSHOT,
                        targetSnapshotName=name,
                    )
                    await clients[region].tag_resource(resourceName=name, tags=BARE_TAGS)
                except (ClientError, BotoCoreError):
                    outcome.failed += 1
                else:
                    outcome.ok += 1

        async with asyncio.timeout(give_up):
            await asyncio.gather(*(one(job) for job in jobs))
        outcome.wall = time.perf_counter() - started
    return outcome


async def batchcopy_run(url: str, jobs: list[Job], give_up: float, **settings: Any) -> Outcome:
    """``batchcopy.copy_snapshots`` with its defaults, except what ``settings`` gives."""
    import batchcopy
    from batchcopy import CopyJob, RunControl, Settings

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
    control_ = RunControl(grace=5.0)
    timer = asyncio.get_running_loop().call_later(give_up, control_.cancel)
    started = time.perf_counter()
    try:
        report = await batchcopy.copy_snapshots(
            copy_jobs,
            Settings(endpoint_url=url, credentials=CREDENTIALS, **settings),
            control=control_,
        )
    finally:
        timer.cancel()
    summary = report.summary
    return Outcome(
        wall=time.perf_counter() - started,
        ok=summary.counts.get("started", 0) + summary.counts.get("skipped", 0),
        failed=summary.counts.get("failed", 0),
        not_run=summary.counts.get("not_started", 0),
        rates=dict(summary.rates),
    )


async def measured(
    http: aiohttp.ClientSession, url: str, faults: dict[str, Any], run: Any
) -> Outcome:
    """Reset the emulator, set its faults, run, and read what it saw."""
    await control(http, url, "reset", {})
    await control(http, url, "config", faults)
    outcome: Outcome = await run()
    read_stats(outcome, await control(http, url, "stats"))
    return outcome


async def overhead(args: argparse.Namespace, url: str, http: aiohttp.ClientSession) -> bool:
    n = args.jobs
    print(
        f"\n### 1. Engine overhead: {n} copies into {len(OVERHEAD_REGIONS)} regions, "
        f"no limits, 50 ms latency, {args.repeat} runs each, alternating\n"
    )
    walls: dict[str, list[float]] = {"bare aiobotocore loop": [], "batchcopy (defaults)": []}
    bad = 0
    for i in range(args.repeat):
        jobs = make_jobs(n, OVERHEAD_REGIONS, f"ovh{i}")
        bare = await measured(
            http, url, LATENCY, lambda j=jobs: bare_loop(url, j, args.run_timeout)
        )
        ours = await measured(
            http, url, LATENCY, lambda j=jobs: batchcopy_run(url, j, args.run_timeout)
        )
        for name, outcome in zip(walls, (bare, ours), strict=True):
            walls[name].append(outcome.wall)
            bad += outcome.failed + outcome.not_run + outcome.duplicates
            print(
                f"- run {i + 1}, {name}: {outcome.wall:.2f} s, {n / outcome.wall:.0f} copies/s, "
                f"{outcome.failed} failed, {outcome.copy_requests} CopySnapshot requests"
            )
    print("\n| tool | median wall (s) | copies/s |\n|---|---|---|")
    speeds = {}
    for name, seen in walls.items():
        median = statistics.median(seen)
        speeds[name] = n / median
        print(f"| {name} | {median:.2f} | {speeds[name]:.0f} |")
    ratio = speeds["batchcopy (defaults)"] / speeds["bare aiobotocore loop"]
    passed = ratio >= OVERHEAD_TARGET and bad == 0
    print(
        f"\nbatchcopy at {ratio:.0%} of the bare loop's copies/s (target >= "
        f"{OVERHEAD_TARGET:.0%}, nothing failed or duplicated): {'PASS' if passed else 'MISS'}"
    )
    return passed


async def adaptive(args: argparse.Namespace, url: str, http: aiohttp.ClientSession) -> bool:
    n, regions = args.jobs, ADAPTIVE_REGIONS
    print(
        f"\n### 2. Adaptive rate: {n} copies over {len(regions)} regions, each limited by the "
        f"emulator to a rate batchcopy is not told (bucket: {args.bucket or 'the limit'}), "
        f"50 ms latency, {args.error_rate:.0%} 5xx\n"
    )
    print(
        "| limit (req/s) | --rate | ideal 2N/(regions x rate) (s) | wall (s) | ratio | "
        "ratio, full buckets counted | failed | duplicates | CopySnapshot requests "
        "(throttled) | rates at the end (req/s) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    passed = True
    for limit in args.limits:
        bucket = args.bucket or limit
        faults = {
            **LATENCY,
            "error_rate": args.error_rate,
            "regions": {r: {"copy_rate": limit, "copy_burst": bucket} for r in regions},
        }
        writes = 2 * n  # each job's copy and its tag
        ideal = writes / (len(regions) * limit)
        bucketed = max(0.0, writes - len(regions) * bucket) / (len(regions) * limit)
        for start in (limit * 4, limit / 4):
            side = "high" if start > limit else "low"  # a "." is not allowed in a name
            jobs = make_jobs(n, regions, f"ad{round(limit * 100)}-{side}")
            outcome = await measured(
                http,
                url,
                faults,
                lambda j=jobs, s=start: batchcopy_run(url, j, args.run_timeout, rate=s),
            )
            ratio = outcome.wall / ideal
            ok = ratio <= ADAPTIVE_TARGET and outcome.failed + outcome.not_run == 0
            passed &= ok and outcome.duplicates == 0
            rates = sorted(outcome.rates.values())
            print(
                f"| {limit:g} | {start:g} | {ideal:.1f} | {outcome.wall:.1f} | {ratio:.3f}"
                f"{'' if ok else ' (miss)'} | {outcome.wall / bucketed:.3f} | "
                f"{outcome.failed + outcome.not_run} | {outcome.duplicates} | "
                f"{outcome.copy_requests} ({outcome.throttled}) | "
                f"{rates[0]:.1f} to {rates[-1]:.1f} |"
            )
    print(
        f"\nEvery start within {ADAPTIVE_TARGET}x of the ideal, 0 failed, 0 duplicates: "
        f"{'PASS' if passed else 'MISS'}"
    )
    return passed


async def main_async(args: argparse.Namespace) -> bool:
    import batchcopy.lightsail  # noqa: F401  (imported up front: no run pays for it)

    logging.getLogger("batchcopy").addHandler(logging.NullHandler())
    passed = True
    with tempfile.TemporaryDirectory(prefix="targets-") as tmp:
        faults_file = Path(tmp) / "faults.json"
        faults_file.write_text("{}")
        proc, url = await start_emulator(faults_file)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                if "overhead" in args.part:
                    passed &= await overhead(args, url, http)
                if "adaptive" in args.part:
                    passed &= await adaptive(args, url, http)
        finally:
            await stop_emulator(proc)
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 800: a smoke run")
    parser.add_argument("--jobs", type=int, default=4000, help="N for every run (4000)")
    parser.add_argument(
        "--part",
        default="overhead,adaptive",
        type=lambda text: [p for p in text.split(",") if p in ("overhead", "adaptive")],
        help="overhead, adaptive or both (default)",
    )
    parser.add_argument(
        "--limits",
        default=[5.0, 20.0],
        type=lambda text: [float(v) for v in text.split(",")],
        help="the emulator's per-region limits, comma-separated (5,20)",
    )
    parser.add_argument(
        "--bucket", type=float, default=0, help="adaptive: the emulator's bucket (the limit)"
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="adaptive: share of requests failing 500"
    )
    parser.add_argument("--repeat", type=int, default=3, help="overhead runs of each tool (3)")
    parser.add_argument("--run-timeout", type=float, default=240.0, help="seconds per run (240)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds in all (900)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.repeat = min(args.jobs, 800), min(args.repeat, 2)
    if args.jobs < 1 or args.repeat < 1 or not args.part:
        parser.error("--jobs and --repeat must be positive; --part overhead and/or adaptive")
    watchdog(args.timeout + 60)

    async def bounded() -> bool:
        async with asyncio.timeout(args.timeout):
            return await main_async(args)

    try:
        passed = asyncio.run(bounded())
    except TimeoutError:
        sys.exit(f"gave up after {args.timeout:.0f} s")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
