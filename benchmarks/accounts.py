"""Many accounts in one run: 300 accounts x 3 target regions x 20 jobs against the emulator.

Three runs of the same size (18,000 jobs by default), each ``copy_snapshots`` with a report
folder (``keep_results=False``, as ``batchcopy run`` passes) in a child process of its own,
against an emulator in a process of its own (no latency, no limits):

1. ``multi``: every job in one of ``--accounts`` member accounts, reached by assuming a
   role (``--role-name``), so each (account, region) is a lane;
2. ``single``: the same number of jobs and target regions in the base account, with keys
   that carry a session token, as the keys of an instance profile, SSO or a role are (and
   as the assumed roles' keys in run 1 are: every request signs the token too);
3. ``static``: the same as 2 with long-term keys (no session token).

For each: wall time, jobs/s, the child's peak RSS, its CPU seconds (from ``getrusage``,
start-up included) and the part of them the garbage collector took, and the emulator's
AssumeRole count. With ``--repeat N`` the three run N times, interleaved, and the table
shows each run's median. The targets: AssumeRole calls equal to the number of accounts (plus
refreshes), peak RSS under 250 MB, and the multi-account run's CPU per job within 15% of the
single-account run's (like-for-like keys: run 2; run 3 is shown beside it).

Run it from the project root::

    python benchmarks/accounts.py [--accounts 300] [--regions 3] [--jobs 20] [--repeat 1]
                                  [--timeout 900]

It always stops by itself: each child has the time left of ``--timeout``, and the emulator
process is terminated on the way out. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REGIONS = ("eu-west-1", "ap-south-1", "us-west-2", "eu-central-1", "ap-northeast-1")
ROLE = "BatchcopyCopier"
RESULT = "RESULT "
RSS_TARGET_MB = 250.0
CPU_TARGET = 1.15
KINDS = ("multi", "single", "static")
RUN_SETTINGS = {"rate": 100_000, "max_rate": 100_000, "burst": 1000, "max_in_flight": 256}


def seed(accounts: int, jobs: int) -> dict[str, Any]:
    """A management account and ``accounts`` members, each with ``jobs`` snapshots."""
    snapshots = [
        {"name": f"web-{i}", "fromInstanceName": "web", "sizeInGb": 40} for i in range(jobs)
    ]
    members = {
        member_id(n): {"roles": [ROLE], "regions": {"us-east-1": {"instanceSnapshots": snapshots}}}
        for n in range(accounts)
    }
    # The single-account run copies from the management account: the same snapshots.
    management = {"regions": {"us-east-1": {"instanceSnapshots": snapshots}}}
    return {"caller": "100000000000", "accounts": {"100000000000": management, **members}}


def member_id(n: int) -> str:
    return f"{200_000_000_000 + n:012d}"


# -- the measured child ---------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Run one of the two runs; print a RESULT line."""
    from batchcopy.accounts import Access
    from batchcopy.api import copy_snapshots
    from batchcopy.jobs import CopyJob
    from batchcopy.settings import Settings

    regions = REGIONS[: args.regions]
    multi = args.child == "multi"
    if args.child == "single":  # the normal credential chain finds keys with a session token
        os.environ.update(
            AWS_ACCESS_KEY_ID="ASIABENCH",
            AWS_SECRET_ACCESS_KEY="bench-secret",
            AWS_SESSION_TOKEN="bench-session-token-" + "x" * 300,
        )
    per_account = args.jobs * (args.accounts if not multi else 1)

    def jobs() -> Any:
        line = 1
        for n in range(args.accounts if multi else 1):
            for region in regions:
                for i in range(per_account):
                    line += 1
                    yield CopyJob(
                        line=line,
                        account=member_id(n) if multi else "",
                        source_region="us-east-1",
                        target_region=region,
                        source_snapshot_name=f"web-{i % args.jobs}",
                        target_snapshot_name=f"web-{i}-dr",
                    )

    settings = Settings(
        **RUN_SETTINGS,  # type: ignore[arg-type]
        endpoint_url=args.url,
        credentials=None if args.child == "single" else ("AKIDBENCH", "bench-secret"),
        access=Access(role_name=ROLE),
    )
    collecting = _collection_clock()
    with tempfile.TemporaryDirectory(prefix="batchcopy-accounts-") as folder:
        started = time.perf_counter()
        report = asyncio.run(
            copy_snapshots(jobs(), settings, report_dir=Path(folder) / "r", keep_results=False)
        )
        seconds = time.perf_counter() - started
    counts = {k: v for k, v in report.summary.counts.items() if v}
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the whole process: imports included
    result = {
        "seconds": seconds,
        "counts": counts,
        "peak_mb": usage.ru_maxrss / 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
        "gc": collecting(),
    }
    print(RESULT + json.dumps(result), flush=True)


def _collection_clock() -> Any:
    """The CPU seconds the garbage collector takes from here on (a part of the CPU figure)."""
    import gc

    spent = [0.0, 0.0]

    def tick(phase: str, info: dict[str, int]) -> None:
        now = time.process_time()
        if phase == "start":
            spent[1] = now
        else:
            spent[0] += now - spent[1]

    gc.callbacks.append(tick)
    return lambda: spent[0]


# -- the parent -----------------------------------------------------------------------------


def measure(kind: str, url: str, args: argparse.Namespace, ends: float) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--child", kind, "--url", url,
        "--accounts", str(args.accounts), "--regions", str(args.regions), "--jobs", str(args.jobs),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.perf_counter()
    try:
        out, err = proc.communicate(timeout=max(1.0, ends - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SystemExit(f"{kind}: stopped at the time limit") from None
    wall = time.perf_counter() - started
    result = next(
        (json.loads(line[len(RESULT) :]) for line in out.splitlines() if line.startswith(RESULT)),
        None,
    )
    if proc.returncode != 0 or result is None:
        raise SystemExit(f"{kind} failed ({proc.returncode}):\n{err[-2000:]}")
    result["wall"] = wall
    return result


def stats(url: str, path: str, method: str = "GET") -> Any:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(f"{url}/_emulator/{path}", method=method, data=data)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--regions", type=int, default=3, choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--jobs", type=int, default=20, help="jobs per account and region")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three runs")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    ends = time.monotonic() + args.timeout
    total = args.accounts * args.regions * args.jobs
    machine = f"{platform.platform()}, Python {platform.python_version()}"
    print(f"machine:  {machine}, {os.cpu_count()} CPUs")
    print(f"command:  {' '.join([sys.executable, *sys.argv])}")
    size = f"{args.accounts} accounts x {args.regions} regions x {args.jobs} jobs"
    print(f"size:     {size} = {total:,} jobs")
    with tempfile.TemporaryDirectory(prefix="batchcopy-accounts-seed-") as folder:
        seed_file = Path(folder) / "seed.json"
        seed_file.write_text(json.dumps(seed(args.accounts, args.jobs)))
        emulator = subprocess.Popen(
            [sys.executable, "-m", "batchcopy.emulator", "--seed", str(seed_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert emulator.stdout is not None
            url = emulator.stdout.readline().strip()
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
            for _ in range(args.repeat):
                for kind in KINDS:
                    stats(url, "reset", "POST")
                    result = measure(kind, url, args, ends)
                    got = stats(url, "stats")
                    result["assume_role"] = sum(got["assume_role"].values())
                    result["copies"] = len(got["copies_accepted"])
                    runs[kind].append(result)
        finally:
            emulator.terminate()
            emulator.communicate(timeout=10)
    rows = {kind: _median(results) for kind, results in runs.items()}
    print()
    print("   run      jobs  wall s  jobs/s  peak MB  CPU s  GC s  CPU ms/job  AssumeRole  copies")
    for kind, r in rows.items():
        print(
            f"{kind:>6}  {total:>8,}  {r['wall']:6.1f}  {total / r['wall']:6.0f}"
            f"  {r['peak_mb']:7.1f}  {r['cpu']:5.1f}  {r['gc']:4.1f}"
            f"  {1000 * r['cpu'] / total:10.2f}"
            f"  {r['assume_role']:>10}  {r['copies']:>6}  {r['counts']}"
        )
    if args.repeat > 1:
        for kind, results in runs.items():
            each = ", ".join(f"{1000 * r['cpu'] / total:.2f}" for r in results)
            print(f"{kind:>6} CPU ms/job in each round: {each}")
    multi, single = rows["multi"], rows["single"]
    ratio = multi["cpu"] / single["cpu"]
    once = multi["assume_role"] == args.accounts
    small = multi["peak_mb"] < RSS_TARGET_MB
    print()
    print(
        f"AssumeRole calls: {multi['assume_role']} for {args.accounts} accounts "
        f"({'ok' if once else 'MORE than one per account'})"
    )
    print(f"peak RSS: {multi['peak_mb']:.0f} MB ({'ok' if small else 'over'} the target)")
    print(
        f"CPU per job, multi / single: {ratio:.2f} "
        f"({'ok' if ratio <= CPU_TARGET else 'over'} the {CPU_TARGET:.2f} target); "
        f"multi / static: {multi['cpu'] / rows['static']['cpu']:.2f}"
    )


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose CPU time is the median (the lower middle one of an even count)."""
    ordered = sorted(results, key=lambda r: r["cpu"])
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    main()
