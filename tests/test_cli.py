"""The CLI end to end: `batchcopy run / validate / demo` as subprocesses against the emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batchcopy.settings import Settings
from tests.helpers import (
    GOOD_ROWS,
    HEADER,
    EmulatorProcess,
    closed_port,
    read_csv,
    run_cli,
    write_manifest,
)

batchcopy = run_cli
write = write_manifest


FAST = ["--rate", "200", "--burst", "50", "--quiet"]


def test_run_copies_everything_and_writes_the_report(live: EmulatorProcess, tmp_path: Path) -> None:
    """A good manifest runs to exit 0 with summary.json, results.jsonl and results.csv."""
    manifest = write(tmp_path / "jobs.csv", GOOD_ROWS)
    report = tmp_path / "report"
    done = batchcopy(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report), *FAST
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((report / "summary.json").read_text())
    assert summary["total"] == 5
    assert summary["counts"]["started"] == 5
    assert summary["exit_code"] == 0
    assert summary["by_region"]["us-west-2"] == {"started": 2}
    assert len(summary["manifest_sha256"]) == 64
    rows = read_csv(report / "results.csv")
    assert sorted(int(r["line"]) for r in rows) == [2, 3, 4, 5, 6]
    lines = [json.loads(x) for x in (report / "results.jsonl").read_text().splitlines()]
    assert {r["target_snapshot_name"] for r in lines} == {r["target_snapshot_name"] for r in rows}
    assert "5 jobs" in done.stdout
    stats = live.control("GET", "stats")
    assert len(stats["copies_accepted"]) == 5


def test_json_summary_on_stdout_and_stdin_manifest(live: EmulatorProcess, tmp_path: Path) -> None:
    """`-` reads the manifest from stdin; --json prints the summary as JSON on stdout."""
    done = batchcopy(
        "run",
        "-",
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r"),
        "--json",
        *FAST,
        stdin=HEADER + GOOD_ROWS[0] + "\n",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["manifest"], summary["counts"]["started"]) == ("<stdin>", 1)


def test_throttled_region_and_5xx_still_succeed(live: EmulatorProcess, tmp_path: Path) -> None:
    """A region throttling below --rate and 5xx answers slow the run down; nothing fails."""
    live.control(
        "POST",
        "config",
        {
            "seed": 4,
            "error_rate": 0.1,
            "regions": {"eu-west-1": {"copy_rate": 10, "copy_burst": 1}},
        },
    )
    rows = [f"us-east-1,eu-west-1,nyc-web-2-2026-11-20,,,,throttled-{i}" for i in range(15)]
    manifest = write(tmp_path / "jobs.csv", rows)
    done = batchcopy(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r"),
        "--rate",
        "14",
        "--burst",
        "2",
        "--json",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["started"] == 15
    assert summary["throttles"] > 0
    assert summary["attempts"] > 15
    stats = live.control("GET", "stats")
    assert stats["requests"]["eu-west-1"]["CopySnapshot"]["throttled"] == summary["throttles"]
    assert set(stats["copies_accepted"].values()) == {1}


def test_lost_answers_cause_no_second_copy(live: EmulatorProcess, tmp_path: Path) -> None:
    """Answers dropped after commit: no false failure, every target copied exactly once."""
    live.control("POST", "config", {"seed": 8, "drop_after_rate": 0.4})
    rows = [f"us-east-1,eu-west-1,nyc-blog-1-2026-11-20,,,,dropped-{i}" for i in range(15)]
    done = batchcopy(
        "run",
        str(write(tmp_path / "m.csv", rows)),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r"),
        "--json",
        *FAST,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["started"] == 15
    assert summary["reconciled"] > 0
    assert live.control("GET", "stats")["copies_accepted"] == {
        f"eu-west-1/dropped-{i}": 1 for i in range(15)
    }


def test_permanent_errors_exit_1_with_their_code(live: EmulatorProcess, tmp_path: Path) -> None:
    """A job whose source is missing fails with NotFoundException; the run exits 1."""
    rows = [GOOD_ROWS[0], "us-east-1,eu-west-1,does-not-exist,,,,orphan"]
    report = tmp_path / "r"
    done = batchcopy(
        "run",
        str(write(tmp_path / "m.csv", rows)),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(report),
        *FAST,
    )
    assert done.returncode == 1
    results = {r["target_snapshot_name"]: r for r in read_csv(report / "results.csv")}
    assert results["orphan"]["status"] == "failed"
    assert results["orphan"]["error_code"] == "NotFoundException"
    assert results["api-1-ireland"]["status"] == "started"


INVALID = {
    "unknown column": (
        HEADER.replace("restore_date", "restore_day"),
        GOOD_ROWS[:1],
        ":1:",
        "restore_day",
    ),
    "bad region": (HEADER, ["us-east-1,mars-1,x1-snap,,,,t-1"], ":2:", "target_region"),
    "both sources": (HEADER, ["us-east-1,eu-west-1,snap-1,res-1,,,t-1"], ":2:", "source"),
    "no date or latest": (HEADER, ["us-east-1,eu-west-1,,res-1,,,t-1"], ":2:", "restore_date"),
    "bad date": (HEADER, ["us-east-1,eu-west-1,,res-1,2026-02-30,,t-1"], ":2:", "restore_date"),
    "bad boolean": (HEADER, ["us-east-1,eu-west-1,,res-1,,maybe,t-1"], ":2:", "use_latest"),
    "bad name": (HEADER, ["us-east-1,eu-west-1,snap-1,,,,-bad-"], ":2:", "target_snapshot_name"),
    "duplicate target": (HEADER, [GOOD_ROWS[0], GOOD_ROWS[0]], ":3:", "line 2"),
    "empty": (HEADER, [], "", "no jobs"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_manifests_exit_2_before_any_request(
    live: EmulatorProcess, tmp_path: Path, case: str
) -> None:
    """Each kind of invalid manifest gives exit 2 with FILE:LINE and no request is sent."""
    header, rows, where, words = INVALID[case]
    manifest = write(tmp_path / "bad.csv", rows, header=header)
    for command in ("run", "validate"):
        done = (
            batchcopy(command, str(manifest), "--endpoint-url", live.url)
            if command == "run"
            else batchcopy(command, str(manifest))
        )
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert f"bad.csv{where}" in done.stderr
        assert words in done.stderr
        assert "Traceback" not in done.stderr
    assert live.control("GET", "stats")["requests_total"] == 0


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    """Validation lists every broken row, not just the first."""
    rows = [
        "us-east-1,mars-1,s1-x,,,,t-1",
        "us-east-1,eu-west-1,,r1,,,t-2",
        "x,eu-west-1,s1-x,,,,t-3",
    ]
    done = batchcopy("validate", str(write(tmp_path / "m.csv", rows)))
    assert done.returncode == 2
    for line in (2, 3, 4):
        assert f"m.csv:{line}:" in done.stderr


def test_validate_prints_jobs_per_region(tmp_path: Path) -> None:
    """`validate` makes no call and prints a job count per target region."""
    done = batchcopy("validate", str(write(tmp_path / "m.csv", GOOD_ROWS)), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["per_region"] == {
        "ap-south-1": 1,
        "eu-west-1": 2,
        "us-west-2": 2,
    }


# What only a run needs: loading any of these for --help or validate slows every start.
RUN_ONLY = (
    "aiobotocore",
    "aiohttp",
    "anyio",
    "prometheus_client",
    "rich.live",
    "rich.progress",
    "tenacity",
)


@pytest.mark.parametrize("args", [["--help"], ["validate", "m.csv"]])
def test_help_and_validate_start_without_the_run_machinery(tmp_path: Path, args: list[str]) -> None:
    """--help and validate start quickly: they load neither the AWS client, the event loop,
    the retry library, the live display nor the batchcopy engine."""
    write(tmp_path / "m.csv", GOOD_ROWS)
    done = batchcopy(*args, env={"PYTHONPROFILEIMPORTTIME": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "batchcopy.cli" in loaded  # the listing is what it seems
    slow = {name for name in loaded if name.startswith(RUN_ONLY)}
    slow |= loaded & {"batchcopy.api", "batchcopy.engine", "batchcopy.lightsail"}
    assert not slow, sorted(slow)


def test_region_options_fill_empty_cells(live: EmulatorProcess, tmp_path: Path) -> None:
    """--source-region and --target-region fill cells the manifest leaves empty."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "source_snapshot_name,target_snapshot_name\nnyc-web-2-2026-11-20,filled-1\n"
    )
    done = batchcopy(
        "run",
        str(manifest),
        "--source-region",
        "us-east-1",
        "--target-region",
        "eu-north-1",
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r"),
        *FAST,
    )
    assert done.returncode == 0, done.stderr
    assert live.control("GET", "stats")["copies_accepted"] == {"eu-north-1/filled-1": 1}


def test_unwritable_report_dir_exits_2_before_any_request(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A report folder that cannot be written is refused before any API call."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = batchcopy(
        "run",
        str(write(tmp_path / "m.csv", GOOD_ROWS)),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(blocker / "report"),
        *FAST,
    )
    assert done.returncode == 2
    assert "cannot write the report" in done.stderr
    assert live.control("GET", "stats")["requests_total"] == 0


def test_missing_credentials_exit_253_in_one_line(tmp_path: Path, live: EmulatorProcess) -> None:
    """Without AWS credentials the run stops with exit 253 and one clear line, no traceback."""
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    clean = {k: v for k, v in os.environ.items() if k not in env}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchcopy",
            "run",
            str(write(tmp_path / "m.csv", GOOD_ROWS[:1])),
            "--endpoint-url",
            live.url,
            "--report-dir",
            str(tmp_path / "r"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean,
    )
    assert done.returncode == 253, done.stderr
    assert "credentials" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def run_good_rows(live: EmulatorProcess, tmp_path: Path, *extra: str) -> Any:
    """`batchcopy run` of GOOD_ROWS against the emulator, reporting into tmp_path / "r"."""
    manifest = str(write(tmp_path / "m.csv", GOOD_ROWS))
    return batchcopy(
        "run", manifest, "--endpoint-url", live.url, "--report-dir", str(tmp_path / "r"), *extra
    )


def test_plain_progress_lines_when_not_a_terminal(live: EmulatorProcess, tmp_path: Path) -> None:
    """Without a terminal, progress is plain lines on stderr that read well in CI logs."""
    done = run_good_rows(live, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "batchcopy: 5 of 5 done, 5 sent, 5 accepted, 0 failed, 0 throttled" in done.stderr


def test_json_logs_make_stderr_pure_json_lines(live: EmulatorProcess, tmp_path: Path) -> None:
    """With --log-format json, every stderr line of a run is a JSON record: log records,
    status lines (with done, total, sent, accepted, throttled as fields) and errors."""
    done = run_good_rows(live, tmp_path, "-v", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert {r["logger"] for r in records} == {"batchcopy", "batchcopy.progress"}
    last = [r for r in records if r["logger"] == "batchcopy.progress"][-1]
    assert (last["done"], last["total"], last["sent"], last["accepted"]) == (5, 5, 5, 5)
    assert last["level"] == "info"
    assert last["message"].startswith("batchcopy: 5 of 5 done")
    bad = batchcopy(
        "run",
        str(write(tmp_path / "bad.csv", ["us-east-1,eu-west-1,,,,,x"])),
        "--log-format",
        "json",
    )
    assert bad.returncode == 2
    (error,) = [json.loads(line) for line in bad.stderr.splitlines()]
    assert error["level"] == "error"
    assert "nothing was copied" in error["message"]


def test_demo_runs_to_a_clean_report(tmp_path: Path) -> None:
    """`batchcopy demo` copies the bundled manifest against the built-in emulator, exit 0."""
    done = batchcopy("demo", "--json", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["failed"] == summary["counts"]["not_started"] == 0
    assert summary["counts"]["skipped"] == 1
    assert summary["counts"]["succeeded"] == summary["total"] - 1  # followed to the end
    assert summary["throttles"] > 0
    # It starts as a user's run does, and says so: the default rate, labelled as such.
    starts = summary["start_rates"].values()
    assert {(s["rate"], s["source"]) for s in starts} == {(Settings().rate, "default")}
    assert (
        (
            Path(summary["report_dir"])
            if Path(summary["report_dir"]).is_absolute()
            else tmp_path / summary["report_dir"]
        )
        .joinpath("summary.json")
        .exists()
    )


def test_retry_csv_lists_exactly_what_to_run_again(live: EmulatorProcess, tmp_path: Path) -> None:
    """retry.csv holds the failed rows in manifest form; running it redoes only those."""
    rows = [GOOD_ROWS[0], "us-east-1,eu-west-1,not-yet-there,,,,later-copy"]
    report = tmp_path / "r"
    first = batchcopy(
        "run",
        str(write(tmp_path / "m.csv", rows)),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(report),
        *FAST,
    )
    assert first.returncode == 1
    retry = report / "retry.csv"
    assert [r["target_snapshot_name"] for r in read_csv(retry)] == ["later-copy"]
    # The missing source appears; the retry file alone finishes the migration.
    live.control(
        "POST",
        "seed",
        {
            "regions": {
                "us-east-1": {
                    "instanceSnapshots": [
                        {"name": "not-yet-there", "fromInstanceName": "nyc-web-1"}
                    ]
                }
            }
        },
    )
    second = batchcopy(
        "run",
        str(retry),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r2"),
        "--json",
        *FAST,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["counts"]["started"] == 1
    assert not (tmp_path / "r2" / "retry.csv").exists()
    assert live.control("GET", "stats")["copies_accepted"] == {
        "eu-west-1/api-1-ireland": 1,
        "eu-west-1/later-copy": 1,
    }


def test_discover_run_and_run_again_copies_nothing_twice(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """discover writes a manifest that runs; running it again sends no CopySnapshot."""
    live.control("POST", "config", {"operation_seconds": 0})  # done before the second run
    manifest = tmp_path / "found.csv"
    found = batchcopy(
        "discover",
        "--source-region",
        "ap-southeast-2",
        "--target-region",
        "eu-west-1",
        "--target-region",
        "us-west-2",
        "--kind",
        "instance",
        "--endpoint-url",
        live.url,
        "--output",
        str(manifest),
    )
    assert found.returncode == 0, found.stderr
    rows = read_csv(manifest)
    assert {r["target_region"] for r in rows} == {"eu-west-1", "us-west-2"}
    first = batchcopy(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r1"),
        "--json",
        *FAST,
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["counts"]["started"] == len(rows)
    copies = live.control("GET", "stats")["copies_accepted"]
    second = batchcopy(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r2"),
        "--json",
        *FAST,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["counts"]["skipped"] == len(rows)
    assert live.control("GET", "stats")["copies_accepted"] == copies


def test_version_and_shell_completion() -> None:
    """`--version` prints the installed version; `--show-completion bash` prints a script
    that completes the commands, through `python -m batchcopy` as through the script."""
    import batchcopy as package

    version = batchcopy("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"batchcopy {package.__version__}"
    script = batchcopy("--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "complete" in script.stdout
    assert "_BATCHCOPY_COMPLETE" in script.stdout
    words = batchcopy(
        env={"_BATCHCOPY_COMPLETE": "complete_bash", "COMP_WORDS": "batchcopy d", "COMP_CWORD": "1"}
    )
    assert set(words.stdout.split()) >= {"demo", "discover", "doctor"}, words


NO_TARGET = "source_region,source_snapshot_name,target_snapshot_name\n"


def test_repeated_target_region_fans_out(live: EmulatorProcess, tmp_path: Path) -> None:
    """--target-region given twice (or as a;b, or both) makes one job per region, each
    region once, in validate, plan and run alike."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(NO_TARGET + "us-east-1,nyc-web-2-2026-11-20,fanned-1\n")
    regions = ["--target-region", "eu-west-1;ap-south-1", "--target-region", "eu-west-1"]
    checked = batchcopy("validate", str(manifest), *regions, "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["per_region"] == {"eu-west-1": 1, "ap-south-1": 1}
    planned = batchcopy("plan", str(manifest), *regions, "--endpoint-url", live.url, "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["per_region"] == {"ap-south-1": 1, "eu-west-1": 1}
    done = batchcopy(
        "run", str(manifest), *regions, "--endpoint-url", live.url,
        "--report-dir", str(tmp_path / "r"), *FAST,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert live.control("GET", "stats")["copies_accepted"] == {
        "eu-west-1/fanned-1": 1,
        "ap-south-1/fanned-1": 1,
    }


def test_source_region_twice_is_refused_before_any_request(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """--source-region given twice on validate, plan or run exits 2 with one line and
    sends nothing."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("source_snapshot_name,target_region,target_snapshot_name\n"
                        "nyc-web-2-2026-11-20,eu-west-1,twice-1\n")  # fmt: skip
    twice = ["--source-region", "us-east-1", "--source-region", "eu-central-1"]
    for command in ("validate", "plan", "run"):
        extra = {"validate": [], "plan": ["--endpoint-url", live.url]}.get(
            command, ["--endpoint-url", live.url, "--quiet"]
        )
        done = batchcopy(command, str(manifest), *twice, *extra)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.strip() == (
            f"batchcopy {command}: --source-region given twice (us-east-1, eu-central-1); "
            "give it once"
        )
    assert live.control("GET", "stats")["requests_total"] == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "m.csv", "--rate", "1", "--rate", "2"], "--rate given twice (1, 2)"),
        (
            ["run", "m.csv", "--adaptive", "--fixed-rate"],
            "--adaptive/--fixed-rate given twice (--adaptive, --fixed-rate)",
        ),
        (["run", "m.csv", "-q", "--quiet", "--json"], "--quiet given twice"),
        (["validate", "m.csv", "--json", "--json"], "--json given twice"),
        (
            [
                "discover",
                "--source-region",
                "us-east-1",
                "--target-region",
                "eu-west-1",
                "--kind",
                "disk",
                "--kind",
                "instance",
            ],
            "--kind given twice (disk, instance)",
        ),
        (["doctor", "--timeout", "1", "--timeout=2"], "--timeout given twice (1, 2)"),
    ],
)
def test_an_option_given_twice_is_refused(args: list[str], said: str, tmp_path: Path) -> None:
    """An option that takes one value (or a flag) given twice exits 2 and names it; only
    list options (--tag, --region, ...) and -v repeat."""
    write(tmp_path / "m.csv", GOOD_ROWS[:1])
    done = batchcopy(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"batchcopy {args[0]}: {said}; give it once"


def test_max_rate_below_the_default_rate_starts_at_the_cap(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """--max-rate below the default --rate: the run starts at --max-rate, says so on
    stderr, and the summary records the start rate and the cap, never exceeded."""
    report = tmp_path / "r"
    done = batchcopy(
        "run", str(write(tmp_path / "m.csv", GOOD_ROWS)), "--endpoint-url", live.url,
        "--report-dir", str(report), "--max-rate", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        "batchcopy run: starting at 2 requests/s (--max-rate), below the default --rate 5"
    )
    summary = json.loads((report / "summary.json").read_text())
    assert (summary["start_rate"], summary["max_rate"]) == (2.0, 2.0)
    assert summary["rates"]
    assert max(summary["rates"].values()) <= 2.0
    assert json.loads(done.stdout)["start_rate"] == 2.0


def test_rate_above_max_rate_is_refused(live: EmulatorProcess, tmp_path: Path) -> None:
    """--rate above --max-rate, both given, exits 2 naming both; nothing is sent."""
    done = batchcopy(
        "run", str(write(tmp_path / "m.csv", GOOD_ROWS)), "--endpoint-url", live.url,
        "--rate", "8", "--max-rate", "2", "--quiet",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "batchcopy run: --rate 8 is above --max-rate 2; give a --rate of at most 2"
    )
    assert live.control("GET", "stats")["requests_total"] == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "m.csv", "--max-attempts", "0"], "--max-attempts must be at least 1, got 0"),
        (["run", "m.csv", "--job-timeout", "nan"], "--job-timeout must be a finite number"),
        (["run", "m.csv", "--wait-timeout", "0"], "--wait-timeout must be a finite number"),
        (["run", "m.csv", "--read-timeout", "-1"], "--read-timeout must be a finite number of"),
        (["run", "m.csv", "--max-in-flight", "0"], "--max-in-flight must be at least 1"),
        (["run", "m.csv", "--burst", "0"], "--burst must be at least 1"),
        (["run", "m.csv", "--rate", "inf"], "--rate must be a finite number"),
        (["run", "m.csv", "--max-rate", "nan"], "--max-rate must be a finite number"),
        (["run", "m.csv", "--shutdown-grace", "-1"], "--shutdown-grace must be 0 seconds or more"),
        (["run", "m.csv", "--shutdown-grace", "nan"], "--shutdown-grace must be 0 seconds or"),
        (["plan", "m.csv", "--endpoint-url", "ftp://x"], "--endpoint-url must start with http"),
        (["plan", "m.csv", "--endpoint-url", ""], "--endpoint-url must start with http"),
        (["plan", "m.csv", "--endpoint-url", "http://127.0.0.1:99999"], "--endpoint-url has a"),
        (["plan", "m.csv", "--endpoint-url", "http://"], "--endpoint-url names no host"),
        (
            ["run", "m.csv", "--endpoint-url", "http://ops:hunter2@127.0.0.1:9"],
            "--endpoint-url must not hold a user name or password",
        ),
        (["run", "m.csv", "--max-rate", "1e-9"], "--max-rate must be a finite number of at least"),
        (
            ["run", "m.csv", "--tag", "batchcopy:source=evil"],
            "--tag 'batchcopy:source': batchcopy: keys are batchcopy's provenance",
        ),
        (["doctor", "--timeout", "0"], "--timeout must be a finite number of seconds above 0"),
        (
            [
                "discover",
                "--source-region",
                "us-east-1",
                "--target-region",
                "eu-west-1",
                "--read-timeout",
                "inf",
            ],
            "--read-timeout must be a finite number of seconds above 0",
        ),
    ],
)
def test_settings_errors_name_the_option_as_typed(
    args: list[str], said: str, tmp_path: Path
) -> None:
    """A number out of range (negative, zero, NaN, infinite) exits 2 with one line that
    names the option as the user typed it."""
    write(tmp_path / "m.csv", GOOD_ROWS[:1])
    endpoint = [] if "--endpoint-url" in args else ["--endpoint-url", "http://127.0.0.1:9"]
    done = batchcopy(*args, *endpoint, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"batchcopy {args[0]}: {said}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "_" not in done.stderr.split(":")[1]  # no max_attempts, read_timeout, ...
    assert "hunter2" not in done.stderr


HELP_ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.mark.parametrize("command", ["", "run", "discover", "demo", "doctor", "emulator"])
def test_help_shows_no_value_for_flags(command: str) -> None:
    """--help shows a value type only for options that take a value: not <bool> for
    --quiet, --json, --version..., not <int> for -v."""
    done = batchcopy(*filter(None, [command, "--help"]), env=HELP_ENV)
    assert done.returncode == 0, done.stderr
    assert "<bool>" not in done.stdout
    flags = ("--help", "--quiet", "--verbose", "--version", "--debug", "--demo", "--json")
    for line in done.stdout.splitlines():
        if any(f"│ {flag} " in line for flag in flags):
            assert "<" not in line.split("│")[1], line
    if command == "run":
        rate = next(line for line in done.stdout.splitlines() if "│ --rate " in line)
        assert "<float>" in rate


def test_list_options_and_counts_still_repeat(live: EmulatorProcess) -> None:
    """Options meant to repeat (discover's regions, -v) are not refused."""
    done = batchcopy(
        "discover", "--source-region", "us-east-1", "--source-region", "eu-central-1",
        "--target-region", "eu-west-1", "-v", "-v", "--endpoint-url", live.url, "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {row.split(",")[0] for row in done.stdout.splitlines()[1:]} == {
        "us-east-1",
        "eu-central-1",
    }


def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment with an AWS profile that does not exist and no keys at all."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_PROFILE", "nope")


NEVER_STARTED = {
    "manifest error": (["us-east-1,mars-1,x1-snap,,,,t-1"], [], 2),
    "settings error": (GOOD_ROWS[:1], ["--max-attempts", "0"], 2),
    "option given twice": (GOOD_ROWS[:1], ["--rate", "1"], 2),  # FAST gives --rate too
    "option of the wrong type": (GOOD_ROWS[:1], ["--max-attempts", "ten"], 2),
    "tag error": (GOOD_ROWS[:1], ["--tag", "novalue"], 2),
    "credentials": (GOOD_ROWS[:1], [], 253),
    "closed port": (GOOD_ROWS[:1], [], 253),
}


@pytest.mark.parametrize("case", list(NEVER_STARTED))
def test_a_run_that_never_started_leaves_no_report_folder(
    live: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A run that fails before it sends anything creates no report folder, default or named,
    and its metrics file says its exit code (not the previous run's figures)."""
    rows, extra, code = NEVER_STARTED[case]
    prom = tmp_path / "batchcopy.prom"
    prom.write_text("batchcopy_exit_code 0\nbatchcopy_last_success_timestamp_seconds 1.5e9\n")
    endpoint = f"http://127.0.0.1:{closed_port()}" if case == "closed port" else live.url
    if case == "credentials":
        no_credentials(monkeypatch)
    manifest = write(tmp_path / "m.csv", rows)
    common = [str(manifest), "--endpoint-url", endpoint, "--metrics-file", str(prom), *FAST]
    default = batchcopy("run", *common, *extra, cwd=tmp_path)
    named = batchcopy("run", *common, *extra, "--report-dir", str(tmp_path / "r"))
    for done in (default, named):
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("batchcopy-report-*"))
    assert not (tmp_path / "r").exists()
    assert live.stats()["requests_total"] == 0
    metrics = prom.read_text()
    assert f"batchcopy_exit_code {code}.0" in metrics
    assert "batchcopy_last_success_timestamp_seconds 1.5e+09" in metrics
    assert 'batchcopy_jobs{status="started"} 0.0' in metrics


def test_unusable_credentials_exit_253_in_one_line_with_no_folder(
    live: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown profile and no keys: exit 253, one line naming the profile, no folder."""
    no_credentials(monkeypatch)
    manifest = write(tmp_path / "m.csv", GOOD_ROWS[:1])
    done = batchcopy("run", str(manifest), "--endpoint-url", live.url, "--quiet", cwd=tmp_path)
    assert done.returncode == 253, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "nope" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_a_bad_resume_creates_no_folder(live: EmulatorProcess, tmp_path: Path) -> None:
    """--resume of a folder that does not exist is refused (exit 2) and does not make it."""
    manifest = write(tmp_path / "m.csv", GOOD_ROWS[:1])
    missing = tmp_path / "no-such-run"
    done = batchcopy("run", str(manifest), "--endpoint-url", live.url, "--resume", str(missing))
    assert done.returncode == 2, done.stderr
    assert "no-such-run" in done.stderr
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    done = batchcopy("run", str(manifest), "--endpoint-url", live.url, "--resume", str(empty))
    assert done.returncode == 2, done.stderr
    assert list(empty.iterdir()) == []
    assert live.stats()["requests_total"] == 0


def test_closed_stdout_keeps_the_exit_code_of_the_summary(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """`batchcopy run ... | head -1`: stdout closing early does not turn exit 0 into a silent
    1; the process exits as summary.json says and stderr says the output was cut."""
    read, write_end = os.pipe()
    os.close(read)  # the reader has gone, as head has after its line
    report = tmp_path / "r"
    manifest = write(tmp_path / "m.csv", GOOD_ROWS)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "batchcopy",
                "run",
                str(manifest),
                "--endpoint-url",
                live.url,
                "--report-dir",
                str(report),
                *FAST,
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert json.loads((report / "summary.json").read_text())["exit_code"] == 0
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "broken pipe" in done.stderr


REFUSED = {
    "run": ["run", "M", "--report-dir", "R"],  # not --quiet: no status line comes first
    "plan": ["plan", "M"],
    "discover": ["discover", "--source-region", "us-east-1", "--target-region", "eu-west-1"],
}


@pytest.mark.parametrize("command", list(REFUSED))
def test_a_closed_port_fails_at_once_naming_the_endpoint(tmp_path: Path, command: str) -> None:
    """An endpoint nothing listens on: plan, discover and run stop within seconds (not after
    retrying to the deadline) with one line naming it, exit 253, and no report folder."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    manifest = str(write(tmp_path / "m.csv", GOOD_ROWS))
    args = [
        manifest if a == "M" else str(tmp_path / "r") if a == "R" else a for a in REFUSED[command]
    ]
    done = subprocess.run(
        [sys.executable, "-m", "batchcopy", *args, "--endpoint-url", endpoint],
        capture_output=True,
        text=True,
        timeout=20,  # retrying until the deadline took about 50 s
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 253, done.stderr
    assert done.stderr == (
        f"batchcopy: cannot connect to {endpoint} (connection refused); check --endpoint-url\n"
    )
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_plan_and_discover_take_the_log_and_timeout_options(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """plan and discover accept -v, --debug, --log-format, --log-file, --read-timeout and
    --connect-timeout as run does; --debug logs botocore's requests to the file."""
    manifest = write(tmp_path / "m.csv", GOOD_ROWS[:1])
    common = ["-v", "--debug", "--log-format", "json", "--read-timeout", "5"]
    common += ["--connect-timeout", "2", "--endpoint-url", live.url]
    planned = batchcopy("plan", str(manifest), *common, "--log-file", str(tmp_path / "plan.log"))
    assert planned.returncode == 0, planned.stderr
    found = batchcopy(
        "discover",
        "--source-region",
        "us-east-1",
        "--target-region",
        "eu-west-1",
        *common,
        "--log-file",
        str(tmp_path / "discover.log"),
        "-o",
        str(tmp_path / "found.csv"),
    )
    assert found.returncode == 0, found.stderr
    for name in ("plan.log", "discover.log"):
        records = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        assert any("GetInstanceSnapshots" in json.dumps(r) for r in records), name
    ran = batchcopy("run", str(manifest), *common, "--report-dir", str(tmp_path / "r"), "--quiet")
    assert ran.returncode == 0, ran.stderr


def test_end_of_run_output_reads_well_in_a_log(live: EmulatorProcess, tmp_path: Path) -> None:
    """Captured (not a terminal): no line is wrapped at 80 columns, counts of one are
    singular, and the run id of summary.json (the journal's) is printed."""
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4)
    deep.mkdir()
    manifest = write(deep / "one-job.csv", GOOD_ROWS[:1])
    report = tmp_path / "r"
    done = batchcopy(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report), *FAST
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((report / "summary.json").read_text())
    journal = json.loads((report / "journal.jsonl").read_text().splitlines()[0])
    assert summary["run_id"] == journal["run_id"] != ""
    lines = done.stdout.splitlines()
    assert f"{manifest}: 1 job in " in lines[0]
    assert any("1 copy request," in line and f"Run {summary['run_id']}" in line for line in lines)
    # A count of one, not a rate ("2.1 jobs/s") or a larger count ("11 jobs").
    plural_one = re.compile(r"(?<![\d.])1 (jobs|copy requests)\b")
    assert not any(plural_one.search(line) for line in lines)


def test_plan_says_one_copy_and_one_problem(live: EmulatorProcess, tmp_path: Path) -> None:
    """plan's total line is singular for one copy and one problem, and on one line."""
    rows = [GOOD_ROWS[0], "us-east-1,eu-west-1,does-not-exist,,,,orphan"]
    done = batchcopy("plan", str(write(tmp_path / "m.csv", rows)), "--endpoint-url", live.url)
    assert done.returncode == 1, done.stderr
    (total,) = [line for line in done.stdout.splitlines() if "a month more" in line]
    assert total.startswith("1 copy, ")
    assert total.endswith("; 0 already there; 1 problem.")


def test_plan_with_nothing_to_copy_prints_no_empty_table(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A plan whose every target is already there says so, with no table of no rows."""
    rows = ["us-east-1,eu-west-1,nyc-web-1-2026-11-20,,,,nyc-web-1-dr"]
    done = batchcopy("plan", str(write(tmp_path / "m.csv", rows)), "--endpoint-url", live.url)
    assert done.returncode == 0, done.stderr
    assert "target region" not in done.stdout, done.stdout
    assert "0 copies, 0 GB, about $0.00 a month more" in done.stdout
    assert "; 1 already there; 0 problems." in done.stdout


def test_one_manifest_problem_is_singular(tmp_path: Path) -> None:
    """validate and run say "1 problem found", not "1 problem(s)"."""
    done = batchcopy("validate", str(write(tmp_path / "m.csv", ["us-east-1,mars-1,s1-x,,,,t-1"])))
    assert done.returncode == 2
    assert "1 problem found; nothing was copied." in done.stderr


@pytest.mark.parametrize("stderr", ["pipe closed early", "closed at start"])
def test_a_lost_stderr_does_not_stop_the_copies(
    live: EmulatorProcess, tmp_path: Path, stderr: str
) -> None:
    """Whoever reads stderr going away (a log pipe that dies), or stderr closed from the
    start (2>&-), leaves the run to finish every copy with its true exit code."""
    live.control("POST", "config", {"latency_ms": 300})  # long enough for status lines
    manifest = write(tmp_path / "m.csv", GOOD_ROWS)
    report = tmp_path / "r"
    args = [sys.executable, "-m", "batchcopy", "run", str(manifest), "--endpoint-url", live.url]
    args += ["--report-dir", str(report), "--rate", "200", "-v"]
    if stderr == "pipe closed early":
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        proc.stderr.close()  # the reader is gone before the first line
        code = proc.wait(timeout=120)
    else:
        shell = " ".join(f"'{a}'" for a in args) + " >/dev/null 2>&-"
        code = subprocess.run(["sh", "-c", shell], timeout=120, check=False).returncode
    summary = json.loads((report / "summary.json").read_text())
    assert (code, summary["exit_code"]) == (0, 0)
    assert summary["counts"]["started"] == len(GOOD_ROWS)


def test_a_copy_that_could_not_be_tagged_is_explained_and_retried(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A tagging failure: the end of the run says why it exits 1 though every copy started
    and how to finish (retry.csv lists the job too); resuming tags it, copying nothing."""
    live.control(
        "POST",
        "config",
        {"operation_seconds": 0, "error_rate": 1, "actions": ["TagResource"]},
    )
    manifest = write(tmp_path / "m.csv", GOOD_ROWS[:1])
    report = tmp_path / "r"
    first = batchcopy(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report),
        "--max-attempts", "1",
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert "1 copy could not be tagged" in first.stdout
    assert f"--resume {report}" in first.stdout
    assert [r["target_snapshot_name"] for r in read_csv(report / "retry.csv")] == ["api-1-ireland"]
    live.control("POST", "config", {"operation_seconds": 0})
    again = batchcopy("run", str(manifest), "--endpoint-url", live.url, "--resume", str(report))
    assert again.returncode == 0, again.stderr
    assert live.stats()["copies_accepted"] == {"eu-west-1/api-1-ireland": 1}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--rate", "1", "--rate", "2"], "--rate given twice"),
        (["--rate", "abc"], "--rate"),
        (["--no-such-option"], "--no-such-option"),
        (["--max-attempts", "0"], "--max-attempts"),
    ],
)
def test_json_logs_keep_option_errors_json_too(tmp_path: Path, extra: list[str], says: str) -> None:
    """With --log-format json, an option refused before the run starts is one JSON record
    on stderr (not a plain line or a boxed usage message), exit 2."""
    manifest = write(tmp_path / "m.csv", GOOD_ROWS[:1])
    done = batchcopy("run", str(manifest), "--log-format", "json", *extra)
    assert done.returncode == 2
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert len(records) == 1, done.stderr
    assert records[0]["level"] == "error"
    assert says in records[0]["message"]


def test_discover_with_json_logs_says_what_it_wrote_as_json(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """discover's closing line is a JSON record when the logs are JSON Lines."""
    done = batchcopy(
        "discover", "--source-region", "us-east-1", "--target-region", "eu-west-1",
        "--endpoint-url", live.url, "--log-format", "json", "-o", str(tmp_path / "found.csv"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert "written to" in records[-1]["message"]


def test_a_run_with_stdout_closed_keeps_its_exit_code(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """Started with stdout closed (>&-), a run finishes with the exit code its summary.json
    holds, and no traceback; discover, with nowhere to write, asks for --output (exit 2)."""
    manifest = write(tmp_path / "m.csv", GOOD_ROWS[:2])
    report = tmp_path / "r"
    run = f"'{sys.executable}' -m batchcopy run '{manifest}' --endpoint-url {live.url}"
    done = subprocess.run(
        ["sh", "-c", f"{run} --report-dir '{report}' >&-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    assert done.returncode == json.loads((report / "summary.json").read_text())["exit_code"] == 0
    found = subprocess.run(
        ["sh", "-c", f"'{sys.executable}' -m batchcopy discover --source-region us-east-1 "
         f"--target-region eu-west-1 --endpoint-url {live.url} >&-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert found.returncode == 2
    assert "give --output" in found.stderr


SECRET_URLS = [
    "http://user:secret@127.0.0.1:99999",
    "http://user:secret@127.0.0.1:abc",
    "ftp://user:secret@127.0.0.1:9",
    "user:secret@127.0.0.1:9",
    "http://user:se/cret@127.0.0.1:9",
    "http://user:secret@[::1",
]
SECRET_COMMANDS = [
    ["run", "m.csv"],
    ["plan", "m.csv"],
    ["doctor"],
    ["discover", "--source-region", "us-east-1", "--target-region", "eu-west-1"],
]


@pytest.mark.parametrize("url", SECRET_URLS)
@pytest.mark.parametrize(
    ("via", "command"),
    [
        (via, command)
        for via in ("option", "env", "log-file")
        for command in SECRET_COMMANDS
        if not (via == "log-file" and command[0] == "doctor")  # doctor has no --log-file
    ],
    ids=lambda value: value if isinstance(value, str) else value[0],
)
def test_endpoint_password_is_never_echoed(
    url: str, command: list[str], via: str, tmp_path: Path
) -> None:
    """An --endpoint-url (or AWS_ENDPOINT_URL_LIGHTSAIL) holding user:password@ that fails
    any check exits 2 with one line that never shows the password, in any command, nor in
    --log-file."""
    write(tmp_path / "m.csv", GOOD_ROWS[:1])
    log = tmp_path / "batchcopy.log"
    args = [*command] if via == "env" else [*command, "--endpoint-url", url]
    if via == "log-file":
        args += ["--log-file", str(log)]
    env = {"AWS_ENDPOINT_URL_LIGHTSAIL": url} if via == "env" else None
    done = batchcopy(*args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    said = done.stderr + (log.read_text() if via == "log-file" else "")
    assert "--endpoint-url" in said, said
    assert len(said.strip().splitlines()) == 1, said
    for piece in ("secret", "cret", "user:s", "@127", "@["):
        assert piece not in said, said


@pytest.mark.parametrize("command", SECRET_COMMANDS, ids=lambda c: c[0])
def test_malformed_endpoint_is_one_line_naming_the_option(
    command: list[str], tmp_path: Path
) -> None:
    """An --endpoint-url urllib cannot parse (an unclosed IPv6 bracket) exits 2 with one
    line naming --endpoint-url, in every command: no traceback, no other option blamed."""
    write(tmp_path / "m.csv", GOOD_ROWS[:1])
    done = batchcopy(*command, "--endpoint-url", "http://[::1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"batchcopy {command[0]}: --endpoint-url "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_force_help_says_every_check_it_overrides() -> None:
    """run --help says --force also resumes a journal made with other default regions, as
    the README says, not only one made for another manifest."""
    done = batchcopy("run", "--help", env=HELP_ENV)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "--force" in line)
    assert "another manifest" in line, line
    assert "default regions" in line, line
