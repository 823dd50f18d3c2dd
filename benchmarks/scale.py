"""How do reading, planning and running scale with the manifest, and how fast does the CLI start?

Every measurement runs in a fresh process, so each peak RSS belongs to one measurement:

1. Manifest streaming. CSV manifests of valid rows (sources in three and targets in four
   regions of botocore's Lightsail list, 50 distinct sources, unique target names) are
   written to a temporary folder. For each size: ``python -m batchcopy validate FILE`` as a
   user runs it (wall time and peak RSS of that process, from ``wait4``), and a dry-run plan
   in a child process: ``load_manifest`` as ``batchcopy plan`` does, then
   ``make_plan(manifest.jobs(), settings)`` against an emulator in the child's own event loop,
   seeded with the sources (no target exists). The issue's targets: at most 150 MB peak RSS
   at 1,000,000 rows, and time linear in rows.
2. Runs. ``copy_snapshots`` (report folder in the temporary folder, ``keep_results=False`` as
   ``batchcopy run`` passes) in a child process, against an emulator with no latency in a
   process of its own (so its state, which grows with every copy, is not counted): wall time,
   jobs/s, peak RSS. Bounded memory means RSS does not grow with the job count.
3. Start-up. ``batchcopy --help`` and ``batchcopy validate examples/manifest.csv`` with the
   virtualenv's ``batchcopy`` script, 10 timed runs each after one warm-up: best and median
   (target: under 0.3 s). Over it, ``python -X importtime`` shows the costliest imports.

Peak RSS is that of the whole measured process: ``ru_maxrss`` from ``wait4`` for the CLI,
and for a child the largest of its phases' peaks, which come from ``/proc/self/status`` (VmHWM,
reset between phases through ``/proc/self/clear_refs``, which resets ``ru_maxrss`` too).

Run it from the project root::

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--run-sizes 10000,100000]
                               [--skip-plan] [--skip-run] [--profile plan] [--timeout 1200]

It always stops by itself: every measurement is a child process with a time limit, the
whole benchmark has a hard timeout after which what is left is skipped, and the emulator
process is terminated on the way out. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import re
import resource
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "examples/manifest.csv"  # relative to ROOT, where every command runs
CHILD = "_child"  # argv[1] of this script when it runs as a measured child
RESULT = "RESULT "  # the prefix of the child's one line of results on stdout

DEFAULT_SIZES = "10000,100000,1000000"
DEFAULT_RUN_SIZES = "10000,100000"
DEFAULT_RESUME_SIZES = "200000"
HARD_TIMEOUT = 20 * 60.0
RUN_BUDGET = 300.0  # a run predicted to take longer is shrunk to fit FALLBACK_BUDGET
FALLBACK_BUDGET = 180.0
STARTUP_RUNS = 10
STARTUP_TARGET = 0.3
RSS_TARGET_MB = 150.0

SOURCE_REGIONS = 3
TARGET_REGIONS = 4
DISTINCT_SOURCES = 50  # the plan caches each source's look-up: keep them few
AUTO_SOURCES = 10  # of those, instances copied from automatic snapshots; the rest manual
AUTO_DATES = ("2026-11-18", "2026-11-19", "2026-11-20")
CREDENTIALS = ("bench", "bench")
RUN_SETTINGS: dict[str, Any] = {
    "rate": 100_000,
    "max_rate": 100_000,  # the cap is a promise: a start above it is refused
    "burst": 1000,
    "max_in_flight": 256,
}


# -- memory ---------------------------------------------------------------------------------


def _status_mb(key: str) -> float | None:
    """A VmHWM/VmRSS line of this process's /proc status, in MB; None without /proc."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def _reset_peak() -> None:
    """Start a new VmHWM from the current RSS (Linux 4.0 and later); harmless elsewhere."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _maxrss_mb(kilobytes_or_bytes: int) -> float:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return kilobytes_or_bytes / (1024**2 if sys.platform == "darwin" else 1024)


# -- the measured children ------------------------------------------------------------------


def _child(kind: str, args: dict[str, Any]) -> None:
    """Measure one thing in this fresh process and print one RESULT line of JSON."""
    import asyncio

    children = {"plan": _child_plan, "run": _child_run, "resume": _child_resume}
    result = asyncio.run(children[kind](args))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # Resetting VmHWM resets the kernel's ru_maxrss as well: the peak is the largest phase's.
    phases = (result["base_mb"], result["load_mb"], result["phase_mb"])
    result["peak_mb"] = max(_maxrss_mb(usage.ru_maxrss), *(p for p in phases if p is not None))
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(RESULT + json.dumps(result), flush=True)


async def _child_plan(args: dict[str, Any]) -> dict[str, Any]:
    import anyio

    import batchcopy.lightsail  # noqa: F401  imported before the baseline, as make_plan would
    from batchcopy.emulator import Emulator, running_emulator
    from batchcopy.manifest import load_manifest
    from batchcopy.plan import make_plan
    from batchcopy.settings import Settings

    seed = json.loads(await anyio.Path(args["seed"]).read_text())
    async with running_emulator(Emulator(seed=seed)) as url:
        settings = Settings(**RUN_SETTINGS, endpoint_url=url, credentials=CREDENTIALS)
        base_mb = _status_mb("VmHWM")
        _reset_peak()
        started = time.perf_counter()
        manifest = load_manifest(args["manifest"])
        load_seconds = time.perf_counter() - started
        load_mb = _status_mb("VmHWM")
        _reset_peak()
        profiler = _profiler(args)
        started = time.perf_counter()
        plan = await make_plan(manifest.jobs(), settings)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args["profile"])
        return {
            "rows": manifest.total,
            "load_seconds": load_seconds,
            "seconds": seconds,
            "base_mb": base_mb,
            "load_mb": load_mb,
            "phase_mb": _status_mb("VmHWM"),
            "planned": plan.total,
            "copies": sum(plan.per_region.values()),
            "unknown_size": plan.unknown_size,
            "problems": len(plan.problems) + plan.more_problems,
            "first_problem": str(plan.problems[0]) if plan.problems else "",
        }


async def _child_run(args: dict[str, Any]) -> dict[str, Any]:
    import batchcopy.lightsail  # noqa: F401  imported before the baseline, as a run would
    from batchcopy.api import copy_snapshots
    from batchcopy.manifest import load_manifest
    from batchcopy.settings import Settings

    settings = Settings(**RUN_SETTINGS, endpoint_url=args["url"], credentials=CREDENTIALS)
    base_mb = _status_mb("VmHWM")
    _reset_peak()
    started = time.perf_counter()
    manifest = load_manifest(args["manifest"])
    load_seconds = time.perf_counter() - started
    load_mb = _status_mb("VmHWM")
    _reset_peak()
    profiler = _profiler(args)
    started = time.perf_counter()
    report = await copy_snapshots(
        manifest, settings, report_dir=args["report_dir"], keep_results=False
    )
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    return {
        "rows": manifest.total,
        "load_seconds": load_seconds,
        "seconds": seconds,
        "base_mb": base_mb,
        "load_mb": load_mb,
        "phase_mb": _status_mb("VmHWM"),
        "counts": {k: v for k, v in report.summary.counts.items() if v},
        "exit_code": report.exit_code,
    }


async def _child_resume(args: dict[str, Any]) -> dict[str, Any]:
    """The journal ``write_journal`` made, opened as a resume opens it, then every earlier
    result read back once, as the report of a resume does."""
    from batchcopy.jobs import Status
    from batchcopy.journal import Journal

    folder = Path(args["folder"])
    base_mb = _status_mb("VmHWM")
    _reset_peak()
    started = time.perf_counter()
    again = Journal.open(folder, manifest="m.csv", manifest_sha256="a" * 64, resume=True)
    load_seconds = time.perf_counter() - started
    load_mb = _status_mb("VmHWM")
    _reset_peak()
    started = time.perf_counter()
    with again.earlier_results() as earlier:
        read = sum(1 for target in earlier if earlier[target].status is Status.STARTED)
    again.close()
    return {
        "rows": read,
        "load_seconds": load_seconds,
        "seconds": time.perf_counter() - started,
        "base_mb": base_mb,
        "load_mb": load_mb,
        "phase_mb": _status_mb("VmHWM"),
    }


def write_journal(folder: Path, jobs: int) -> None:
    """A journal of ``jobs`` finished jobs, written here, so the measured child holds none of
    the memory writing it took."""
    import asyncio

    from batchcopy.jobs import CopyJob, JobResult, Status
    from batchcopy.journal import Journal

    async def write() -> None:
        journal = Journal.open(folder, manifest="m.csv", manifest_sha256="a" * 64, resume=False)
        for i in range(jobs):
            job = CopyJob(
                line=i + 2,
                source_region="us-east-1",
                target_region="eu-west-1",
                source_snapshot_name="src-1",
                target_snapshot_name=f"t-{i}",
            )
            if i % 1000 == 0:
                await journal.intent(job)  # synced, as a run does before each copy
            else:
                # The same record unsynced: a fsync each would time the disk, not the resume.
                journal.append({"type": "intent", "target": job.target, "line": job.line})
            journal.outcome(JobResult(job=job, status=Status.STARTED, attempts=1))
        journal.close()

    asyncio.run(write())


def _profiler(args: dict[str, Any]) -> Any:
    if not args.get("profile"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


# -- processes ------------------------------------------------------------------------------


class OutOfTime(Exception):
    """The benchmark's hard timeout has passed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """A child process that ended (or was killed at its time limit)."""

    command: Sequence[str]
    returncode: int
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str
    timed_out: bool

    def result(self) -> dict[str, Any]:
        """The RESULT line a measuring child printed; RuntimeError if it failed."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(RESULT) and self.returncode == 0:
                parsed: dict[str, Any] = json.loads(line[len(RESULT) :])
                return parsed
        self.check()
        raise RuntimeError(f"{shlex.join(self.command)} printed no results")

    def check(self) -> None:
        if self.timed_out:
            raise OutOfTime(f"{shlex.join(self.command)} was stopped at the time limit")
        if self.returncode != 0:
            tail = "\n".join(self.stderr.splitlines()[-15:])
            raise RuntimeError(
                f"{shlex.join(self.command)} exited {self.returncode}:\n{tail}".rstrip()
            )


class Deadline:
    """The hard timeout of the whole benchmark."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise OutOfTime(f"the hard timeout of {self.seconds:.0f} s has passed")
        return left


def spawn(command: Sequence[str], deadline: Deadline) -> Finished:
    """Run ``command`` from the project root, killed when the deadline passes; its wall
    time and its own peak RSS (``wait4`` reports the usage of that one child)."""
    timeout = deadline.left()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            proc.kill()

        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Finished(
            command=command,
            returncode=proc.returncode,
            seconds=seconds,
            peak_mb=_maxrss_mb(usage.ru_maxrss),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=fired.is_set(),
        )


def measure(kind: str, args: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    """Run this script as a ``kind`` child and return what it measured."""
    command = [sys.executable, str(Path(__file__).resolve()), CHILD, kind, json.dumps(args)]
    return spawn(command, deadline).result()


class EmulatorProcess:
    """``python -m batchcopy.emulator --seed FILE`` on 127.0.0.1, for the runs."""

    def __init__(self, seed: Path) -> None:
        self.command = [sys.executable, "-m", "batchcopy.emulator", "--seed", str(seed)]
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        self._proc = proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, cwd=ROOT)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else b""
        self.url = line.decode().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.__exit__()
            raise RuntimeError(f"the emulator did not print its URL (got {line!r})")
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def usage(self) -> tuple[float, float]:
        """The emulator's CPU seconds and peak RSS in MB so far (zeros without /proc)."""
        assert self._proc is not None
        try:
            stat = Path(f"/proc/{self._proc.pid}/stat").read_text()
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
        except OSError:
            return 0.0, 0.0
        # The command name (field 2) may hold spaces; utime and stime follow it at 14 and 15.
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return cpu, int(match.group(1)) / 1024 if match else 0.0


# -- the manifests --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    region: str
    name: str
    auto: bool  # an instance with automatic snapshots, else a manual instance snapshot


def make_sources() -> list[Source]:
    from batchcopy.facts import lightsail_regions

    regions = lightsail_regions()[:SOURCE_REGIONS]
    return [
        Source(
            region=regions[i % len(regions)],
            name=f"bench-vm-{i:02d}" if i < AUTO_SOURCES else f"bench-snap-{i:02d}",
            auto=i < AUTO_SOURCES,
        )
        for i in range(DISTINCT_SOURCES)
    ]


def target_regions() -> tuple[str, ...]:
    from batchcopy.facts import lightsail_regions

    return lightsail_regions()[SOURCE_REGIONS : SOURCE_REGIONS + TARGET_REGIONS]


def seed_data(sources: Sequence[Source]) -> dict[str, Any]:
    """Every source, so the plan finds them all; no target exists."""
    regions: dict[str, dict[str, Any]] = {}
    for source in sources:
        region = regions.setdefault(
            source.region, {"instances": [], "instanceSnapshots": [], "autoSnapshots": {}}
        )
        if source.auto:
            region["instances"].append({"name": source.name, "sizeInGb": 40})
            region["autoSnapshots"][source.name] = list(AUTO_DATES)
        else:
            region["instanceSnapshots"].append(
                {"name": source.name, "fromInstanceName": f"origin-{source.name}", "sizeInGb": 40}
            )
    return {"regions": regions}


def manifest_lines(rows: int, sources: Sequence[Source], targets: Sequence[str]) -> Iterator[str]:
    """The CSV text: row ``n`` copies source ``n % 50`` into target region ``n % 4``."""
    from batchcopy.jobs import MANIFEST_FIELDS

    yield ",".join(MANIFEST_FIELDS) + "\n"
    for n in range(rows):
        source, target = sources[n % len(sources)], targets[n % len(targets)]
        name = f"bench-{n:07d}"
        if not source.auto:
            yield f"{source.region},{target},{source.name},,,,{name}\n"
        elif n % 2:
            yield f"{source.region},{target},,{source.name},{AUTO_DATES[-1]},,{name}\n"
        else:
            yield f"{source.region},{target},,{source.name},,true,{name}\n"


def write_manifest(path: Path, rows: int, sources: Sequence[Source]) -> None:
    targets = target_regions()
    with path.open("w", encoding="utf-8", newline="") as file:
        batch: list[str] = []
        for line in manifest_lines(rows, sources, targets):
            batch.append(line)
            if len(batch) >= 10_000:
                file.write("".join(batch))
                batch.clear()
        file.write("".join(batch))


# -- the three measurements -----------------------------------------------------------------


def note(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "n/a"


def streaming(sizes: Sequence[int], folder: Path, skip_plan: bool, deadline: Deadline) -> list[str]:
    """Section 1; returns the notes to print after the tables."""
    sources = make_sources()
    seed = folder / "seed.json"
    seed.write_text(json.dumps(seed_data(sources)))
    rows: list[list[str]] = []
    details: list[list[str]] = []
    notes: list[str] = []
    try:
        for size in sizes:
            manifest = folder / f"manifest-{size}.csv"
            if not manifest.exists():
                note(f"writing {manifest.name}")
                write_manifest(manifest, size, sources)
            note(f"batchcopy validate, {size:,} rows")
            command = [sys.executable, "-m", "batchcopy", "validate", str(manifest)]
            validated = spawn(command, deadline)
            validated.check()
            row = [
                f"{size:,}",
                f"{validated.seconds:.2f}",
                rate(size, validated.seconds),
                mb(validated.peak_mb),
            ]
            if skip_plan:
                rows.append([*row, "-", "-", "-"])
                continue
            note(f"plan, {size:,} rows")
            planned = measure("plan", {"manifest": str(manifest), "seed": str(seed)}, deadline)
            if planned["planned"] != size or planned["problems"]:
                notes.append(
                    f"the plan of {size:,} rows counted {planned['planned']:,} jobs and "
                    f"{planned['problems']} problems (first: {planned['first_problem']})"
                )
            rows.append(
                [
                    *row,
                    f"{planned['seconds']:.2f}",
                    rate(size, planned["seconds"]),
                    mb(planned["peak_mb"]),
                ]
            )
            details.append(
                [
                    f"{size:,}",
                    f"{planned['load_seconds']:.2f}",
                    rate(size, planned["load_seconds"]),
                    mb(planned["base_mb"]),
                    mb(planned["load_mb"]),
                    mb(planned["phase_mb"]),
                    f"{planned['cpu_seconds']:.1f}",
                ]
            )
    except OutOfTime as exc:
        notes.append(f"stopped early: {exc}")
    print("Manifest streaming (validate: the CLI process; plan: load_manifest + make_plan)")
    if rows:
        table(
            (
                "rows",
                "validate s",
                "validate rows/s",
                "validate peak MB",
                "plan s",
                "plan rows/s",
                "plan peak MB",
            ),
            rows,
        )
    if details:
        print()
        print("  Plan child by phase (MB are peaks of that phase; base: imports + emulator)")
        table(
            ("rows", "load s", "load rows/s", "base MB", "load MB", "make_plan MB", "CPU s"),
            details,
        )
    return notes


def runs(sizes: Sequence[int], folder: Path, deadline: Deadline) -> list[str]:
    """Section 2; returns the notes to print after the table."""
    sources = make_sources()
    seed = folder / "seed.json"
    seed.write_text(json.dumps(seed_data(sources)))
    rows: list[list[str]] = []
    notes: list[str] = []
    jobs_per_second = 0.0
    try:
        for wanted in sizes:
            size = wanted
            if jobs_per_second and wanted / jobs_per_second > RUN_BUDGET:
                size = max(1000, int(jobs_per_second * FALLBACK_BUDGET) // 1000 * 1000)
                notes.append(
                    f"{wanted:,} jobs would take about {wanted / jobs_per_second:.0f} s at "
                    f"{jobs_per_second:.0f} jobs/s (over {RUN_BUDGET:.0f} s): ran {size:,}, "
                    f"about {FALLBACK_BUDGET:.0f} s, instead"
                )
            manifest = folder / f"manifest-{size}.csv"
            if not manifest.exists():
                note(f"writing {manifest.name}")
                write_manifest(manifest, size, sources)
            note(f"run, {size:,} jobs")
            with EmulatorProcess(seed) as emulator:
                args = {
                    "manifest": str(manifest),
                    "url": emulator.url,
                    "report_dir": str(folder / f"report-{size}"),
                }
                ran = measure("run", args, deadline)
                server_cpu, server_mb = emulator.usage()
            jobs_per_second = size / ran["seconds"]
            if ran["counts"] != {"started": size} or ran["exit_code"] != 0:
                notes.append(f"the {size:,}-job run: {ran['counts']}, exit {ran['exit_code']}")
            rows.append(
                [
                    f"{size:,}",
                    f"{ran['seconds']:.1f}",
                    f"{jobs_per_second:,.0f}",
                    mb(ran["peak_mb"]),
                    mb(ran["base_mb"]),
                    mb(ran["load_mb"]),
                    mb(ran["phase_mb"]),
                    f"{ran['cpu_seconds']:.1f}",
                    f"{server_cpu:.1f}",
                    mb(server_mb),
                ]
            )
    except OutOfTime as exc:
        notes.append(f"stopped early: {exc}")
    print("Runs against the emulator (no latency; copy_snapshots with a report folder)")
    settings = ", ".join(f"{k}={v}" for k, v in RUN_SETTINGS.items())
    print(f"  Settings({settings}); the emulator in its own process")
    if rows:
        table(
            (
                "jobs",
                "wall s",
                "jobs/s",
                "peak MB",
                "base MB",
                "load MB",
                "run MB",
                "CPU s",
                "emulator CPU s",
                "emulator MB",
            ),
            rows,
        )
    return notes


def resumes(sizes: Sequence[int], folder: Path, deadline: Deadline) -> list[str]:
    """Section 2b: a resume's memory is bounded like a run's; returns notes."""
    rows: list[list[str]] = []
    notes: list[str] = []
    try:
        for size in sizes:
            note(f"resume, {size:,} finished jobs")
            where = folder / f"resume-{size}"
            where.mkdir()
            write_journal(where, size)
            got = measure("resume", {"folder": str(where)}, deadline)
            rows.append(
                [
                    f"{size:,}",
                    f"{got['load_seconds']:.1f}",
                    f"{got['seconds']:.1f}",
                    mb(got["peak_mb"]),
                    mb(got["load_mb"]),
                    mb(got["phase_mb"]),
                ]
            )
    except OutOfTime as exc:
        notes.append(f"stopped early: {exc}")
    print("Resumes (a journal of finished jobs opened as --resume does, every result read back)")
    if rows:
        table(("jobs", "open s", "read s", "peak MB", "open MB", "read MB"), rows)
    return notes


def startup(deadline: Deadline) -> list[str]:
    """Section 3; returns the notes to print after the table."""
    script = Path(sys.executable).parent / "batchcopy"
    batchcopy = str(script) if script.exists() else shutil.which("batchcopy") or "batchcopy"
    commands = {"--help": ["--help"], "validate": ["validate", EXAMPLE]}
    rows: list[list[str]] = []
    notes: list[str] = []
    slow: list[list[str]] = []
    try:
        for name, arguments in commands.items():
            note(f"start-up: batchcopy {name}")
            spawn([batchcopy, *arguments], deadline).check()  # warm-up, not counted
            times = []
            for _ in range(STARTUP_RUNS):
                finished = spawn([batchcopy, *arguments], deadline)
                finished.check()
                times.append(finished.seconds)
            best, median = min(times), statistics.median(times)
            verdict = "ok" if median < STARTUP_TARGET else "over"
            rows.append([shlex.join(["batchcopy", *arguments]), f"{best:.3f}", f"{median:.3f}"])
            rows[-1].append(verdict)
            if verdict == "over":
                slow.append(arguments)
    except OutOfTime as exc:
        notes.append(f"stopped early: {exc}")
    print(f"Start-up ({STARTUP_RUNS} runs each after a warm-up; {batchcopy})")
    if rows:
        table(("command", "best s", "median s", f"< {STARTUP_TARGET} s"), rows)
    for arguments in slow:
        try:
            imports(arguments, deadline)
        except OutOfTime as exc:
            notes.append(f"stopped early: {exc}")
    return notes


def imports(arguments: Sequence[str], deadline: Deadline) -> None:
    """The 20 imports with the largest cumulative time, as ``sort -t'|' -k2 -n | tail -20``."""
    command = [sys.executable, "-X", "importtime", "-m", "batchcopy", *arguments]
    finished = spawn(command, deadline)
    finished.check()
    timed = []
    for line in finished.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            timed.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    timed.sort()
    print()
    print(f"  Slowest imports of: {shlex.join(command)}")
    table(
        ("self ms", "cumulative ms", "module"),
        [[f"{s / 1000:.1f}", f"{c / 1000:.1f}", m] for c, s, m in timed[-20:]],
    )


def profile(
    kinds: Sequence[str], plan_size: int, run_size: int, folder: Path, deadline: Deadline
) -> None:
    """One extra child per kind, under cProfile, at the largest size: the costliest functions."""
    sources = make_sources()
    seed = folder / "seed.json"
    seed.write_text(json.dumps(seed_data(sources)))
    for kind in kinds:
        size = run_size if kind == "run" else plan_size
        manifest = folder / f"manifest-{size}.csv"
        if not manifest.exists():
            write_manifest(manifest, size, sources)
        output = folder / f"{kind}-{size}.prof"
        note(f"profiling {kind}, {size:,} rows")
        started = time.perf_counter()
        if kind == "validate":
            command = [sys.executable, "-m", "cProfile", "-o", str(output)]
            spawn([*command, "-m", "batchcopy", "validate", str(manifest)], deadline).check()
        elif kind == "plan":
            measure(
                "plan",
                {"manifest": str(manifest), "seed": str(seed), "profile": str(output)},
                deadline,
            )
        else:
            with EmulatorProcess(seed) as emulator:
                args = {
                    "manifest": str(manifest),
                    "url": emulator.url,
                    "report_dir": str(folder / f"report-profile-{size}"),
                    "profile": str(output),
                }
                measure("run", args, deadline)
        seconds = time.perf_counter() - started
        print()
        print(f"Profile of {kind} at {size:,} rows (cProfile; {seconds:.0f} s with its overhead)")
        stats = pstats.Stats(str(output))
        entries = stats.stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
        total = max(stats.total_tt, 1e-9)
        for title, index in (("by own time", 2), ("by cumulative time", 3)):
            ranked = sorted(entries.items(), key=lambda item: item[1][index], reverse=True)
            print(f"  {title} (of {total:.1f} s profiled)")
            table(
                ("calls", "own s", "cum s", "own %", "function"),
                [
                    [f"{nc:,}", f"{tt:.2f}", f"{ct:.2f}", f"{100 * tt / total:.0f}", _where(key)]
                    for key, (_, nc, tt, ct, _) in ranked[:18]
                ],
            )


def _where(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name  # a built-in
    for prefix in (str(ROOT) + "/", *(p + "/" for p in sys.path if p.endswith("-packages"))):
        file = file.removeprefix(prefix)
    return f"{file}:{line}({name})"


def sizes_option(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of counts: {text}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"give counts of at least 1: {text}")
    return sizes


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == CHILD:
        _child(sys.argv[2], json.loads(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=sizes_option, default=DEFAULT_SIZES, help=f"rows ({DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--run-sizes",
        type=sizes_option,
        default=DEFAULT_RUN_SIZES,
        help=f"jobs to run ({DEFAULT_RUN_SIZES})",
    )
    parser.add_argument("--skip-run", action="store_true", help="no runs (section 2)")
    parser.add_argument(
        "--resume-sizes",
        type=sizes_option,
        default=DEFAULT_RESUME_SIZES,
        help=f"finished jobs in the resumed journal ({DEFAULT_RESUME_SIZES})",
    )
    parser.add_argument("--skip-plan", action="store_true", help="validate only in section 1")
    parser.add_argument(
        "--profile",
        type=lambda text: [k for k in text.split(",") if k],
        default=[],
        help="also profile validate, plan and/or run at the largest size (comma-separated)",
    )
    parser.add_argument(
        "--timeout", type=float, default=HARD_TIMEOUT, help="hard timeout, seconds (1200)"
    )
    args = parser.parse_args()
    if isinstance(args.sizes, str):
        args.sizes = sizes_option(args.sizes)
    if isinstance(args.run_sizes, str):
        args.run_sizes = sizes_option(args.run_sizes)
    if isinstance(args.resume_sizes, str):
        args.resume_sizes = sizes_option(args.resume_sizes)
    if unknown := set(args.profile) - {"validate", "plan", "run"}:
        parser.error(f"--profile takes validate, plan and run, not {', '.join(sorted(unknown))}")

    deadline = Deadline(args.timeout)
    print(f"machine:  {platform.platform()}, Python {platform.python_version()}, ", end="")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"code:     {_code_version()}")
    print(f"limits:   hard timeout {args.timeout:.0f} s; targets: peak RSS <= ", end="")
    print(f"{RSS_TARGET_MB:.0f} MB at 1,000,000 rows, start-up < {STARTUP_TARGET} s")
    print(flush=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="batchcopy-scale-") as temporary:
        folder = Path(temporary)
        notes += streaming(args.sizes, folder, args.skip_plan, deadline)
        print(flush=True)
        if not args.skip_run:
            notes += runs(args.run_sizes, folder, deadline)
            print(flush=True)
            notes += resumes(args.resume_sizes, folder, deadline)
            print(flush=True)
        notes += startup(deadline)
        try:
            if args.profile:
                profile(args.profile, max(args.sizes), max(args.run_sizes), folder, deadline)
        except OutOfTime as exc:
            notes.append(f"stopped early: {exc}")
    if notes:
        print()
        for text in notes:
            print(f"note: {text}")


def _code_version() -> str:
    """Which batchcopy was measured: its folder and, in a git checkout, the commit."""
    import batchcopy

    where = str(Path(batchcopy.__file__).parent)
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "batchcopy"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return where
    return f"{where} at {head}" + (" with uncommitted changes to batchcopy/" if dirty else "")


if __name__ == "__main__":
    main()
