"""The documentation a user reads says what the installed CLI does."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def reference_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs/cli_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_real_help() -> None:
    """docs/cli.md is exactly what every command's --help prints (regenerate it with
    python docs/cli_reference.py)."""
    reference = reference_module()
    written = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert written == reference.render(), "docs/cli.md is stale: run python docs/cli_reference.py"


def test_cli_reference_covers_every_command_and_option() -> None:
    """Each command has its section, and every option of `run` appears in it."""
    reference = reference_module()
    written = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    for name in reference.commands():
        assert f"## batchcopy {name}\n" in written
    run_section = written.split("## batchcopy run\n")[1].split("\n## ")[0]
    for option in ("--resume", "--wait", "--metrics-file", "--max-in-flight", "--dry-run"):
        assert option in run_section


def test_readme_names_every_command() -> None:
    """The README mentions every command the CLI has and links the full reference."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in reference_module().commands():
        assert re.search(rf"batchcopy {name}\b", readme), name
    assert "docs/cli.md" in readme


def test_readme_rehearsal_runs_as_written(tmp_path: Path) -> None:
    """The README's rehearsal commands all exit 0 against the emulator they start, with no
    AWS_ENDPOINT_URL_STS set (doctor asks the emulator's STS), and nothing is copied twice."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Rehearse without an AWS account", 1)[1]
    block = section.split("```\n", 2)[1]
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    bin_dir = Path(sys.executable).parent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    start, *commands, stop = lines
    assert start.endswith(" &")
    assert stop == "kill %1"
    emulator = subprocess.Popen(
        shlex.split(
            start.removesuffix("&").replace(".venv/bin/", f"{bin_dir}/").replace("8099", port)
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}", emulator.stderr
        for command in commands:
            if command.startswith("export "):
                env.update(word.split("=", 1) for word in shlex.split(command)[1:])
                continue
            words = shlex.split(command.replace(".venv/bin/", f"{bin_dir}/").replace("8099", port))
            done = subprocess.run(
                words,
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if " doctor " in command:
                assert "arn:aws:iam::123456789012:user/emulator" in done.stdout
        with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=10) as response:
            stats = json.loads(response.read())
        assert sorted(stats["copies_accepted"].values()) == [1, 1, 1, 1]
    finally:
        emulator.terminate()
        emulator.communicate(timeout=10)
