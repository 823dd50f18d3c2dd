"""Merging shard reports: the run's one report, in manifest line order, every job once;
refusals of folders that are not the shards of one run; missing shards; bounded memory."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from batchcopy import copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.jobs import MANIFEST_FIELDS
from batchcopy.manifest import load_manifest
from batchcopy.merge import MergeError, merge_reports
from batchcopy.report import RESULT_COLUMNS
from batchcopy.shards import Shard
from tests.helpers import HEADER, mixed_jobs, read_csv, run_cli, settings_for

SHARDS = 3


def manifest_of(path: Path, count: int = 24) -> Path:
    """mixed_jobs as a CSV file (their lines are the file's), every fourth row fanning out
    to a second region."""
    rows = []
    for job in mixed_jobs(count):
        row = job.to_row()
        if job.line % 4 == 3 and row["target_region"] != "ca-central-1":
            row["target_region"] += ";ca-central-1"
        rows.append(",".join(row[field] for field in MANIFEST_FIELDS[:-1]))
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
async def served() -> AsyncIterator[str]:
    async with running_emulator(Emulator(seed=demo_seed(), faults=FaultConfig())) as url:
        yield url


async def run_shards(url: str, manifest: Path, folder: Path, count: int = SHARDS) -> list[Path]:
    loaded = load_manifest(manifest)
    folders = []
    for index in range(count):
        report_dir = folder / f"shard-{index}"
        await copy_snapshots(
            loaded, settings_for(url), report_dir=report_dir, shard=Shard(index=index, count=count)
        )
        folders.append(report_dir)
    return folders


def order(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(int(r["line"]), r["target_region"]) for r in rows]


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_merged_shards_are_the_single_runs_report_line_for_line(
    served: str, tmp_path: Path
) -> None:
    """Three shards merged: every job once, in manifest line order, with the statuses,
    counts and exit code of one run of the whole manifest; the CSV holds the same rows, and
    the merged folder has its report.html."""
    manifest = manifest_of(tmp_path / "m.csv")
    folders = await run_shards(served, manifest, tmp_path)
    merged = merge_reports(folders, tmp_path / "out")
    async with running_emulator(Emulator(seed=demo_seed(), faults=FaultConfig())) as url:
        single = await copy_snapshots(
            load_manifest(manifest), settings_for(url), report_dir=tmp_path / "single"
        )
    rows = jsonl(tmp_path / "out" / "results.jsonl")
    expected = sorted(jsonl(tmp_path / "single" / "results.jsonl"), key=lambda r: order([r]))
    assert order(rows) == sorted(order(rows))
    assert order(rows) == order(expected)
    assert [r["status"] for r in rows] == [r["status"] for r in expected]
    assert [r["line"] for r in rows] == [
        int(r["line"]) for r in read_csv(tmp_path / "out" / "results.csv")
    ]
    assert list(read_csv(tmp_path / "out" / "results.csv")[0]) == RESULT_COLUMNS
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == single.summary.counts
    assert summary["by_region"] == single.summary.by_region
    assert summary["total"] == single.summary.total == 30
    assert summary["exit_code"] == single.summary.exit_code == merged.exit_code == 0
    assert summary["manifest_sha256"] == single.summary.manifest_sha256
    assert [p["shard"] for p in summary["merged_from"]] == ["0/3", "1/3", "2/3"]
    assert not (tmp_path / "out" / "retry.csv").exists()
    page = (tmp_path / "out" / "report.html").read_text()  # the fleet's one page
    assert summary["run_id"] in page
    timeline = json.loads((tmp_path / "out" / "timeline.json").read_text())  # the shards' own
    ended = {
        region: sum(sum(series[kind]) for kind in ("completed", "failed"))
        for region, series in timeline["regions"].items()
    }
    assert ended == {region: sum(c.values()) for region, c in summary["by_region"].items()}
    assert 'aria-labelledby="completed-t' in page  # the pictures over time
    assert f'<li data-status="total"><b>{summary["total"]}</b> total</li>' in page


async def test_merge_refuses_folders_that_are_not_one_runs_shards(
    served: str, tmp_path: Path
) -> None:
    """Shards of another manifest or another shard count, a shard given twice, a shard
    missing, a whole run's folder: each refused, naming the folders or the shard."""
    folders = await run_shards(served, manifest_of(tmp_path / "m.csv"), tmp_path / "a")
    other = manifest_of(tmp_path / "other.csv", count=12)
    others = await run_shards(served, other, tmp_path / "b")
    fours = await run_shards(served, manifest_of(tmp_path / "m.csv"), tmp_path / "c", count=4)
    single = tmp_path / "single"
    await copy_snapshots(load_manifest(other), settings_for(served), report_dir=single)
    twin = tmp_path / "twin"
    shutil.copytree(folders[1], twin)
    cases = [
        ([*folders[:2], others[2]], "of another manifest"),
        ([*folders[:2], fours[2]], "of another shard count"),
        ([*folders, twin], "shard 1/3 is given twice"),
        (folders[:2], "missing shard 2/3 (of 3)"),
        ([folders[0], folders[2]], "missing shard 1/3"),
        ([*folders, single], "not a shard's report"),
    ]
    for given, said in cases:
        with pytest.raises(MergeError, match=re.escape(said)):
            merge_reports(given, tmp_path / "out")
        assert not (tmp_path / "out").exists()


async def test_allow_missing_reports_the_missing_shards_jobs_not_started(
    served: str, tmp_path: Path
) -> None:
    """--allow-missing: the missing shard's jobs (read from the manifest) are not_started
    rows in line order and in retry.csv; the merge says which shard is missing and exits 1,
    as a run that never sent them."""
    manifest = manifest_of(tmp_path / "m.csv")
    folders = await run_shards(served, manifest, tmp_path)
    gone = json.loads((folders[1] / "summary.json").read_text())["total"]
    result = run_cli(
        "merge", str(folders[0]), str(folders[2]), "-o", str(tmp_path / "out"),
        "--allow-missing", "--manifest", str(manifest), "--json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "shard 1/3 missing" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["missing_shards"] == ["1/3"]
    assert summary["counts"]["not_started"] == gone > 0
    assert summary["total"] == 30
    rows = jsonl(tmp_path / "out" / "results.jsonl")
    assert order(rows) == sorted(order(rows))
    assert len(set(order(rows))) == 30
    retry = read_csv(tmp_path / "out" / "retry.csv")
    assert len(retry) == gone
    assert {r["target_snapshot_name"] for r in retry} == {
        r["target_snapshot_name"] for r in rows if r["status"] == "not_started"
    }
    refused = run_cli("merge", str(folders[0]), str(folders[2]), "-o", str(tmp_path / "o2"))
    assert refused.returncode == 2
    assert "missing shard 1/3" in refused.stderr


async def test_a_manifest_given_refuses_folders_an_earlier_night_left(
    served: str, tmp_path: Path
) -> None:
    """Folders that shards of another manifest left (last night's, when tonight's shards
    refused their folders) are refused by a merge given tonight's --manifest, never merged
    into a report of tonight with exit 0; tonight's own folders merge."""
    last_night = await run_shards(served, manifest_of(tmp_path / "m.csv"), tmp_path / "a")
    tonight = manifest_of(tmp_path / "tonight.csv", count=12)
    refused = run_cli(
        "merge", *map(str, last_night), "-o", str(tmp_path / "out"), "--manifest", str(tonight)
    )
    assert refused.returncode == 2
    assert "is not the manifest the shards ran" in refused.stderr
    assert not (tmp_path / "out").exists()
    folders = await run_shards(served, tonight, tmp_path / "b")
    merged = run_cli(
        "merge", *map(str, folders), "-o", str(tmp_path / "out"), "--manifest", str(tonight)
    )
    assert merged.returncode == 0, merged.stderr


async def test_a_shard_whose_last_run_never_finished_its_report_is_refused(
    served: str, tmp_path: Path
) -> None:
    """A shard folder holding an earlier run's report under a newer run's journal (a run
    started afresh there and killed), or rows and a summary that count other statuses (a
    run killed while writing its report), is refused, saying to resume that shard; never
    merged as finished with the earlier run's exit code."""
    folders = await run_shards(served, manifest_of(tmp_path / "m.csv"), tmp_path / "a")
    journal = folders[2] / "journal.jsonl"
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    header["run_id"] = "20261130T091131Z-2a3021c7"
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(MergeError, match="never finished its report; resume it"):
        merge_reports(folders, tmp_path / "out")
    journal.write_text("\n".join(lines) + "\n")
    summary_file = folders[1] / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["counts"] = {"not_started": summary["total"]}
    summary_file.write_text(json.dumps(summary))
    with pytest.raises(MergeError, match="count other statuses"):
        merge_reports(folders, tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def synthetic_shard(folder: Path, index: int, count: int, lines: range, seed: int) -> None:
    """A shard folder whose rows come in a random (completion) order."""
    folder.mkdir()
    rows = [
        {
            "line": line,
            "source_region": "us-east-1",
            "target_region": "eu-west-1",
            "source_snapshot_name": f"web-{line}",
            "source_resource_name": "",
            "restore_date": "",
            "use_latest_restorable_auto_snapshot": "",
            "target_snapshot_name": f"web-{line}-dr",
            "account": f"{index + 2}" * 12,
            "status": "started",
            "attempts": 1,
            "error_message": "x" * 200,
        }
        for line in lines
    ]
    random.Random(seed).shuffle(rows)
    with (folder / "results.jsonl").open("w") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)
    summary = {
        "manifest": "m.csv",
        "manifest_sha256": "ab" * 32,
        "shard": f"{index}/{count}",
        "assignment_digest": "cd" * 32,
        "total": len(rows),
        "exit_code": 0,
    }
    (folder / "summary.json").write_text(json.dumps(summary))


def test_merge_sorts_rows_far_beyond_what_it_holds_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30,000 rows in completion order, sorted 300 at a time and merged 16 runs at a time:
    the merged rows are in line order, each once, and the memory used stays a fraction of
    the rows' size."""
    import batchcopy.merge

    monkeypatch.setattr(batchcopy.merge, "RUN_ROWS", 300)
    monkeypatch.setattr(batchcopy.merge, "FAN_IN", 16)
    total = 30_000
    folders = []
    for index in range(3):
        folder = tmp_path / f"s{index}"
        synthetic_shard(folder, index, 3, range(2 + index, total + 2, 3), seed=index)
        folders.append(folder)
    size = sum((f / "results.jsonl").stat().st_size for f in folders)
    # The page (report.html) holds up to html_report.MAX_ROWS rows whatever the merge's
    # size: a bound of its own, left out of the merge's here.
    monkeypatch.setattr("batchcopy.merge.html_report_or_warn", lambda directory: None)
    tracemalloc.start()
    try:
        merged = merge_reports(folders, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert merged.summary.total == total
    with (tmp_path / "out" / "results.jsonl").open() as file:
        lines = [json.loads(line)["line"] for line in file]
    assert lines == list(range(2, total + 2))
    with (tmp_path / "out" / "results.csv").open(newline="") as file:
        assert sum(1 for _ in csv.reader(file)) == total + 1
    assert peak < size / 4, (peak, size)


def test_a_folder_whose_rows_do_not_match_its_summary_is_refused(tmp_path: Path) -> None:
    """A shard folder cut short (fewer rows than its summary counts) is not merged."""
    for index in range(2):
        synthetic_shard(tmp_path / f"s{index}", index, 2, range(2 + index, 40, 2), seed=index)
    with (tmp_path / "s1" / "results.jsonl").open("a") as file:
        file.write(json.dumps({"line": 99, "target_region": "eu-west-1", "status": "started"}))
        file.write("\n")
    with pytest.raises(MergeError, match=re.escape("has 20 rows, its summary.json says 19")):
        merge_reports([tmp_path / "s0", tmp_path / "s1"], tmp_path / "out")


def test_a_summary_without_an_exit_code_or_a_row_of_no_status_is_refused(tmp_path: Path) -> None:
    """A shard's summary.json without its exit code, or a row whose status batchcopy has no
    name for, is refused with the file named (not a traceback, no merged report)."""
    for index in range(2):
        synthetic_shard(tmp_path / f"s{index}", index, 2, range(2 + index, 40, 2), seed=index)
    folders = [tmp_path / "s0", tmp_path / "s1"]
    summary = json.loads((folders[1] / "summary.json").read_text())
    (folders[1] / "summary.json").write_text(json.dumps({**summary, "exit_code": None}))
    with pytest.raises(MergeError, match="no exit code or total"):
        merge_reports(folders, tmp_path / "out")
    (folders[1] / "summary.json").write_text(json.dumps(summary))
    rows = (folders[0] / "results.jsonl").read_text().replace('"started"', '"copied"', 1)
    (folders[0] / "results.jsonl").write_text(rows)
    with pytest.raises(MergeError, match="not a row batchcopy writes"):
        merge_reports(folders, tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()
