"""--metrics-file end to end: `batchcopy run` against the emulator leaves a Prometheus file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batchcopy.jobs import Status
from tests.helpers import GOOD_ROWS, EmulatorProcess, run_cli, write_manifest

FAST = ["--rate", "200", "--burst", "50", "--quiet"]
MISSING_SOURCE = "us-east-1,eu-west-1,does-not-exist,,,,orphan"
SINGLE = (
    "batchcopy_run_duration_seconds",
    "batchcopy_copy_requests",
    "batchcopy_throttled_requests",
    "batchcopy_reconciled_jobs",
    "batchcopy_tag_failures",
    "batchcopy_exit_code",
    "batchcopy_last_run_timestamp_seconds",
    "batchcopy_last_success_timestamp_seconds",
)


def read_metrics(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each metric's samples, keyed by their sorted labels; every metric must have HELP."""
    metrics: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.documentation, family.name
        assert family.type == "gauge", family.name
        metrics[family.name] = {
            tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
        }
    return metrics


def value(metrics: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return metrics[name][()]


def run(live: EmulatorProcess, tmp_path: Path, rows: list[str], *extra: str) -> Any:
    """Run the manifest into a fresh report folder; the completed process and summary.json."""
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}"
    done = run_cli(
        "run",
        str(write_manifest(tmp_path / "m.csv", rows)),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(report),
        *FAST,
        *extra,
    )
    summary = json.loads((report / "summary.json").read_text())
    return done, summary


def test_metrics_file_matches_the_report(live: EmulatorProcess, tmp_path: Path) -> None:
    """The metrics file holds the report's counts, per status and region, and its totals."""
    prom = tmp_path / "batchcopy.prom"
    done, summary = run(live, tmp_path, GOOD_ROWS, "--metrics-file", str(prom))
    assert done.returncode == 0, done.stderr
    metrics = read_metrics(prom)
    assert metrics["batchcopy_jobs"] == {
        (("status", status.value),): summary["counts"][status.value] for status in Status
    }
    assert set(summary["by_region"]) == {"eu-west-1", "ap-south-1", "us-west-2"}
    for region, counts in summary["by_region"].items():
        for status in Status:
            labels = (("status", status.value), ("target_region", region))
            assert metrics["batchcopy_region_jobs"][labels] == counts.get(status.value, 0)
    assert metrics["batchcopy_region_copy_rate"] == {
        (("target_region", region),): rate for region, rate in summary["rates"].items()
    }
    assert value(metrics, "batchcopy_copy_requests") == summary["attempts"]
    assert value(metrics, "batchcopy_throttled_requests") == summary["throttles"]
    assert value(metrics, "batchcopy_reconciled_jobs") == summary["reconciled"]
    assert value(metrics, "batchcopy_tag_failures") == summary["tag_failures"]
    assert value(metrics, "batchcopy_exit_code") == 0
    duration = value(metrics, "batchcopy_run_duration_seconds")
    assert duration == pytest.approx(summary["duration"], abs=0.002)
    ended = value(metrics, "batchcopy_last_run_timestamp_seconds")
    assert ended == pytest.approx(summary["finished_at"], abs=0.002)
    assert value(metrics, "batchcopy_last_success_timestamp_seconds") == ended
    assert set(SINGLE) <= set(metrics)
    assert [p.name for p in tmp_path.glob("batchcopy.prom*")] == ["batchcopy.prom"]


def test_failed_run_keeps_the_last_success_time(live: EmulatorProcess, tmp_path: Path) -> None:
    """A run that exits 1 reports its exit code and failures but keeps the last success time."""
    prom = tmp_path / "batchcopy.prom"
    first, _ = run(live, tmp_path, GOOD_ROWS[:1], "--metrics-file", str(prom))
    assert first.returncode == 0, first.stderr
    succeeded_at = value(read_metrics(prom), "batchcopy_last_success_timestamp_seconds")

    second, summary = run(live, tmp_path, [MISSING_SOURCE], "--metrics-file", str(prom))
    assert second.returncode == 1, second.stderr
    metrics = read_metrics(prom)
    assert value(metrics, "batchcopy_exit_code") == 1
    assert metrics["batchcopy_jobs"][(("status", "failed"),)] == 1
    assert value(metrics, "batchcopy_last_success_timestamp_seconds") == succeeded_at
    ended = value(metrics, "batchcopy_last_run_timestamp_seconds")
    assert ended == pytest.approx(summary["finished_at"], abs=0.002)


def test_unreadable_old_file_is_replaced(live: EmulatorProcess, tmp_path: Path) -> None:
    """An earlier file that is not Prometheus text is replaced, with 0 as the last success."""
    prom = tmp_path / "batchcopy.prom"
    prom.write_text("not metrics at all\n")
    done, _ = run(live, tmp_path, [MISSING_SOURCE], "--metrics-file", str(prom))
    assert done.returncode == 1, done.stderr
    assert "last-success" in done.stderr
    metrics = read_metrics(prom)
    assert value(metrics, "batchcopy_last_success_timestamp_seconds") == 0
    assert value(metrics, "batchcopy_exit_code") == 1


def test_interrupted_run_still_writes_metrics(live: EmulatorProcess, tmp_path: Path) -> None:
    """A run stopped by SIGTERM writes the metrics file with exit code 143 and its counts."""
    live.control(
        "POST", "config", {"hang_rate": 1, "hang_seconds": 20, "actions": ["CopySnapshot"]}
    )
    prom = tmp_path / "batchcopy.prom"
    report = tmp_path / "r"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchcopy",
            "run",
            str(write_manifest(tmp_path / "m.csv", GOOD_ROWS)),
            "--endpoint-url",
            live.url,
            "--report-dir",
            str(report),
            "--shutdown-grace",
            "0",
            "--metrics-file",
            str(prom),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Every copy hangs, so the run is still going once the journal records an intent.
    journal = report / "journal.jsonl"
    deadline = time.monotonic() + 30
    while not (journal.exists() and '"intent"' in journal.read_text()):
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    summary = json.loads((report / "summary.json").read_text())
    metrics = read_metrics(prom)
    assert value(metrics, "batchcopy_exit_code") == 143
    assert metrics["batchcopy_jobs"] == {
        (("status", status.value),): summary["counts"][status.value] for status in Status
    }
    assert value(metrics, "batchcopy_last_success_timestamp_seconds") == 0


@pytest.mark.parametrize("where", ["missing folder", "a folder", "under a file"])
@pytest.mark.parametrize("command", ["run", "demo"])
def test_unusable_metrics_path_fails_before_any_request(
    live: EmulatorProcess, tmp_path: Path, where: str, command: str
) -> None:
    """A --metrics-file that cannot be written exits 2 in one line before anything is copied."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = {
        "missing folder": tmp_path / "no-such-folder" / "batchcopy.prom",
        "a folder": tmp_path,
        "under a file": blocker / "batchcopy.prom",
    }[where]
    args = [command, "--metrics-file", str(path), "--report-dir", str(tmp_path / "r"), "--quiet"]
    if command == "run":
        manifest = write_manifest(tmp_path / "m.csv", GOOD_ROWS)
        args[1:1] = [str(manifest), "--endpoint-url", live.url]
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--metrics-file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()
    assert live.stats()["requests_total"] == 0


def test_no_metrics_file_without_the_option(live: EmulatorProcess, tmp_path: Path) -> None:
    """Without --metrics-file a run writes only its report."""
    done, _ = run(live, tmp_path, GOOD_ROWS[:1])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "report-0"]
    assert not list(tmp_path.rglob("*.prom*"))


def test_help_does_not_load_prometheus_client() -> None:
    """`batchcopy run --help` stays quick: prometheus_client loads only with --metrics-file."""
    done = run_cli("run", "--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0, done.stderr
    assert "--metrics-file" in done.stdout
    assert "import time:" in done.stderr  # the import log is there to be read
    assert "batchcopy.metrics" not in done.stderr
    assert "prometheus_client" not in done.stderr


def test_usage_error_replaces_the_last_runs_figures(live: EmulatorProcess, tmp_path: Path) -> None:
    """A run that exits 2 (bad manifest) writes exit code 2 and no jobs, keeping only the
    last success time, instead of leaving the previous run's figures as if current."""
    prom = tmp_path / "batchcopy.prom"
    first, _ = run(live, tmp_path, GOOD_ROWS, "--metrics-file", str(prom))
    assert first.returncode == 0, first.stderr
    succeeded_at = value(read_metrics(prom), "batchcopy_last_success_timestamp_seconds")
    bad = write_manifest(tmp_path / "bad.csv", ["us-east-1,mars-1,x1-snap,,,,t-1"])
    done = run_cli("run", str(bad), "--endpoint-url", live.url, "--metrics-file", str(prom))
    assert done.returncode == 2, done.stderr
    metrics = read_metrics(prom)
    assert value(metrics, "batchcopy_exit_code") == 2
    assert set(metrics["batchcopy_jobs"].values()) == {0}
    assert value(metrics, "batchcopy_copy_requests") == 0
    assert value(metrics, "batchcopy_last_success_timestamp_seconds") == succeeded_at
    assert value(metrics, "batchcopy_last_run_timestamp_seconds") > succeeded_at


def test_throttled_requests_are_in_the_metrics_by_action(tmp_path: Path) -> None:
    """A run whose copies, tags and reads were throttled puts each action's count in its
    metrics file (batchcopy_throttled_requests_by_action), beside the copies' own total."""
    from batchcopy.metrics import write_metrics
    from batchcopy.report import Summary

    summary = Summary(
        manifest="m.csv", manifest_sha256="", total=0,
        counts={s.value: 0 for s in Status}, by_region={}, attempts=9, throttles=4,
        reconciled=0, tag_failures=0, rates={}, started_at=1.0, finished_at=2.0, exit_code=0,
        throttled_by_action={"CopySnapshot": 4, "GetOperation": 2, "TagResource": 1},
    )  # fmt: skip
    prom = tmp_path / "batchcopy.prom"
    write_metrics(summary, prom)
    assert read_metrics(prom)["batchcopy_throttled_requests_by_action"] == {
        (("action", "CopySnapshot"),): 4,
        (("action", "GetOperation"),): 2,
        (("action", "TagResource"),): 1,
    }
    assert value(read_metrics(prom), "batchcopy_throttled_requests") == 4
