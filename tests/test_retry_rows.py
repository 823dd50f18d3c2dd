"""retry.csv carries what the run knew: a row whose copy may already have been made says
so (sent_before), and running retry.csv then judges that copy as the job's own."""

from __future__ import annotations

import csv
from pathlib import Path

from batchcopy import CopyJob, RetryPolicy, Status, copy_snapshots, load_manifest
from batchcopy.emulator import Emulator, demo_seed, running_emulator
from tests.helpers import GOOD_ROWS, closed_port, read_csv, run_cli, settings_for, write_manifest
from tests.malicious import Answers, malicious_server

ONE_TRY = RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=30, max_attempts=1)
AUTO = CopyJob(
    line=2,
    source_region="us-east-1",
    target_region="eu-west-1",
    source_resource_name="nyc-web-1",
    restore_date="2026-11-19",
    target_snapshot_name="web-1-auto-copy",
)


async def _retry_csv_of_a_lost_answer(tmp_path: Path, emulator: Emulator) -> Path:
    """Run AUTO once, its copy made but the answer lost and no second try."""
    answers = Answers(drop={"CopySnapshot"})
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots(
            [AUTO], settings_for(bad, retry=ONE_TRY), report_dir=tmp_path / "first"
        )
    (result,) = report.results
    assert result.status is Status.FAILED
    assert "--resume looks" in result.error_message
    return tmp_path / "first" / "retry.csv"


async def test_retry_csv_after_a_lost_answer_takes_our_copy_as_ours(tmp_path: Path) -> None:
    """A row whose copy's answer was lost is in retry.csv with sent_before=true; running
    retry.csv finds the copy and counts it as this job's (started, reconciled, tagged),
    never TargetExists with advice to copy again under another name."""
    emulator = Emulator(seed=demo_seed())
    retry = await _retry_csv_of_a_lost_answer(tmp_path, emulator)
    assert [row["sent_before"] for row in read_csv(retry)] == ["true"]
    async with running_emulator(emulator) as url:
        again = await copy_snapshots(load_manifest(retry), settings_for(url))
    (result,) = again.results
    assert (result.status, result.reconciled, result.tag_error) == (Status.STARTED, True, "")
    assert again.exit_code == 0
    assert emulator.stats.copies_accepted == {"eu-west-1/web-1-auto-copy": 1}


async def test_a_manifest_without_sent_before_still_refuses_an_unlabelled_copy(
    tmp_path: Path,
) -> None:
    """The same row without the sent_before column is a plain manifest row: an unlabelled
    copy of an automatic snapshot already there is not taken for this job's."""
    emulator = Emulator(seed=demo_seed())
    retry = await _retry_csv_of_a_lost_answer(tmp_path, emulator)
    rows = read_csv(retry)
    plain = tmp_path / "plain.csv"
    with plain.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, [k for k in rows[0] if k != "sent_before"])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k != "sent_before"} for row in rows)
    async with running_emulator(emulator) as url:
        again = await copy_snapshots(load_manifest(plain), settings_for(url))
    (result,) = again.results
    assert (result.status, result.error_code) == (Status.FAILED, "TargetExists")


def test_a_folder_in_place_of_a_report_file_is_one_line(tmp_path: Path) -> None:
    """A folder named retry.csv.partial in the report folder is a one-line error (exit 2),
    not an IsADirectoryError traceback, and the folder is left as it was."""
    (tmp_path / "r" / "retry.csv.partial").mkdir(parents=True)
    manifest = write_manifest(tmp_path / "m.csv", [GOOD_ROWS[0]])
    done = run_cli(
        "run",
        str(manifest),
        "--report-dir",
        str(tmp_path / "r"),
        "--endpoint-url",
        f"http://127.0.0.1:{closed_port()}",
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "retry.csv.partial" in done.stderr
    assert (tmp_path / "r" / "retry.csv.partial").is_dir()
