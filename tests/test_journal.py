"""The journal on its own: durable intents, group commit, torn lines, refusals."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import pytest

from batchcopy.errors import ReportDirError
from batchcopy.jobs import INTERRUPTED_CODE, CopyJob, JobResult, Status
from batchcopy.journal import JOURNAL_NAME, Journal, JournalMismatch


def job(i: int) -> CopyJob:
    return CopyJob(
        line=i,
        source_region="us-east-1",
        target_region="eu-west-1",
        source_snapshot_name="src-1",
        target_snapshot_name=f"t-{i}",
    )


def open_journal(
    folder: Path, *, resume: bool = False, sha: str = "a" * 64, force: bool = False
) -> Journal:
    return Journal.open(folder, manifest="m.csv", manifest_sha256=sha, resume=resume, force=force)


def lines(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / JOURNAL_NAME).read_text().splitlines()]


async def test_intent_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    """Once intent() returns, another reader sees the record: the copy may now be sent."""
    journal = open_journal(tmp_path)
    await journal.intent(job(1))
    assert lines(tmp_path)[-1] == {"type": "intent", "target": "eu-west-1/t-1", "line": 1}
    journal.close()


async def test_concurrent_intents_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many jobs recording intents at once cost far fewer fsyncs than jobs (group commit)."""
    calls = 0
    real = os.fsync

    def counting(fd: int) -> None:
        nonlocal calls
        calls += 1
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    journal = open_journal(tmp_path)
    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(journal.intent, job(i))
    journal.close()
    assert sum(1 for r in lines(tmp_path) if r["type"] == "intent") == 200
    assert calls < 50


async def test_resume_knows_what_finished_and_what_was_only_sent(tmp_path: Path) -> None:
    """A resumed journal separates finished jobs from ones sent without a known outcome."""
    journal = open_journal(tmp_path)
    for i in (1, 2, 3):
        await journal.intent(job(i))
    journal.outcome(JobResult(job=job(1), status=Status.STARTED, attempts=1))
    journal.outcome(JobResult(job=job(2), status=Status.FAILED, error_code=INTERRUPTED_CODE))
    journal.outcome(JobResult(job=job(4), status=Status.NOT_STARTED))
    journal.close()
    again = open_journal(tmp_path, resume=True)
    assert set(again.past.finished) == {"eu-west-1/t-1"}
    assert again.past.intended == {"eu-west-1/t-2", "eu-west-1/t-3"}
    with again.earlier_results() as results:
        (earlier,) = results.values()
    assert (earlier.job, earlier.status, earlier.attempts) == (job(1), Status.STARTED, 1)
    again.close()


async def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """A crash in the middle of a write leaves a torn last line, which resume tolerates."""
    journal = open_journal(tmp_path)
    await journal.intent(job(1))
    journal.close()
    with (tmp_path / JOURNAL_NAME).open("a") as handle:
        handle.write('{"type": "outcome", "target": "eu-west-1/t-1", "ro')
    again = open_journal(tmp_path, resume=True)
    assert again.past.torn
    assert again.past.intended == {"eu-west-1/t-1"}
    again.close()


@pytest.mark.parametrize("whole", [True, False], ids=["whole-record", "torn-fragment"])
async def test_a_last_line_longer_than_a_block_is_mended(tmp_path: Path, whole: bool) -> None:
    """The journal's end is mended reading back from the end: a last line of 200 KB (a
    result with a long error message) keeps its record, or is dropped if it is a fragment,
    and what the resume appends after it reads back."""
    journal = open_journal(tmp_path)
    await journal.intent(job(1))
    await journal.intent(job(2))
    journal.close()
    long = JobResult(job=job(1), status=Status.FAILED, error_code="X", error_message="m" * 200_000)
    record = json.dumps({"type": "outcome", "target": "eu-west-1/t-1", "row": long.to_row()})
    with (tmp_path / JOURNAL_NAME).open("a") as handle:
        handle.write(record if whole else record[:-5])  # no newline: the crash came first
    again = open_journal(tmp_path, resume=True)
    outcome = JobResult(job=job(2), status=Status.STARTED, attempts=1)
    again.outcome(outcome)
    again.close()
    third = open_journal(tmp_path, resume=True)
    done = {"eu-west-1/t-1", "eu-west-1/t-2"} if whole else {"eu-west-1/t-2"}
    assert set(third.past.finished) == done
    assert third.past.intended == {"eu-west-1/t-1", "eu-west-1/t-2"} - done
    with third.earlier_results() as results:
        assert results["eu-west-1/t-2"] == outcome
        if whole:
            assert results["eu-west-1/t-1"].error_message == "m" * 200_000
    third.close()


def test_damage_before_the_end_refuses_resume(tmp_path: Path) -> None:
    """Garbage in the middle of the journal is not guessed around: resume is refused."""
    open_journal(tmp_path).close()
    with (tmp_path / JOURNAL_NAME).open("a") as handle:
        handle.write("not json\n{}\n")
    with pytest.raises(ReportDirError, match=r"journal.jsonl:2: journal damaged"):
        open_journal(tmp_path, resume=True)


def test_other_manifest_is_refused_unless_forced(tmp_path: Path) -> None:
    """A journal made for a different manifest (sha256) is refused unless forced."""
    open_journal(tmp_path, sha="a" * 64).close()
    with pytest.raises(JournalMismatch, match="different manifest"):
        open_journal(tmp_path, resume=True, sha="b" * 64)
    open_journal(tmp_path, resume=True, sha="b" * 64, force=True).close()


def test_new_run_does_not_overwrite_a_journal(tmp_path: Path) -> None:
    """Starting a new run in a folder that holds a journal is refused, pointing at --resume."""
    open_journal(tmp_path).close()
    with pytest.raises(ReportDirError, match="--resume"):
        open_journal(tmp_path)
    with pytest.raises(ReportDirError, match=r"no journal\.jsonl"):
        open_journal(tmp_path / "empty", resume=True)


def test_journal_is_private_and_never_a_symlink(tmp_path: Path) -> None:
    """The journal is created mode 0600, and a symlink in its place is refused."""
    open_journal(tmp_path).close()
    assert stat.S_IMODE((tmp_path / JOURNAL_NAME).stat().st_mode) == 0o600
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / JOURNAL_NAME).symlink_to(tmp_path / "target-file")
    with pytest.raises(ReportDirError, match="cannot open the journal"):
        open_journal(elsewhere)


async def test_resume_after_a_torn_line_keeps_the_journal_readable(tmp_path: Path) -> None:
    """Resuming after a crash mid-write drops the fragment, so later resumes still work."""
    journal = open_journal(tmp_path)
    await journal.intent(job(1))
    journal.close()
    with (tmp_path / JOURNAL_NAME).open("a") as handle:
        handle.write('{"type": "outco')
    again = open_journal(tmp_path, resume=True)
    await again.intent(job(2))
    again.close()
    third = open_journal(tmp_path, resume=True)
    assert not third.past.torn
    assert third.past.intended == {"eu-west-1/t-1", "eu-west-1/t-2"}
    third.close()


async def test_whole_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    """A last record that is complete but lost its newline still counts, and resuming keeps it."""
    journal = open_journal(tmp_path)
    await journal.intent(job(1))
    journal.outcome(JobResult(job=job(1), status=Status.STARTED, attempts=1))
    journal.close()
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    again = open_journal(tmp_path, resume=True)
    assert set(again.past.finished) == {"eu-west-1/t-1"}
    with again.earlier_results() as results:
        assert [r.job for r in results.values()] == [job(1)]
    again.close()
    third = open_journal(tmp_path, resume=True)
    assert set(third.past.finished) == {"eu-west-1/t-1"}
    third.close()


def test_resume_keeps_the_first_runs_id(tmp_path: Path) -> None:
    """The batchcopy:run-id of a run stays the same across its resumes."""
    Journal.open(
        tmp_path, manifest="m", manifest_sha256="a" * 64, resume=False, run_id="first"
    ).close()
    again = Journal.open(
        tmp_path, manifest="m", manifest_sha256="a" * 64, resume=True, run_id="second"
    )
    assert again.past.run_id == "first"
    again.close()


ROW = {
    "line": 2,
    "source_region": "us-east-1",
    "target_region": "eu-west-1",
    "source_snapshot_name": "web-1-nightly",
    "target_snapshot_name": "web-1-dr",
    "status": "started",
    "attempts": 1,
}
T = "eu-west-1/web-1-dr"
NO_STATUS = {k: v for k, v in ROW.items() if k != "status"}
DAMAGE = {
    "unknown status": {"type": "outcome", "target": T, "row": ROW | {"status": "maybe"}},
    "missing status": {"type": "outcome", "target": T, "row": NO_STATUS},
    "null row": {"type": "outcome", "target": T, "row": None},
    "bad region": {"type": "outcome", "target": T, "row": ROW | {"source_region": "mars-1"}},
    "non-integer count": {"type": "outcome", "target": T, "row": ROW | {"attempts": "many"}},
    "another target's row": {"type": "outcome", "target": "eu-west-1/other", "row": ROW},
    "unknown type": {"type": "guess", "target": T},
    "no target": {"type": "intent", "line": 2},
    "not an object": [1, 2, 3],
}


@pytest.mark.parametrize("damage", [*DAMAGE, "deep nesting"])
def test_a_damaged_journal_is_refused_whole_before_anything_runs(
    tmp_path: Path, damage: str
) -> None:
    """A hand-edited or damaged line anywhere before the end is refused at open with its
    line number (exit 2 in the CLI, before any request), never a traceback mid-run."""
    open_journal(tmp_path).close()
    line = "[" * 100_000 + "]" * 100_000 if damage == "deep nesting" else json.dumps(DAMAGE[damage])
    with (tmp_path / JOURNAL_NAME).open("a") as handle:
        handle.write(line + "\n" + json.dumps({"type": "intent", "target": "eu-west-1/x"}) + "\n")
    with pytest.raises(ReportDirError, match=r"journal.jsonl:2: journal damaged"):
        open_journal(tmp_path, resume=True)
