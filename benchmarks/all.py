"""Every benchmark, one after another: the one command that reproduces every figure.

    python benchmarks/all.py            # about 50 minutes on two cores
    python benchmarks/all.py --quick    # each script's smoke run, about 10 minutes

Runs ``peers.py`` (which writes ``RESULTS.md`` and ``peers.png``, replacing the file),
then ``targets.py``, ``scale.py``, ``accounts.py``, ``emulator_speed.py``,
``throttle_matrix.py`` and ``ratesim_matrix.py``, and appends what each printed to
``RESULTS.md`` under its own heading with its exact command, so the file holds every
figure of one run (and none of the earlier runs' sections). Each script bounds itself;
this one also gives each a hard timeout. Run it on an otherwise idle machine: the figures
are wall times.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (title, script and arguments, arguments added with --quick, hard timeout in seconds)
STEPS = (
    ("batchcopy and its peers", ["peers.py"], ["--quick"], 1500),
    ("Speed targets: engine overhead and adaptive rate", ["targets.py"], ["--quick"], 1000),
    (
        "Scale and start-up",
        ["scale.py"],
        ["--sizes", "10000,100000", "--run-sizes", "10000"],
        1300,
    ),
    (
        "Many accounts in one run",
        ["accounts.py"],
        ["--accounts", "30", "--jobs", "10", "--timeout", "300"],
        1000,
    ),
    ("The emulator's own speed", ["emulator_speed.py"], ["--requests", "1000"], 200),
    (
        "Throttles: batchcopy and botocore's adaptive mode",
        ["throttle_matrix.py", "--timeout", "2000", "--run-timeout", "120"],
        ["--quick"],
        2200,
    ),
    ("The adaptive rate, simulated", ["ratesim_matrix.py"], ["--quick"], 1200),
)
# Steps whose output is Markdown already (the others are put in a text block).
MARKDOWN = {"targets.py", "throttle_matrix.py", "ratesim_matrix.py"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each script's small run")
    args = parser.parse_args()
    results = HERE / "RESULTS.md"
    failed = []
    sections: list[str] = []
    for index, (title, script, quick, timeout) in enumerate(STEPS):
        command = [sys.executable, str(HERE / script[0]), *script[1:]]
        if args.quick:
            command += quick
        shown = shlex.join(["python", f"benchmarks/{script[0]}", *command[2:]])
        print(f"== {shown}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
            )
            output, code = done.stdout, done.returncode
            sys.stderr.write(done.stderr[-2000:])
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout or ""
            output = partial.decode() if isinstance(partial, bytes) else partial
            code = -1
        print(output, flush=True)
        took = time.monotonic() - started
        if code != 0:
            failed.append(f"{shown} (exit {code})")
        if index == 0:
            continue  # peers.py wrote RESULTS.md itself
        body = output.strip() if script[0] in MARKDOWN else f"```text\n{output.strip()}\n```"
        outcome = "" if code == 0 else ": a target missed or the script failed"
        sections += [f"## {title}", "", f"`{shown}` ({took:.0f} s, exit {code}{outcome}):"]
        sections += ["", body, ""]
    with results.open("a", encoding="utf-8") as handle:
        handle.write("\n" + "\n".join(sections))
    print(f"appended to {results}", file=sys.stderr)
    if failed:
        sys.exit("not every benchmark passed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
