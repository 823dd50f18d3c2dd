"""Progress as an operator sees it: live bars on a terminal (a real pseudo-terminal here),
plain status lines in CI logs and cron mail, nothing with --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

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
