"""Progress as an operator sees it: live bars on a terminal (a real pseudo-terminal here),
plain status lines in CI logs and cron mail, nothing with --quiet."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EmulatorProcess, write_manifest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[25];[0-9;]+)m")
ROWS = [f"us-east-1,eu-west-1,nyc-web-1-2026-11-20,,,,fast-{i}" for i in range(20)] + [
    f"us-east-1,eu-west-2,nyc-web-1-2026-11-20,,,,slow-{i}" for i in range(20)
]


def on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal 160 columns wide; return its
    exit code and everything it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchcopy", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
    )
    os.close(slave)
    output = bytearray()
    give_up = time.monotonic() + 90
    try:
        while time.monotonic() < give_up:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other end is closed: the process is done
                break
            if not data:
                break
            output += data
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=30), output.decode("utf-8", "replace")


def terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return {**env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50", **extra}


def throttled_run(live: EmulatorProcess, tmp_path: Path) -> list[str]:
    """A run over two regions, one of which throttles: arguments for the CLI."""
    live.control("POST", "config", {"regions": {"eu-west-2": {"copy_rate": 10, "copy_burst": 2}}})
    manifest = write_manifest(tmp_path / "jobs.csv", ROWS)
    report = tmp_path / "report"
    return [
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--rate",
        "40",
        "--report-dir",
        str(report),
    ]


def test_terminal_shows_a_bar_per_region_with_rate_and_throttles(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """On a terminal each target region gets a bar with done/total, jobs/s, its current
    request rate and throttles seen, and there is an overall bar; in colour."""
    code, screen = on_terminal(throttled_run(live, tmp_path), terminal_env(), tmp_path)
    assert code == 0, screen
    assert COLOUR.search(screen)
    text = ANSI.sub("", screen)
    rows = [line for line in text.splitlines() if "eu-west-2" in line and "req/s" in line]
    assert rows, text
    assert re.search(r"20/20 .*jobs/s .*req/s .*[1-9]\d* throttled", rows[-1]), rows[-1]
    assert re.search(r"all .*40/40 .*jobs/s .*0 failed", text)
    assert "batchcopy: " not in text.split("jobs in")[0]  # no plain status lines as well


def test_no_color_is_honoured(live: EmulatorProcess, tmp_path: Path) -> None:
    """With NO_COLOR set the live display and the summary carry no colour codes."""
    code, screen = on_terminal(throttled_run(live, tmp_path), terminal_env(NO_COLOR="1"), tmp_path)
    assert code == 0, screen
    assert "40/40" in screen
    assert not COLOUR.search(screen), repr(COLOUR.search(screen))


def test_quiet_terminal_shows_only_the_summary(live: EmulatorProcess, tmp_path: Path) -> None:
    """--quiet turns the live display off; the summary table still ends the run."""
    args = [*throttled_run(live, tmp_path), "--quiet"]
    code, screen = on_terminal(args, terminal_env(), tmp_path)
    assert code == 0, screen
    assert "req/s" not in screen
    assert "40 jobs in" in screen


def _progress_until_first_status(
    live: EmulatorProcess, tmp_path: Path, log_format: str
) -> tuple[dict[str, Any], list[str], int]:
    """A --wait run whose copies take a minute, into a region that throttles, plus two jobs
    that fail at once: the first status line (as fields), every stderr line, the exit code
    after Ctrl-C."""
    live.control(
        "POST",
        "config",
        {"operation_seconds": 60, "regions": {"eu-west-2": {"copy_rate": 10, "copy_burst": 2}}},
    )
    rows = [f"us-east-1,eu-west-2,nyc-web-1-2026-11-20,,,,slow-{i}" for i in range(12)]
    rows += [f"us-east-1,eu-west-1,no-such-snapshot,,,,missing-{i}" for i in range(2)]
    args = [
        "run",
        str(write_manifest(tmp_path / "jobs.csv", rows)),
        "--endpoint-url",
        live.url,
        "--rate",
        "40",
        "--wait",
        "--report-dir",
        str(tmp_path / "report"),
        "--log-format",
        log_format,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchcopy", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    status: dict[str, Any] = {}
    try:
        for line in proc.stderr:  # the first status line comes after five seconds
            lines.append(line)
            status = _status(line, log_format)
            if status:
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return status, lines + rest.splitlines(keepends=True), proc.returncode


def _status(line: str, log_format: str) -> dict[str, Any]:
    """The fields of a status line, or {} for any other line."""
    if log_format == "json":
        record = json.loads(line)
        return record if record["logger"] == "batchcopy.progress" else {}
    found = re.match(
        r"batchcopy: (?P<done>\d+) of (?P<total>\d+) done, (?P<sent>\d+) sent, "
        r"(?P<accepted>\d+) accepted(?: \((?P<copying>\d+) copying\))?, (?P<failed>\d+) failed, "
        r"(?P<throttled>\d+) throttled, [\d.]+ jobs/s, ETA (?P<eta>\S+)$",
        line.strip(),
    )
    if found is None:
        return {}
    fields: dict[str, Any] = {k: int(v or 0) for k, v in found.groupdict().items() if k != "eta"}
    fields["eta_seconds"] = None if found["eta"] in ("--:--", "stopping") else found["eta"]
    fields["stopping"] = found["eta"] == "stopping"
    return fields


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_status_shows_sent_accepted_and_throttles_before_any_copy_finishes(
    live: EmulatorProcess, tmp_path: Path, log_format: str
) -> None:
    """Under --wait, status lines count requests sent, copies accepted and being followed,
    and throttles as they happen, while no copy has finished; with only followed copies
    left the ETA is --:--, not seconds. With JSON logs every stderr line is a JSON record."""
    status, lines, code = _progress_until_first_status(live, tmp_path, log_format)
    assert code == 130, "".join(lines)
    assert status, "".join(lines)
    assert (status["done"], status["failed"], status["total"]) == (2, 2, 14)
    assert status["throttled"] > 0
    assert status["sent"] > status["accepted"] >= status["copying"] > 0
    assert status["copying"] * 2 >= status["total"] - status["done"]
    assert status["eta_seconds"] is None
    assert not status["stopping"]
    last = next(f for f in (_status(line, log_format) for line in reversed(lines)) if f)
    assert last["stopping"]  # after Ctrl-C: no time left to promise, the run is stopping
    assert last["eta_seconds"] is None
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # each line is one JSON record
        assert any("stopping" in r["message"] and r["level"] == "warning" for r in records)
        assert status["regions"]["eu-west-2"]["throttled"] == status["throttled"]
