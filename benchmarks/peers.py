"""batchcopy against its peers: the same emulator scenarios, tool by tool, side by side.

Starts ``python -m batchcopy.emulator --demo --faults FILE`` as a separate process on
127.0.0.1 (one per scenario), and before each tool resets it (``POST /_emulator/reset``) and
sets the scenario's faults (``POST /_emulator/config``). Every tool copies the demo snapshot
``us-east-1/nyc-web-1-2026-11-20`` into distinct target names spread round-robin over four
target regions. The tools:

* ``aws-cli``: ``aws lightsail copy-snapshot --endpoint-url ...``, one process per job, in a
  loop. It runs a sample (``--cli-sample``, 20 jobs) and its wall time is extrapolated to N.
* ``boto3-seq``: one boto3 call after another, botocore's default retry configuration. A
  sample too (``--seq-sample``), extrapolated.
* ``boto3-threads``: the same calls from a pool of 16 threads (default retries).
* ``aiobotocore``: ``retries={"mode": "adaptive"}`` (default max_attempts), 64 calls at
  once under a semaphore, ``asyncio.gather``.
* ``batchcopy``: ``await batchcopy.copy_snapshots(jobs, Settings(...))`` with rate 20 per
  region and ``max_in_flight`` 64.

Scenarios (every one with 50 ms latency per request): (a) no throttling; (b) each target
region throttles copies at 10 req/s (``copy_rate`` 10, ``copy_burst`` 10) and 1% of requests
fail with a 500; (c) as (b) plus 2% of responses lost after the request took effect.

For each tool and scenario it records the wall time, the ratio to the ideal time (b, c:
N / (4 x 10) s), failed jobs as the tool sees them, duplicate copies and CopySnapshot
requests as the emulator counted them (``/_emulator/stats``) and the client's CPU time per
job; then writes ``benchmarks/RESULTS.md`` and ``benchmarks/peers.png`` (jobs done over
time, one plot per scenario). A naive tool's job succeeded if its call returned without an
error after the tool's own retries: a response lost after the copy was made, retried into
"name already in use", is a failure for it.

Run it from the project root (``pip install -e '.[bench]'``)::

    python benchmarks/peers.py                 # every scenario and tool, 10-15 minutes
    python benchmarks/peers.py --quick         # a smoke run with small N
    python benchmarks/peers.py --scenarios b --tools aiobotocore,batchcopy

Every run is bounded: each tool has a hard timeout per scenario (``--run-timeout``), the
whole benchmark has one (``--timeout``), a watchdog ends the process if both fail, and the
emulator is stopped on the way out. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE_REGION = "us-east-1"
SOURCE_SNAPSHOT = "nyc-web-1-2026-11-20"  # in the demo seed
TARGET_REGIONS = ("eu-west-1", "eu-west-2", "ap-south-1", "us-west-2")
REGION_RATE = 10  # the emulator's copies/s per target region in scenarios b and c
REGION_BURST = 10  # and its bucket, full at the start
CREDENTIALS = ("bench", "bench")
THREADS = 16
IN_FLIGHT = 64
BATCHCOPY_RATE = 20.0  # batchcopy's guess at the rate: above what the emulator allows
CLI_TIMEOUT = 60.0  # one AWS CLI process
SEED = 7

# (label, N in a full run, N with --quick, fault settings)
LATENCY = {"seed": SEED, "latency_ms": 50}
THROTTLED = {
    **LATENCY,
    "error_rate": 0.01,
    "regions": {r: {"copy_rate": REGION_RATE, "copy_burst": REGION_BURST} for r in TARGET_REGIONS},
}
SCENARIOS: dict[str, tuple[str, int, int, dict[str, Any]]] = {
    "a": ("no throttling, 50 ms latency", 4000, 200, LATENCY),
    "b": ("4 regions x 10 req/s, 1% 5xx", 4000, 200, THROTTLED),
    "c": ("as (b) + 2% lost after commit", 4000, 200, {**THROTTLED, "drop_after_rate": 0.02}),
}
TOOLS = {
    "aws-cli": "AWS CLI loop",
    "boto3-seq": "boto3 sequential",
    "boto3-threads": f"boto3, {THREADS} threads",
    "aiobotocore": f"aiobotocore adaptive, {IN_FLIGHT} at once",
    "batchcopy": "batchcopy",
}
COLOURS = {
    "aws-cli": "tab:gray",
    "boto3-seq": "tab:brown",
    "boto3-threads": "tab:orange",
    "aiobotocore": "tab:blue",
    "batchcopy": "tab:green",
}
SAMPLED = ("aws-cli", "boto3-seq")

Job = tuple[str, str]  # (target region, target snapshot name)


@dataclass(slots=True)
class Run:
    """One tool in one scenario: what it did and what the emulator saw."""

    tool: str
    scenario: str
    planned: int  # the scenario's N
    jobs: int  # jobs given to the tool: N, or a sample
    wall: float = 0.0
    cpu: float = 0.0  # client CPU seconds
    done: list[float] = field(default_factory=list)  # seconds from the start, per success
    failures: Counter[str] = field(default_factory=Counter)  # error code -> jobs
    failed_targets: set[str] = field(default_factory=set)  # "region/name"
    not_run: int = 0  # never tried: the run's timeout came first
    error: str = ""  # the tool itself broke
    note: str = ""  # what the tool itself reported, for the notes
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return self.jobs < self.planned

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def estimated_wall(self) -> float:
        """The wall time for all N jobs: measured, or scaled up from the sample."""
        return self.wall * self.planned / self.jobs if self.sampled else self.wall


class Clock:
    """Completion times relative to a start, and the failures, from any thread."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.lock = threading.Lock()
        self.start = time.perf_counter()

    def ok(self) -> None:
        with self.lock:
            self.run.done.append(time.perf_counter() - self.start)

    def fail(self, job: Job, code: str) -> None:
        with self.lock:
            self.run.failures[code] += 1
            self.run.failed_targets.add(f"{job[0]}/{job[1]}")

    def skip(self) -> None:
        with self.lock:
            self.run.not_run += 1


@contextlib.contextmanager
def measured(run: Run, *, children: bool = False) -> Iterator[Clock]:
    """Time a run: wall clock, and CPU of this process (or of its finished children)."""

    def cpu() -> float:
        if children:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime
        return time.process_time()

    cpu_before = cpu()
    clock = Clock(run)
    try:
        yield clock
    finally:
        run.wall = time.perf_counter() - clock.start
        run.cpu = cpu() - cpu_before


def make_jobs(n: int) -> list[Job]:
    return [(TARGET_REGIONS[i % len(TARGET_REGIONS)], f"peer-{i:06d}") for i in range(n)]


# -- the tools -----------------------------------------------------------------------------


def aws_command() -> str:
    beside = Path(sys.executable).parent / "aws"
    found = str(beside) if beside.exists() else shutil.which("aws")
    if not found:
        raise RuntimeError("the AWS CLI is not installed: pip install -e '.[bench]'")
    return found


def isolated_env() -> dict[str, str]:
    """This environment without the user's AWS settings, with the benchmark's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=CREDENTIALS[0],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS[1],
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env


def run_aws_cli(url: str, jobs: list[Job], run: Run, deadline: float) -> None:
    aws, env = aws_command(), isolated_env()
    with measured(run, children=True) as clock:
        for job in jobs:
            if time.monotonic() > deadline:
                clock.skip()
                continue
            region, name = job
            command = [
                aws, "lightsail", "copy-snapshot", "--region", region, "--endpoint-url", url,
                "--source-region", SOURCE_REGION, "--source-snapshot-name", SOURCE_SNAPSHOT,
                "--target-snapshot-name", name, "--output", "json",
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                clock.fail(job, "timeout")
                continue
            if done.returncode == 0:
                clock.ok()
            else:
                code = re.search(r"An error occurred \((\w+)\)", done.stderr)
                clock.fail(job, code.group(1) if code else f"exit {done.returncode}")


def run_boto3(url: str, jobs: list[Job], run: Run, deadline: float, threads: int) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    with measured(run) as clock:
        session = boto3.session.Session(
            aws_access_key_id=CREDENTIALS[0], aws_secret_access_key=CREDENTIALS[1]
        )
        config = Config(max_pool_connections=max(10, threads))  # retries: botocore's default
        clients = {
            r: session.client("lightsail", region_name=r, endpoint_url=url, config=config)
            for r in TARGET_REGIONS
        }

        def one(job: Job) -> None:
            if time.monotonic() > deadline:
                clock.skip()
                return
            region, name = job
            try:
                clients[region].copy_snapshot(
                    sourceRegion=SOURCE_REGION,
                    sourceSnapshotName=SOURCE_SNAPSHOT,
                    targetSnapshotName=name,
                )
            except ClientError as exc:
                clock.fail(job, exc.response.get("Error", {}).get("Code", "ClientError"))
            except BotoCoreError as exc:
                clock.fail(job, type(exc).__name__)
            else:
                clock.ok()

        if threads == 1:
            for job in jobs:
                one(job)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, jobs))


async def run_aiobotocore(url: str, jobs: list[Job], run: Run, deadline: float) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    with measured(run) as clock:
        session = get_session()
        config = AioConfig(retries={"mode": "adaptive"}, max_pool_connections=IN_FLIGHT)
        gate = asyncio.Semaphore(IN_FLIGHT)
        finished = 0
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
                for r in TARGET_REGIONS
            }

            async def one(job: Job) -> None:
                nonlocal finished
                async with gate:
                    region, name = job
                    try:
                        await clients[region].copy_snapshot(
                            sourceRegion=SOURCE_REGION,
                            sourceSnapshotName=SOURCE_SNAPSHOT,
                            targetSnapshotName=name,
                        )
                    except ClientError as exc:
                        clock.fail(job, exc.response.get("Error", {}).get("Code", "ClientError"))
                    except BotoCoreError as exc:
                        clock.fail(job, type(exc).__name__)
                    else:
                        clock.ok()
                    finished += 1

            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await asyncio.gather(*(one(job) for job in jobs))
            except TimeoutError:
                run.not_run = len(jobs) - finished
                run.error = "timed out"


async def run_batchcopy(url: str, jobs: list[Job], run: Run, deadline: float) -> None:
    import batchcopy
    from batchcopy import CopyJob, RunControl, Settings

    copy_jobs = [
        CopyJob(
            line=i + 1,
            source_region=SOURCE_REGION,
            target_region=region,
            target_snapshot_name=name,
            source_snapshot_name=SOURCE_SNAPSHOT,
        )
        for i, (region, name) in enumerate(jobs)
    ]
    settings = Settings(
        endpoint_url=url,
        credentials=CREDENTIALS,
        rate=BATCHCOPY_RATE,
        max_in_flight=IN_FLIGHT,
    )
    control = RunControl(grace=5.0)
    with measured(run) as clock:

        def on_result(result: Any) -> None:
            if result.status.ok:
                clock.ok()

        timer = asyncio.get_running_loop().call_later(
            max(0.0, deadline - time.monotonic()), control.cancel
        )
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + 30):
                report = await batchcopy.copy_snapshots(
                    copy_jobs, settings, control=control, on_result=on_result, keep_results=True
                )
        finally:
            timer.cancel()
    for result in report.results:
        if result.status == "failed":
            clock.fail(
                (result.job.target_region, result.job.target_snapshot_name),
                result.error_code or "failed",
            )
        elif not result.status.ok:
            run.not_run += 1
    if control.exit_code is not None:
        run.error = "timed out"
    summary = report.summary
    rates = ", ".join(f"{r} {v:.1f}" for r, v in sorted(getattr(summary, "rates", {}).items()))
    run.note = (
        f"{summary.attempts} attempts, {summary.throttles} throttled, "
        f"{summary.reconciled} reconciled after an ambiguous failure"
        + (f"; adaptive rate at the end (requests/s): {rates}" if rates else "")
    )


# -- the emulator --------------------------------------------------------------------------


async def start_emulator(faults_file: Path) -> tuple[asyncio.subprocess.Process, str]:
    command = [sys.executable, "-m", "batchcopy.emulator", "--demo", "--faults", str(faults_file)]
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    _children.add(proc.pid)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    except BaseException:
        await stop_emulator(proc)
        raise
    url = line.decode().strip()
    if not url.startswith("http://127.0.0.1:"):
        await stop_emulator(proc)
        raise RuntimeError(f"the emulator did not print its URL (got {line!r})")
    return proc, url


async def stop_emulator(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    _children.discard(proc.pid)


async def control(http: aiohttp.ClientSession, url: str, path: str, body: Any = None) -> Any:
    method = "GET" if body is None and path == "stats" else "POST"
    async with http.request(method, f"{url}/_emulator/{path}", json=body) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{method} /_emulator/{path}: {resp.status} {answer}")
        return answer


# -- running it all ------------------------------------------------------------------------

_children: set[int] = set()  # emulator processes, for the watchdog


def watchdog(seconds: float) -> None:
    """End the whole process if it outlives ``seconds``, whatever is stuck."""

    def fire() -> None:
        print(f"peers.py: still running after {seconds:.0f} s; giving up", file=sys.stderr)
        for pid in list(_children):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


async def run_tool(tool: str, url: str, jobs: list[Job], run: Run, deadline: float) -> None:
    if tool == "aws-cli":
        await asyncio.to_thread(run_aws_cli, url, jobs, run, deadline)
    elif tool == "boto3-seq":
        await asyncio.to_thread(run_boto3, url, jobs, run, deadline, 1)
    elif tool == "boto3-threads":
        await asyncio.to_thread(run_boto3, url, jobs, run, deadline, THREADS)
    elif tool == "aiobotocore":
        await run_aiobotocore(url, jobs, run, deadline)
    else:
        await run_batchcopy(url, jobs, run, deadline)
    if time.monotonic() > deadline and run.not_run:
        run.error = run.error or "timed out"


async def run_scenario(
    key: str, tools: list[str], args: argparse.Namespace, overall: float, tmp: Path
) -> list[Run]:
    _, full_n, quick_n, faults = SCENARIOS[key]
    n = args.jobs or (quick_n if args.quick else full_n)
    faults_file = tmp / f"faults-{key}.json"
    faults_file.write_text(json.dumps(faults))
    runs: list[Run] = []
    proc, url = await start_emulator(faults_file)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for tool in tools:
                if time.monotonic() > overall:
                    print(f"  ({key}) {tool}: skipped, out of time", file=sys.stderr)
                    continue
                sample = {"aws-cli": args.cli_sample, "boto3-seq": args.seq_sample}.get(tool, n)
                jobs = make_jobs(min(n, sample))
                run = Run(tool=tool, scenario=key, planned=n, jobs=len(jobs))
                await control(http, url, "reset", {})
                await control(http, url, "config", faults)
                deadline = min(time.monotonic() + args.run_timeout, overall)
                print(f"  ({key}) {tool}: {len(jobs)} jobs ...", end="", file=sys.stderr)
                sys.stderr.flush()
                try:
                    await run_tool(tool, url, jobs, run, deadline)
                except Exception as exc:  # one broken tool must not cost the others
                    run.error = f"{type(exc).__name__}: {exc}"
                run.stats = await control(http, url, "stats")
                print(
                    f" {run.wall:.1f} s, {len(run.done)} ok, {run.failed} failed"
                    + (f", {run.not_run} not run" if run.not_run else "")
                    + (f" [{run.error}]" if run.error else ""),
                    file=sys.stderr,
                )
                runs.append(run)
    finally:
        await stop_emulator(proc)
    return runs


# -- figures -------------------------------------------------------------------------------


def copy_requests(run: Run) -> tuple[int, int]:
    """CopySnapshot requests the emulator saw, and how many of them it throttled."""
    total = throttled = 0
    for actions in run.stats.get("requests", {}).values():
        outcomes = actions.get("CopySnapshot", {})
        total += sum(outcomes.values())
        throttled += outcomes.get("throttled", 0)
    return total, throttled


def duplicates(run: Run) -> int:
    return sum(n - 1 for n in run.stats.get("copies_accepted", {}).values() if n > 1)


def ideal(key: str, n: int) -> float | None:
    """Seconds the emulator's limits allow for n jobs (the buckets start full); None where
    it sets no limit."""
    if "regions" not in SCENARIOS[key][3]:
        return None
    regions = len(TARGET_REGIONS)
    return max(0, n - regions * REGION_BURST) / (regions * REGION_RATE)


def table(runs: list[Run]) -> list[str]:
    lines = [
        "| Scenario | Tool | Jobs run | Wall time (s) | Ratio to ideal | Failed jobs | "
        "Duplicate copies | CopySnapshot requests (throttled) | Requests / job | "
        "Other requests | Client CPU ms / job |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        attempts, throttled = copy_requests(run)
        other = int(run.stats.get("requests_total", 0)) - attempts
        best = ideal(run.scenario, run.planned)
        wall = run.estimated_wall
        ran = run.jobs - run.not_run
        if run.sampled:
            wall_cell = f"≈ {wall:.0f} (extrapolated: {run.jobs} jobs took {run.wall:.1f})"
            jobs_cell = f"{run.jobs} of {run.planned} (sample)"
        else:
            wall_cell = f"{wall:.1f}"
            jobs_cell = f"{run.jobs}"
        if run.not_run:
            jobs_cell += f", {run.not_run} not run"
        ratio = "-" if best is None else ("≈ " if run.sampled else "") + f"{wall / best:.2f}"
        failed = f"{run.failed} of {run.jobs}" if run.sampled else f"{run.failed}"
        if run.error:
            failed += f" ({run.error})"
        per_job = f"{attempts / ran:.2f}" if ran else "-"
        cpu = f"{run.cpu * 1000 / ran:.1f}" if ran else "-"
        lines.append(
            f"| ({run.scenario}) | {TOOLS[run.tool]} | {jobs_cell} | {wall_cell} | {ratio} | "
            f"{failed} | {duplicates(run)} | {attempts} ({throttled}) | {per_job} | {other} | "
            f"{cpu} |"
        )
    return lines


def failure_notes(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        if run.note:
            lines.append(f"- ({run.scenario}) {TOOLS[run.tool]} reports: {run.note}.")
        if not run.failures:
            continue
        made = run.stats.get("copies_accepted", {})
        copied = sum(1 for target in run.failed_targets if made.get(target, 0) >= 1)
        causes = ", ".join(f"{code} {n}" for code, n in run.failures.most_common())
        lines.append(
            f"- ({run.scenario}) {TOOLS[run.tool]}: {causes}; {copied} of the "
            f"{run.failed} failed jobs' targets were in fact copied."
        )
    return lines or ["- no failures"]


def plot(runs: list[Run], scenarios: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(scenarios), 1, figsize=(13, 4.2 * len(scenarios)), squeeze=False)
    for ax, key in zip(axes[:, 0], scenarios, strict=True):
        mine = [r for r in runs if r.scenario == key]
        if not mine:
            continue
        n = mine[0].planned
        full = [r.wall for r in mine if not r.sampled] or [r.wall for r in mine]
        best = ideal(key, n)
        right = max([*full, (best or 0) * 1.3, 1.0]) * 1.08
        if best is not None:
            ax.plot(
                [0, best],
                [min(n, len(TARGET_REGIONS) * REGION_BURST), n],
                color="black",
                linestyle="--",
                linewidth=1,
                zorder=5,
                label=f"ideal: {len(TARGET_REGIONS)} x {REGION_RATE} req/s, buckets full at start",
            )
        for run in mine:
            times = sorted(run.done)
            xs, ys = [0.0, *times], list(range(len(times) + 1))
            label = TOOLS[run.tool]
            if run.sampled:
                label += f" (sample of {run.jobs}, dotted: extrapolated)"
            ax.step(xs, ys, where="post", color=COLOURS[run.tool], linewidth=1.8, label=label)
            if run.sampled and times:
                rate = len(times) / run.wall
                ax.plot(
                    [run.wall, right],
                    [len(times), len(times) + rate * (right - run.wall)],
                    color=COLOURS[run.tool],
                    linestyle=":",
                    linewidth=1.5,
                )
        ax.set_xlim(0, right)
        ax.set_ylim(0, n * 1.05)
        ax.set_title(f"({key}) {SCENARIOS[key][0]}: N = {n} jobs")
        ax.set_xlabel("seconds since the tool started")
        ax.set_ylabel("jobs succeeded")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    packages = ", ".join(
        f"{name} {version(name)}" for name in ("boto3", "botocore", "aiobotocore", "awscli")
    )
    return [
        f"- Machine: {platform.platform()}, {cpu}, {os.cpu_count()} CPUs{memory}",
        f"- Python {platform.python_version()}; {packages}",
    ]


def source_state() -> str:
    """The batchcopy code in the tree: git commit, uncommitted changes, a digest of it."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.rstrip("\n")

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = sorted(
        line[3:] for line in git("status", "--porcelain", "--", "batchcopy").splitlines()
    )
    digest = hashlib.sha256()
    for path in sorted((ROOT / "batchcopy").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    dirty = f" with uncommitted changes to {', '.join(changed)}" if changed else ""
    return f"git {commit}{dirty}; sources sha256 {digest.hexdigest()[:12]}"


def write_results(
    runs: list[Run],
    scenarios: list[str],
    args: argparse.Namespace,
    path: Path,
    started: datetime,
    code: tuple[str, str],
) -> None:
    command = shlex.join(["python", "benchmarks/peers.py", *sys.argv[1:]])
    ns = ", ".join(
        f"({key}) N = {next((r.planned for r in runs if r.scenario == key), '-')}"
        for key in scenarios
    )
    faults = [
        f"- ({key}) {SCENARIOS[key][0]}: `{json.dumps(SCENARIOS[key][3])}`" for key in scenarios
    ]
    regions = ", ".join(TARGET_REGIONS)
    text = [
        "# batchcopy and its peers against the Lightsail emulator",
        "",
        *(["**A `--quick` smoke run: small N, not a measurement.**", ""] if args.quick else []),
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        *machine(),
        f"- batchcopy: {code[0]}",
        *(
            [
                f"- **batchcopy's code changed during the run** (now: {code[1]}): the "
                "in-process tools ran the code as at the start, each scenario's emulator "
                "process the code as at that scenario's start."
            ]
            if code[1] != code[0]
            else []
        ),
        f"- Command (from the project root): `{command}`",
        "",
        f"Jobs: {ns}. Each copies `{SOURCE_REGION}/{SOURCE_SNAPSHOT}` (demo seed) into a "
        f"distinct name, round-robin over {regions}. Every tool starts on a freshly reset "
        "emulator (`python -m batchcopy.emulator --demo`, a separate process on 127.0.0.1).",
        "",
        *table(runs),
        "",
        "## Scenarios (emulator fault settings)",
        "",
        *faults,
        "",
        "## How to read the table",
        "",
        "- **Wall time**: from the tool's start (clients created inside the timing) to its "
        f"last job. The AWS CLI ({args.cli_sample} jobs) and boto3 sequential "
        f"({args.seq_sample} jobs) run a sample: their wall time is the sample's scaled "
        "linearly to N (marked ≈ and *extrapolated*), and their failures are out of the "
        "sample. Every other tool ran all N jobs.",
        "- **Ratio to ideal**: wall time over the time the emulator's limits allow in (b) "
        f"and (c): its token buckets start full, so (N - {len(TARGET_REGIONS)} regions x "
        f"{REGION_BURST}) / ({len(TARGET_REGIONS)} regions x {REGION_RATE} copies/s). "
        "Scenario (a) has no limit in the emulator (only 50 ms latency), so there is no ideal "
        "(`-`): the bound is CPU, two cores shared by client and emulator.",
        "- **Failed jobs**: for the naive tools, calls that still raised after the tool's own "
        "retries (a response lost after the copy was made, retried into 'name already in "
        "use', counts as failed: the tool cannot tell). For batchcopy, results with status "
        "`failed`. Causes are listed below.",
        "- **Duplicate copies**: the emulator's `copies_accepted` counts above 1, summed as "
        "extra copies (the emulator refuses a taken name, so this stays 0 unless a tool "
        "deletes and re-copies).",
        "- **CopySnapshot requests**: every CopySnapshot the emulator saw (`/_emulator/stats`), "
        "in parentheses those it throttled; per job of those run. **Other requests**: "
        "everything else (batchcopy's listings and look-ups).",
        "- **Client CPU**: `time.process_time()` of this process across the run (all threads) "
        "for the in-process tools; for the AWS CLI the finished child processes' user+system "
        "time (`RUSAGE_CHILDREN`). Per job run. The emulator's CPU is not counted.",
        "- Tools: AWS CLI v1, one `aws lightsail copy-snapshot` process per job, in a loop, "
        "default (legacy) retries; boto3 with botocore's default retries (legacy mode, 5 "
        f"attempts), sequential and from {THREADS} threads (connection pool {THREADS}); "
        "aiobotocore with `retries={'mode': 'adaptive'}` (default max attempts, 3), "
        f"{IN_FLIGHT} calls at once under a semaphore and `asyncio.gather`, one client per "
        "region; batchcopy `copy_snapshots(jobs, Settings(endpoint_url=..., "
        f"credentials=..., rate={BATCHCOPY_RATE:g}, max_in_flight={IN_FLIGHT}), "
        "keep_results=True)`, everything else default.",
        "",
        "## Failures by cause, and batchcopy's own account",
        "",
        *failure_notes(runs),
        "",
        "`peers.png`: jobs succeeded over time, one plot per scenario.",
        "",
    ]
    path.write_text("\n".join(text))


async def main_async(args: argparse.Namespace) -> None:
    code = source_state()  # what is imported next is what runs
    import batchcopy.lightsail  # noqa: F401  (imported up front: no tool pays for it)

    logging.getLogger("batchcopy").addHandler(logging.NullHandler())  # failed jobs: the table
    started = datetime.now(UTC)
    overall = time.monotonic() + args.timeout
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        for key in args.scenarios:
            print(f"scenario ({key}) {SCENARIOS[key][0]}", file=sys.stderr)
            runs += await run_scenario(key, args.tools, args, overall, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    code_now = source_state()
    write_results(runs, args.scenarios, args, args.out / "RESULTS.md", started, (code, code_now))
    plot(runs, args.scenarios, args.out / "peers.png")
    print("\n".join(table(runs)))
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'peers.png'}", file=sys.stderr)


def choices(allowed: Any) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        picked = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [item for item in picked if item not in allowed]
        if wrong or not picked:
            raise argparse.ArgumentTypeError(
                f"choose from {', '.join(allowed)} (comma-separated), got {text!r}"
            )
        return picked

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument(
        "--scenarios",
        type=choices(SCENARIOS),
        default=list(SCENARIOS),
        help="comma-separated, from a,b,c (all)",
    )
    parser.add_argument(
        "--tools",
        type=choices(TOOLS),
        default=list(TOOLS),
        help=f"comma-separated, from {','.join(TOOLS)} (all)",
    )
    parser.add_argument("--jobs", type=int, default=0, help="N for every scenario")
    parser.add_argument("--cli-sample", type=int, default=20, help="AWS CLI jobs (20)")
    parser.add_argument("--seq-sample", type=int, default=300, help="boto3 sequential jobs")
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=360.0,
        help="seconds one tool may take in one scenario (360)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1140.0, help="seconds for the whole benchmark (1140)"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and peers.png go")
    args = parser.parse_args()
    if args.quick:
        args.cli_sample, args.seq_sample = min(args.cli_sample, 5), min(args.seq_sample, 40)
        args.run_timeout, args.timeout = min(args.run_timeout, 60), min(args.timeout, 400)
    if min(args.cli_sample, args.seq_sample) < 1 or args.jobs < 0:
        parser.error("--jobs, --cli-sample and --seq-sample must be positive")
    watchdog(args.timeout + 120)  # the last resort: the timeouts below should end it first

    async def bounded() -> None:
        async with asyncio.timeout(args.timeout + 60):
            await main_async(args)

    try:
        asyncio.run(bounded())
    except TimeoutError:
        sys.exit(f"gave up after {args.timeout + 60:.0f} s")


if __name__ == "__main__":
    main()
