"""The emulator as a program: its entry points, seed and fault files, and a real AWS CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SMALL_SEED


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchcopy.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    return proc, first


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[str]:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SMALL_SEED))
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"seed": 3, "page_size": 1}))
    proc, url = start("--seed", str(seed), "--faults", str(faults))
    try:
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # also closes the pipes


def aws(url: str, region: str, *args: str) -> dict:
    """Run the real AWS CLI against the emulator and return its JSON output."""
    exe = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    assert exe, "the awscli package is part of the test extras"
    env = {**os.environ, "AWS_DEFAULT_REGION": region, "AWS_PAGER": ""}
    done = subprocess.run(
        [exe, "lightsail", *args, "--endpoint-url", url, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_aws_cli_copies_follows_and_lists(seeded: str) -> None:
    """The AWS CLI runs copy-snapshot, get-operation and get-instance-snapshots against it."""
    assert seeded.startswith("http://127.0.0.1:")
    copied = aws(
        seeded,
        "eu-west-1",
        "copy-snapshot",
        "--source-region",
        "us-east-1",
        "--source-snapshot-name",
        "web-1-snap",
        "--target-snapshot-name",
        "cli-copy",
    )
    operation = copied["operations"][0]
    assert (operation["status"], operation["operationType"]) == ("Started", "CopySnapshot")
    followed = aws(seeded, "eu-west-1", "get-operation", "--operation-id", operation["id"])
    assert followed["operation"]["id"] == operation["id"]
    aws(
        seeded,
        "eu-west-1",
        "copy-snapshot",
        "--source-region",
        "us-east-1",
        "--source-resource-name",
        "web-1",
        "--restore-date",
        "2026-11-19",
        "--target-snapshot-name",
        "cli-auto",
    )
    # page_size is 1, so this also proves the CLI's paginator follows pageToken.
    listed = aws(seeded, "eu-west-1", "get-instance-snapshots")
    assert [s["name"] for s in listed["instanceSnapshots"]] == ["cli-auto", "cli-copy"]


def test_first_line_is_the_url_and_signals_stop_it_cleanly() -> None:
    """Both entry points print the URL first and exit 0 on SIGINT and SIGTERM."""
    for signum, command in ((signal.SIGINT, "module"), (signal.SIGTERM, "script")):
        if command == "module":
            proc, url = start("--demo", "--port", "0")
        else:
            exe = shutil.which("batchcopy", path=os.path.dirname(sys.executable))
            assert exe
            proc = subprocess.Popen(
                [exe, "emulator", "--demo"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{", "not valid JSON"),
        ('{"regions": {"us-east-1": {"instanceSnapshots": [{}]}}}', "instanceSnapshots[0].name"),
    ],
)
def test_bad_seed_file_exits_2_naming_file_and_place(
    tmp_path: Path, content: str, words: str
) -> None:
    """A broken seed file stops start-up with exit 2 and a message naming the file and place."""
    seed = tmp_path / "bad-seed.json"
    seed.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "batchcopy.emulator", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "bad-seed.json" in done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_fault_file_exits_2(tmp_path: Path) -> None:
    """A fault file with an unknown key is refused at start-up."""
    faults = tmp_path / "faults.json"
    faults.write_text('{"latency": 5}')
    done = subprocess.run(
        [sys.executable, "-m", "batchcopy.emulator", "--faults", str(faults)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, "latency: unknown setting" in done.stderr) == (2, True)


def _entry_point(how: str) -> list[str]:
    """The command line of one of the emulator's two entry points."""
    if how == "module":
        return [sys.executable, "-m", "batchcopy.emulator"]
    exe = shutil.which("batchcopy", path=os.path.dirname(sys.executable))
    assert exe
    return [exe, "emulator"]


@pytest.mark.parametrize("how", ["module", "script"])
def test_a_port_in_use_exits_2_with_one_line(how: str) -> None:
    """A port another program listens on stops start-up at once: one line naming host:port
    and the reason, exit 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*_entry_point(how), "--demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no URL: nothing listens
    assert done.stderr.splitlines() == [
        f"batchcopy emulator: cannot listen on 127.0.0.1:{port}: address already in use"
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        # 192.0.2.0/24 is reserved for documentation: no host has it, so nothing can bind it.
        (["--host", "192.0.2.1", "--port", "8099"], "192.0.2.1:8099: cannot assign"),
        (["--port", "70000"], "65535"),
    ],
    ids=["foreign address", "port out of range"],
)
def test_an_address_that_cannot_be_bound_exits_2(args: list[str], words: str) -> None:
    """An address of no interface here, or a port out of range: exit 2 with the reason."""
    done = subprocess.run(
        [*_entry_point("module"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert words in done.stderr.lower().replace("\n", " ")
    assert "Traceback" not in done.stderr


def test_an_ipv6_address_gives_a_usable_url() -> None:
    """--host ::1 prints the URL with the address in brackets, as a URL needs."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    proc, url = start("--host", "::1")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert re.fullmatch(r"http://\[::1\]:\d+", url), url
