"""Never lose or duplicate a job: crashes at every journal boundary, signals, resume, re-runs.

Each test checks the two promises: every manifest row is in the results exactly once with
the same final status an uninterrupted run gives, and no target is copied twice (the
emulator's ``copies_accepted`` count is 1 for every target).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchcopy import CopyJob, Status, copy_snapshots
from batchcopy.emulator import Emulator, demo_seed, running_emulator
from tests.helpers import (
    EmulatorProcess,
    closed_port,
    manual,
    read_csv,
    run_cli,
    settings_for,
    write_manifest,
)

ROWS = [
    *(f"us-east-1,eu-west-1,nyc-web-2-2026-11-20,,,,resume-{i}" for i in range(6)),
    *(f"us-east-1,ap-south-1,,nyc-api-1,2026-11-19,,resume-auto-{i}" for i in range(4)),
    "us-east-1,eu-west-1,nyc-web-1-2026-11-20,,,,nyc-web-1-dr",  # exists: skipped
    "us-east-1,eu-west-1,no-such-snapshot,,,,resume-orphan",  # fails: NotFound
]
FAST = ["--rate", "100", "--burst", "20", "--quiet"]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "jobs.csv", ROWS)


def statuses(report: Path) -> dict[str, str]:
    rows = read_csv(report / "results.csv")
    assert len(rows) == len(ROWS), "every row exactly once"
    assert len({r["target_snapshot_name"] for r in rows}) == len(ROWS)
    return {r["target_snapshot_name"]: r["status"] for r in rows}


UNINTERRUPTED = {
    **{f"resume-{i}": "started" for i in range(6)},
    **{f"resume-auto-{i}": "started" for i in range(4)},
    "nyc-web-1-dr": "skipped",
    "resume-orphan": "failed",
}


def assert_copied_once(live: EmulatorProcess) -> None:
    accepted = live.stats()["copies_accepted"]
    assert set(accepted.values()) <= {1}, accepted
    assert len(accepted) == 10


def test_uninterrupted_run_is_the_baseline(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """The statuses the crash tests must reproduce, from one run that is not disturbed."""
    done = run_cli(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "r"),
        *FAST,
    )
    assert done.returncode == 1, done.stderr  # the orphan fails
    assert statuses(tmp_path / "r") == UNINTERRUPTED
    assert_copied_once(live)


@pytest.mark.parametrize(
    "point",
    [
        "before-intent:1",  # during the listings, before anything was sent
        "before-intent:3",
        "after-intent:3",
        "after-response:3",
        "after-response:8",
        "report-write:1",
    ],
)
def test_kill_at_each_journal_boundary_then_resume(
    live: EmulatorProcess, manifest: Path, tmp_path: Path, point: str
) -> None:
    """kill -9 at a journal boundary, then --resume: the same statuses, nothing copied twice."""
    report = tmp_path / "r"
    crashed = run_cli(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(report),
        "--max-in-flight",
        "2",
        *FAST,
        env={"BATCHCOPY_TEST_CRASH_AT": point},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)
    summary = json.loads((report / "summary.json").read_text())
    assert summary["total"] == len(ROWS)
    assert not list(report.glob("*.partial"))


def test_copies_answered_before_a_kill_are_not_reconciled_on_resume(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """kill -9 right after the third CopySnapshot answer: on resume the copies whose
    answers came keep their operation id and attempts and are not counted as reconciled
    (no answer was lost); nothing is copied twice."""
    report = tmp_path / "r"
    crashed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report),
        "--max-in-flight", "1", *FAST,
        env={"BATCHCOPY_TEST_CRASH_AT": "after-response:3"},
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    records = [json.loads(line) for line in (report / "journal.jsonl").read_text().splitlines()]
    # The other region's lane may have had a request in flight: its answer was truly lost.
    answers = {
        r["target"].split("/")[-1]: r["operation"] for r in records if r["type"] == "accepted"
    }
    assert len(answers) >= 3, records
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)
    rows = {r["target_snapshot_name"]: r for r in read_csv(report / "results.csv")}
    for name, operation in answers.items():
        row = rows[name]
        assert (row["status"], row["reconciled"]) == ("started", "False"), row
        assert row["operation_id"] == operation != "", row
        assert int(row["attempts"]) >= 1, row


def test_resume_refuses_another_manifest_unless_forced(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """A journal is tied to its manifest's sha256: another manifest is refused (exit 2)."""
    report = tmp_path / "r"
    run_cli("run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report), *FAST)
    other = write_manifest(tmp_path / "other.csv", ROWS[:3])
    refused = run_cli("run", str(other), "--endpoint-url", live.url, "--resume", str(report), *FAST)
    assert refused.returncode == 2
    assert "different manifest" in refused.stderr
    forced = run_cli(
        "run", str(other), "--endpoint-url", live.url, "--resume", str(report), "--force", *FAST
    )
    assert forced.returncode == 0, forced.stderr


def test_running_again_without_a_journal_copies_nothing(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """The same manifest run again converges: done targets are skipped, zero new copies."""
    live.control("POST", "config", {"operation_seconds": 0})  # done before the second run
    run_cli(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "first"),
        *FAST,
    )
    before = live.stats()["requests"]["eu-west-1"]["CopySnapshot"].get("ok", 0)
    again = run_cli(
        "run",
        str(manifest),
        "--endpoint-url",
        live.url,
        "--report-dir",
        str(tmp_path / "second"),
        *FAST,
    )
    assert again.returncode == 1  # the orphan still fails
    second = statuses(tmp_path / "second")
    assert {t for t, s in second.items() if s == "skipped"} == {
        t for t, s in UNINTERRUPTED.items() if s in ("started", "skipped")
    }
    after = live.stats()["requests"]["eu-west-1"]["CopySnapshot"].get("ok", 0)
    assert after == before
    assert_copied_once(live)


def start_run(
    live: EmulatorProcess, manifest: Path, report: Path, *extra: str, rate: str = "2"
) -> subprocess.Popen[str]:
    return subprocess.Popen(
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
            "--rate",
            rate,
            "--burst",
            "1",
            "--fixed-rate",  # slow on purpose: the signal must arrive mid-run
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(report: Path, records: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journal = report / "journal.jsonl"
        if journal.exists() and journal.read_text().count('"intent"') >= records:
            return
        time.sleep(0.02)
    raise AssertionError("the run never got going")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_one_signal_stops_gently_and_resume_finishes(
    live: EmulatorProcess, manifest: Path, tmp_path: Path, signum: int, code: int
) -> None:
    """The first signal stops dispatch, lets calls in flight finish and writes the report;
    the rest are not_started; --resume then finishes the run with nothing copied twice."""
    live.control("POST", "config", {"latency_ms": 150})
    report = tmp_path / "r"
    proc = start_run(live, manifest, report)
    wait_for_journal(report, 2)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "stopping" in err
    # Only Ctrl-C is a key: a SIGTERM (systemd, Kubernetes) is told to send the signal again.
    again = "press Ctrl-C again" if signum == signal.SIGINT else "send SIGTERM again"
    assert again in err
    assert (signum == signal.SIGINT) == ("Ctrl-C" in err)
    first = statuses(report)
    assert "not_started" in first.values()
    assert "failed" not in {s for t, s in first.items() if t != "resume-orphan"}
    assert json.loads((report / "summary.json").read_text())["exit_code"] == code
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)


def test_a_signal_as_the_journal_opens_still_writes_the_report(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """A SIGTERM the instant the report folder and journal exist (before any copy) stops
    the run as any SIGTERM does: exit 143, every row not_started in the report, no .partial
    file left, and --resume then finishes it."""
    report = tmp_path / "r"
    stopped = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report), *FAST,
        env={"BATCHCOPY_TEST_CRASH_AT": "journal-opened:1:SIGTERM"},
    )  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr
    assert set(statuses(report).values()) == {"not_started"}
    assert json.loads((report / "summary.json").read_text())["exit_code"] == 143
    assert not list(report.glob("*.partial"))
    assert live.stats()["copies_accepted"] == {}
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)


def test_second_signal_cancels_at_once_and_resume_reconciles(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """A second Ctrl-C cancels calls in flight at once; they are reported interrupted, and a
    resume looks them up instead of copying them again."""
    live.control(
        "POST", "config", {"hang_rate": 1, "hang_seconds": 20, "actions": ["CopySnapshot"]}
    )
    report = tmp_path / "r"
    proc = start_run(live, manifest, report, "--shutdown-grace", "60")
    wait_for_journal(report, 1)
    time.sleep(0.3)  # the copy is recorded by the emulator, its answer hangs
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    first = statuses(report)
    assert "failed" in first.values()
    interrupted = [r for r in read_csv(report / "results.csv") if r["error_code"] == "Interrupted"]
    assert interrupted
    live.control("POST", "config", {})
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)


def test_a_run_stopped_before_finishing_anything_reports_no_rate(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A run stopped while its first copies hang finished nothing: the end-of-run output
    gives no jobs/s, and summary.json has finished 0 and jobs_per_second 0."""
    live.control(
        "POST", "config", {"hang_rate": 1, "hang_seconds": 20, "actions": ["CopySnapshot"]}
    )
    report = tmp_path / "r"
    copies_only = write_manifest(tmp_path / "copies.csv", ROWS[:6])  # every one hangs
    proc = start_run(live, copies_only, report, "--shutdown-grace", "0")
    wait_for_journal(report, 1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    summary = json.loads((report / "summary.json").read_text())
    assert summary["counts"]["started"] == 0
    assert (summary["finished"], summary["jobs_per_second"]) == (0, 0)
    assert f"Run {summary['run_id']}" in out
    assert "jobs/s" not in out


def test_a_refused_run_leaves_the_folder_it_was_refused_for_as_it_was(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """Running again into a folder that holds a run's journal is refused (exit 2) and
    changes nothing there: the journal, the report and another run's unfinished files stay,
    and --resume still works."""
    report = tmp_path / "r"
    args = ["run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(report), *FAST]
    run_cli(*args)
    (report / "results.jsonl.partial").write_text("another run's rows\n")
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    again = run_cli(*args)
    assert again.returncode == 2
    assert "already holds a run's journal" in again.stderr
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    (report / "results.jsonl.partial").unlink()
    resumed = run_cli("run", str(manifest), "--endpoint-url", live.url, "--resume", str(report))
    assert resumed.returncode == 1, resumed.stderr  # the orphan row fails, as at first
    assert_copied_once(live)


def test_a_run_that_never_started_takes_back_every_folder_it_made(tmp_path: Path) -> None:
    """A run refused before it sends anything (nothing listens at the endpoint) removes the
    folders it made for its report, parents included, and nothing that was there."""
    manifest = write_manifest(tmp_path / "m.csv", ROWS[:1])
    endpoint = f"http://127.0.0.1:{closed_port()}"
    report = tmp_path / "new" / "nested" / "report"
    done = run_cli("run", str(manifest), "--endpoint-url", endpoint, "--report-dir", str(report))
    assert done.returncode == 253, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_an_empty_journal_left_by_a_crash_resumes_as_nothing_sent(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """A journal a crash left empty (or with a torn first line) is resumed as a run that
    sent nothing, instead of refusing the folder for good."""
    for content in (b"", b'{"type":"run","vers'):
        live.control("POST", "reset")
        report = tmp_path / f"r{len(content)}"
        report.mkdir()
        (report / "journal.jsonl").write_bytes(content)
        resumed = run_cli(
            "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
        )
        assert resumed.returncode == 1, resumed.stderr  # the orphan row fails, as at first
        assert statuses(report) == UNINTERRUPTED
        assert_copied_once(live)


def test_a_resumed_latest_copy_keeps_the_date_it_was_sent_for(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """kill -9 right after a use_latest copy was accepted; tonight's automatic snapshot
    becomes restorable before the resume: the resume recognises the copy as the one sent
    (last night's date, from the journal) and labels it so, never with tonight's date."""
    autos = {"web-9": ["2026-11-28", {"date": "2026-11-29", "status": "InProgress"}]}
    live.control("POST", "seed", {"regions": {"us-east-1": {"autoSnapshots": autos}}})
    manifest = write_manifest(tmp_path / "m.csv", ["us-east-1,eu-west-1,,web-9,,true,web-9-latest"])
    report = tmp_path / "r"
    common = ["run", str(manifest), "--endpoint-url", live.url, *FAST]
    crashed = run_cli(
        *common, "--report-dir", str(report), env={"BATCHCOPY_TEST_CRASH_AT": "after-response:1"}
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    done = {"date": "2026-11-29", "status": "Success"}
    live.control("POST", "seed", {"regions": {"us-east-1": {"autoSnapshots": {"web-9": [done]}}}})
    resumed = run_cli(*common, "--resume", str(report))
    assert resumed.returncode == 0, resumed.stderr
    (row,) = read_csv(report / "results.csv")
    assert (row["target_snapshot_name"], row["status"]) == ("web-9-latest", "started")
    planned = run_cli("plan", str(manifest), "--endpoint-url", live.url)
    assert planned.returncode == 1  # tonight's latest is another source: a conflict
    assert "copied from us-east-1/web-9@2026-11-28" in planned.stderr
    assert live.stats()["copies_accepted"] == {"eu-west-1/web-9-latest": 1}


def test_a_folder_in_use_by_a_run_is_refused_to_a_second_one(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """--resume of a folder a run is still writing, a new run with it as --report-dir, and
    doctor --report-dir all say it is in use by that run's pid (not "resume it"), and
    touch nothing; once the run has ended, the resume goes through."""
    report = tmp_path / "r"
    first = start_run(live, manifest, report, rate="0.3")  # still running for the checks below
    try:
        wait_for_journal(report, 2)
        in_use = f"in use by another batchcopy run (pid {first.pid})"
        for folder in ("--resume", "--report-dir"):
            second = run_cli(
                "run", str(manifest), "--endpoint-url", live.url, folder, str(report), *FAST
            )
            assert second.returncode == 2, second.stderr
            assert in_use in second.stderr, second.stderr
            assert "--resume" not in second.stderr, second.stderr
        doctor = run_cli("doctor", "--endpoint-url", live.url, "--report-dir", str(report))
        assert in_use in doctor.stdout + doctor.stderr, doctor.stdout + doctor.stderr
        assert "resume it" not in doctor.stdout + doctor.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr  # the orphan row fails, as at first
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)


def test_a_resume_with_other_default_regions_is_refused(tmp_path: Path) -> None:
    """A resume is bound to the defaults that make the jobs: another --target-region (for
    rows that leave it out) exits 2 before any request, unless --force."""
    # An emulator of its own: the module's shared one can still be finishing requests of a
    # process an earlier test stopped, which would look like requests of this one.
    live = EmulatorProcess()
    try:
        _refused_with_other_defaults(live, tmp_path)
    finally:
        live.stop()


def _refused_with_other_defaults(live: EmulatorProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "source_region,source_snapshot_name,target_snapshot_name\n"
        "us-east-1,nyc-web-1-2026-11-20,defaulted-1\n"
    )
    report = tmp_path / "r"
    common = ["run", str(manifest), "--endpoint-url", live.url, *FAST]
    first = run_cli(*common, "--target-region", "eu-west-1", "--report-dir", str(report))
    assert first.returncode == 0, first.stderr
    other = run_cli(*common, "--target-region", "ap-south-1", "--resume", str(report))
    assert other.returncode == 2, other.stderr
    assert "--target-region eu-west-1, this run gives --target-region ap-south-1" in other.stderr
    # Nothing reached the region the refused run would have copied into. (The request
    # total is no measure: the shared emulator may still finish requests of a process an
    # earlier test killed.)
    assert "ap-south-1" not in live.stats()["requests"]


async def test_a_forced_resume_of_an_edited_manifest_reports_its_rows(tmp_path: Path) -> None:
    """--resume --force with a manifest edited since: a job it words differently is run
    again (here: its target holds the old source's copy, a conflict), and unchanged jobs
    keep their results under their new lines; no row of the old manifest is reported."""
    emulator = Emulator(seed=demo_seed())
    before = [manual(2, "eu-west-1", "kept"), manual(3, "eu-west-1", "edited")]
    edited: CopyJob = manual(2, "eu-west-1", "edited", source="nyc-api-1-2026-11-20")
    after = [edited, manual(3, "eu-west-1", "kept")]
    async with running_emulator(emulator) as url:
        settings = settings_for(url)
        await copy_snapshots(before, settings, report_dir=tmp_path / "r")
        report = await copy_snapshots(
            after, settings, report_dir=tmp_path / "r", resume=True, force=True
        )
    rows = {r["target_snapshot_name"]: r for r in read_csv(tmp_path / "r" / "results.csv")}
    assert (rows["kept"]["line"], rows["kept"]["status"]) == ("3", "started")
    assert rows["edited"]["source_snapshot_name"] == "nyc-api-1-2026-11-20"
    assert (rows["edited"]["status"], rows["edited"]["error_code"]) == ("failed", "TargetExists")
    assert report.summary.counts[Status.FAILED] == 1


def _small_disk() -> None:
    """In the child: files may grow to 2,000 bytes, as on a disk that is full."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


def test_a_full_disk_stops_the_run_in_one_line_and_a_resume_finishes(
    live: EmulatorProcess, manifest: Path, tmp_path: Path
) -> None:
    """The journal or report cannot be written mid-run (a full disk): one line, exit 1, no
    traceback, nothing more sent; once there is room, --resume finishes with the statuses
    of an uninterrupted run and no copy made twice."""
    report = tmp_path / "r"
    full = subprocess.run(
        [sys.executable, "-m", "batchcopy", "run", str(manifest), "--endpoint-url", live.url,
         "--report-dir", str(report), *FAST],
        capture_output=True, text=True, timeout=120, check=False, preexec_fn=_small_disk,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert "cannot write" in full.stderr
    assert "--resume" in full.stderr
    resumed = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--resume", str(report), *FAST
    )
    assert resumed.returncode == 1, resumed.stderr  # the orphan row fails, as at first
    assert statuses(report) == UNINTERRUPTED
    assert_copied_once(live)


async def test_rows_appended_to_the_manifest_during_a_run_are_never_copied(
    tmp_path: Path,
) -> None:
    """A manifest appended to while a run reads it: the run copies exactly the rows checked
    (the appended one never), exit 0, and the report lists every checked row once, with
    summary counts that add up to its total."""
    from batchcopy import load_manifest

    rows = [f"us-east-1,eu-west-1,nyc-web-2-2026-11-20,,,,snap-{i}" for i in range(400)]
    path = write_manifest(tmp_path / "m.csv", rows)
    manifest = load_manifest(path)
    appended = False

    def append_once(result: object) -> None:
        nonlocal appended
        if not appended:
            with path.open("a") as handle:
                handle.write("us-east-1,eu-west-1,nyc-web-2-2026-11-20,,,,unchecked\n")
            appended = True

    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(
            manifest,
            settings_for(url, max_in_flight=1, rate=50, burst=1),
            report_dir=tmp_path / "r",
            on_result=append_once,
            keep_results=False,
        )
    assert appended
    summary = report.summary
    assert (summary.total, summary.exit_code) == (400, 0)
    assert sum(summary.counts.values()) == 400
    assert summary.counts["started"] == 400
    names = [r["target_snapshot_name"] for r in read_csv(tmp_path / "r" / "results.csv")]
    assert sorted(names) == sorted(f"snap-{i}" for i in range(400))
    assert "eu-west-1/unchecked" not in emulator.stats.copies_accepted
    assert not (tmp_path / "r" / "retry.csv").exists()
