"""Helpers for end-to-end tests: an emulator subprocess, the CLI, manifest files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

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

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchcopy.emulator", "--demo"],
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


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_manifest(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path
