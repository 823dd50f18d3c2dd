"""Helpers for end-to-end tests: an emulator subprocess, the CLI, manifest files."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from batchcopy import CopyJob, Report, RetryPolicy, Settings, copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator

COLUMNS = [
    "source_region",
    "target_region",
    "source_snapshot_name",
    "source_resource_name",
    "restore_date",
    "use_latest_restorable_auto_snapshot",
    "target_snapshot_name",
]
HEADER = ",".join(COLUMNS) + "\n"
GOOD_ROWS = [
    "us-east-1,eu-west-1,nyc-api-1-2026-11-20,,,,api-1-ireland",
    "us-east-1,ap-south-1,nyc-web-data-2026-11-20,,,,web-data-mumbai",
    "us-east-1,us-west-2,,nyc-web-1,2026-11-19,,web-1-auto",
    "eu-central-1,us-west-2,,fra-web-1,,true,fra-web-1-latest",
    "us-east-1,eu-west-1,,nyc-shop-1,2026-11-18,,shop-1-auto",
]


class EmulatorProcess:
    """An emulator subprocess and its control API."""

    def __init__(self, *args: str) -> None:
        """Serve the demo data, or what ``args`` (the emulator's options) say."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchcopy.emulator", *(args or ("--demo",))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> Any:
        return self.control("GET", "stats")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchcopy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_manifest(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


# -- in-process runs against the emulator ---------------------------------------------------


def settings_for(url: str, **overrides: Any) -> Settings:
    """Fast settings: a generous rate, short zero-ish backoff, short read timeout."""
    base = Settings(
        rate=1000,
        burst=1000,
        max_in_flight=8,
        endpoint_url=url,
        credentials=("AKIDTEST", "test-secret"),
        read_timeout=2,
        retry=RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=60, max_attempts=50),
    )
    return dataclasses.replace(base, **overrides)


def manual(
    line: int, target_region: str, name: str, source: str = "nyc-web-1-2026-11-20"
) -> CopyJob:
    return CopyJob(
        line=line,
        source_region="us-east-1",
        target_region=target_region,
        source_snapshot_name=source,
        target_snapshot_name=name,
    )


def mixed_jobs(count: int = 24) -> list[CopyJob]:
    """Manual instance and disk copies and automatic copies into three regions."""
    regions = ("eu-west-1", "ap-south-1", "us-west-2")
    jobs = []
    for i in range(count):
        region = regions[i % 3]
        if i % 4 == 0:
            job = CopyJob(
                line=i + 2,
                source_region="us-east-1",
                target_region=region,
                source_resource_name="nyc-web-1",
                restore_date="2026-11-19",
                target_snapshot_name=f"auto-{i}",
            )
        elif i % 4 == 1:
            job = CopyJob(
                line=i + 2,
                source_region="eu-central-1",
                target_region=region,
                source_resource_name="fra-web-1",
                use_latest=True,
                target_snapshot_name=f"latest-{i}",
            )
        elif i % 4 == 2:
            job = manual(i + 2, region, f"disk-{i}", source="nyc-web-data-2026-11-20")
        else:
            job = manual(i + 2, region, f"inst-{i}")
        jobs.append(job)
    return jobs


async def run(
    faults: dict[str, Any], jobs: list[CopyJob], **overrides: Any
) -> tuple[Any, Emulator]:
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, **overrides))
    return report, emulator


def assert_each_target_copied_once(report: Report, emulator: Emulator) -> None:
    """The two promises: every job has exactly one result; no target was copied twice."""
    assert len(report.results) == len({r.job.target for r in report.results})
    assert all(count == 1 for count in emulator.stats.copies_accepted.values())
