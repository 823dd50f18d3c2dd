"""Three shard processes at once against one emulator with throttling, 5xx and lost
answers, over many accounts and regions: each lane called by one shard only, the merged
report the same as one run's, every target copied once; a shard killed and resumed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchcopy.manifest import load_manifest
from batchcopy.shards import assignment_of
from tests.helpers import HEADER, EmulatorProcess, run_cli
from tests.test_accounts import CLIENTS, DENIED, ROLE, fleet_seed

SHARDS = 3
REGIONS = ("eu-west-1", "ap-south-1", "us-west-2")
FAULTS = {"seed": 5, "error_rate": 0.1, "drop_after_rate": 0.1, "copy_rate": 5, "copy_burst": 1}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """Five client accounts (the last lets no role be assumed), each account's requests
    throttled per region, with 5xx errors and answers lost after the copy is made."""
    folder = tmp_path_factory.mktemp("fleet")
    (folder / "seed.json").write_text(json.dumps(fleet_seed(CLIENTS)))
    (folder / "faults.json").write_text(json.dumps(FAULTS))
    process = EmulatorProcess(
        "--seed", str(folder / "seed.json"), "--faults", str(folder / "faults.json")
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def emulator(fleet: EmulatorProcess) -> EmulatorProcess:
    fleet.control("POST", "reset")
    return fleet


def manifest_of(path: Path) -> Path:
    """Four snapshots per account, each row copying into three regions: 15 lanes."""
    rows = [
        f"us-east-1,{';'.join(REGIONS)},web-{i},,,,web-{i}-dr,{account}"
        for account in CLIENTS
        for i in range(4)
    ]
    path.write_text(f"{HEADER.strip()},account\n" + "\n".join(rows) + "\n")
    return path


def start_shard(
    manifest: Path,
    url: str,
    index: int,
    report: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchcopy",
            "run",
            str(manifest),
            "--shard",
            f"{index}/{SHARDS}",
            "--endpoint-url",
            url,
            "--role-name",
            ROLE,
            "--quiet",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def rows_of(folder: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return sorted(rows, key=lambda r: (r["line"], r["target_region"], r.get("account", "")))


def statuses(rows: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    return [(r["line"], r["target_region"], r["account"], r["status"]) for r in rows]


def test_three_shards_at_once_merge_into_the_single_runs_report(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """Each (account, target region) is called by its own shard only; the merged report
    has one run's statuses line for line, and every target was copied exactly once."""
    manifest = manifest_of(tmp_path / "m.csv")
    folders = [tmp_path / f"shard-{i}" for i in range(SHARDS)]
    shards = [
        start_shard(manifest, emulator.url, i, folder, "--report-dir", str(folder))
        for i, folder in enumerate(folders)
    ]
    assignment = assignment_of(load_manifest(manifest), SHARDS)
    for index, shard in enumerate(shards):
        _, err = shard.communicate(timeout=120)
        denied = any(lane.startswith(DENIED) for lane in assignment.lanes_in(index))
        assert shard.returncode == (1 if denied else 0), err  # the denied account's rows fail
    stats = emulator.stats()
    assert len(assignment.shard_of) == 15
    for lane, index in assignment.shard_of.items():
        # The denied account's lanes never reach Lightsail: no role, no request.
        called = [] if lane.startswith(DENIED) else [f"batchcopy-shard/{index}-{SHARDS}"]
        assert stats["clients"].get(lane, []) == called, lane
    accepted = stats["copies_accepted"]
    assert len(accepted) == 4 * 4 * 3
    assert set(accepted.values()) == {1}
    seen = [n for actions in stats["requests"].values() for c in actions.values() for n in c]
    assert {"throttled", "error", "dropped"} <= set(seen)  # the faults were there

    merged = run_cli("merge", *map(str, folders), "-o", str(tmp_path / "out"))
    assert merged.returncode == 1, merged.stderr

    emulator.control("POST", "reset")
    single = run_cli(
        "run", str(manifest), "--report-dir", str(tmp_path / "single"),
        "--endpoint-url", emulator.url, "--role-name", ROLE, "--quiet",
    )  # fmt: skip
    assert single.returncode == 1, single.stderr
    one = rows_of(tmp_path / "single")
    out = rows_of(tmp_path / "out")
    assert statuses(out) == statuses(one)
    assert len(out) == 60
    assert {r["status"] for r in out if r["account"] == DENIED} == {"failed"}
    assert {r["status"] for r in out if r["account"] != DENIED} == {"started"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    alone = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert summary["counts"] == alone["counts"]
    assert summary["exit_code"] == alone["exit_code"] == 1


def test_a_shard_killed_and_resumed_merges_into_the_whole_report(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """kill -9 of one shard mid-run, then --resume of that shard alone: the merge has
    every job once, and no target was copied twice."""
    manifest = manifest_of(tmp_path / "m.csv")
    folders = [tmp_path / f"shard-{i}" for i in range(SHARDS)]
    shards = [
        start_shard(
            manifest,
            emulator.url,
            i,
            folder,
            "--report-dir",
            str(folder),
            env={"BATCHCOPY_TEST_CRASH_AT": "after-intent:5"} if i == 1 else None,
        )
        for i, folder in enumerate(folders)
    ]
    codes = [shard.communicate(timeout=120) and shard.returncode for shard in shards]
    assert codes[1] == -signal.SIGKILL
    assert not (folders[1] / "summary.json").exists()
    refused = run_cli("merge", *map(str, folders), "-o", str(tmp_path / "early"))
    assert refused.returncode == 2
    assert "summary.json: no such file" in refused.stderr
    resumed = start_shard(manifest, emulator.url, 1, folders[1], "--resume", str(folders[1]))
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode in (0, 1), err
    merged = run_cli("merge", *map(str, folders), "-o", str(tmp_path / "out"))
    assert merged.returncode == 1, merged.stderr
    out = rows_of(tmp_path / "out")
    assert len(out) == len({(r["line"], r["target_region"]) for r in out}) == 60
    assert {r["status"] for r in out if r["account"] != DENIED} == {"started"}
    accepted = emulator.stats()["copies_accepted"]
    assert len(accepted) == 48
    assert set(accepted.values()) == {1}
