"""The documentation a user reads says what the installed CLI does."""

from __future__ import annotations

import csv
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
    outputs, stats = _rehearse("## Rehearse without an AWS account", 0, "8099", tmp_path)
    doctor = next(out for command, out in outputs if " doctor " in command)
    assert "arn:aws:iam::123456789012:user/emulator" in doctor
    assert sorted(stats["copies_accepted"].values()) == [1, 1, 1, 1]


def test_readme_multi_account_rehearsal_runs_as_written(tmp_path: Path) -> None:
    """The README's multi-account rehearsal exits 0: doctor assumes each account's role,
    and the run copies each job once, in its own account, one AssumeRole per account."""
    outputs, stats = _rehearse("### Many accounts in one run", 1, "8098", tmp_path)
    doctor = next(out for command, out in outputs if " doctor " in command)
    assert "OK    account 222222222222: assumed" in doctor
    assert "OK    account 333333333333: assumed" in doctor
    assert sorted(stats["copies_accepted"].values()) == [1, 1, 1]
    assert {key.split("/")[0] for key in stats["copies_accepted"]} == {
        "222222222222",
        "333333333333",
    }
    assert stats["assume_role"] == {"222222222222": 2, "333333333333": 2}  # doctor, then run


def test_readme_prune_rehearsal_runs_as_written(tmp_path: Path) -> None:
    """The README's worked nightly DR prune: the plan deletes nothing; with --yes exactly the
    86 copies the plan named are deleted, once each, and the failed, pending and untagged
    hand-made snapshots stay."""
    outputs, stats = _rehearse("### Retention: `batchcopy prune`", 1, "8097", tmp_path)
    (_, plan), (_, pruned) = outputs
    assert "would delete" in plan
    assert "4816 GB would be deleted" in plan
    assert "4816 GB deleted" in pruned
    with (tmp_path / "pruned" / "results.csv").open() as table:
        rows = list(csv.DictReader(table))
    deleted = {row["name"] for row in rows if row["status"] == "deleted"}
    assert len(deleted) == 86
    assert sorted(stats["deletes_accepted"]) == sorted(f"eu-central-1/{n}" for n in deleted)
    assert set(stats["deletes_accepted"].values()) == {1}
    kept = {row["name"]: row["state"] for row in rows if row["status"] != "deleted"}
    assert "web-1-2026-08-30" not in kept  # untagged: not even a candidate
    assert {"pending", "error"} <= set(kept.values())
    assert "web-1-2026-08-30" not in {key.split("/")[1] for key in stats["deletes_accepted"]}


def _rehearse(
    heading: str, block: int, port_literal: str, tmp_path: Path
) -> tuple[list[tuple[str, str]], dict]:
    """Run the ``block``-th code block under ``heading`` as written (its emulator on a free
    port), each command's (command, stdout); then the emulator's stats."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading, 1)[1]
    text = section.split("```\n")[2 * block + 1]
    lines = [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]
    bin_dir = Path(sys.executable).parent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    start, *commands, stop = lines
    assert start.endswith(" &")
    assert stop == "kill %1"

    def local(command: str) -> str:
        return command.replace(".venv/bin/", f"{bin_dir}/").replace(port_literal, port)

    emulator = subprocess.Popen(
        shlex.split(local(start.removesuffix("&"))),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    outputs: list[tuple[str, str]] = []
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}", emulator.stderr
        for command in commands:
            if command.startswith("export "):
                env.update(word.split("=", 1) for word in shlex.split(command)[1:])
                continue
            done = subprocess.run(
                shlex.split(local(command)),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            outputs.append((command, done.stdout))
        with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=10) as response:
            stats = json.loads(response.read())
    finally:
        emulator.terminate()
        emulator.communicate(timeout=10)
    return outputs, stats


def test_readme_prune_python_example_runs(tmp_path: Path) -> None:
    """The README's prune example in Python runs as written against the emulator of the
    worked example (its URL put in place of the README's): a plan-then-delete by policy
    and scope that deletes web-1's copies only and writes its report folder."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Retention: `batchcopy prune`", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    seed = ROOT / "examples" / "seed-history.json"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "batchcopy.emulator", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        program = "import asyncio\n\nasync def main():\n" + "".join(
            f"    {line}\n" for line in code.replace("http://127.0.0.1:8097", url).splitlines()
        )
        program += "\nasyncio.run(main())\n"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(" 0")  # the exit code it printed
        with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=10) as response:
            stats = json.loads(response.read())
    finally:
        emulator.terminate()
        emulator.communicate(timeout=10)  # closes its stdout too
    deleted = list(stats["deletes_accepted"])
    assert deleted
    assert all(key.startswith("eu-central-1/web-1-") for key in deleted)
    assert (tmp_path / "pruned" / "summary.json").is_file()
