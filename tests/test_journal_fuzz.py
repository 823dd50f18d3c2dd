"""Damaged journals, at random: a resume either reads what is there or refuses it with
ReportDirError; never a traceback, never a job taken as done that the journal does not say."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchcopy.errors import ReportDirError
from batchcopy.jobs import CopyJob, JobResult, Status
from batchcopy.journal import JOURNAL_NAME, Journal


def _job(i: int) -> CopyJob:
    return CopyJob(
        line=i + 2,
        source_region="us-east-1",
        target_region="eu-west-1",
        source_snapshot_name="src-1",
        target_snapshot_name=f"t-{i}",
    )


def _clean_journal() -> bytes:
    """A journal of six jobs: intents for all, outcomes for the first four."""
    with tempfile.TemporaryDirectory() as folder:

        async def write() -> None:
            journal = Journal.open(
                Path(folder), manifest="m.csv", manifest_sha256="a" * 64, resume=False
            )
            for i in range(6):
                await journal.intent(_job(i))
            for i in range(4):
                journal.outcome(JobResult(job=_job(i), status=Status.STARTED, attempts=1))
            journal.close()

        anyio.run(write)
        return (Path(folder) / JOURNAL_NAME).read_bytes()


CLEAN = _clean_journal()
LINES = CLEAN.splitlines(keepends=True)

edits = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, len(CLEAN))),
    st.tuples(st.just("flip"), st.integers(0, len(CLEAN) - 1), st.integers(0, 255)),
    st.tuples(st.just("drop line"), st.integers(0, len(LINES) - 1)),
    st.tuples(st.just("repeat line"), st.integers(0, len(LINES) - 1)),
    st.tuples(st.just("insert"), st.integers(0, len(LINES)), st.binary(max_size=40)),
)


def _damaged(steps: list[tuple[object, ...]]) -> bytes:
    data = CLEAN
    for step in steps:
        lines = data.splitlines(keepends=True)
        kind = step[0]
        if kind == "truncate":
            data = data[: int(step[1])]
        elif kind == "flip" and data:
            at = int(step[1]) % len(data)
            data = data[:at] + bytes([int(step[2])]) + data[at + 1 :]
        elif kind == "drop line" and lines:
            del lines[int(step[1]) % len(lines)]
            data = b"".join(lines)
        elif kind == "repeat line" and lines:
            at = int(step[1]) % len(lines)
            data = b"".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])
        elif kind == "insert":
            at = int(step[1])
            data = b"".join([*lines[:at], bytes(step[2]) + b"\n", *lines[at:]])
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# One flipped byte at most: two could forge a consistent record for another job, which is
# not damage but a forgery (the journal is the run's own file, mode 0600).
@given(
    st.lists(edits, min_size=1, max_size=3).filter(lambda s: sum(e[0] == "flip" for e in s) <= 1)
)
def test_a_damaged_journal_is_read_or_refused_never_misread(
    steps: list[tuple[object, ...]],
) -> None:
    """Random truncations, flipped bytes, dropped, repeated and inserted lines: resume reads
    the journal or refuses it; what it reads as done was done in the clean journal."""
    done_for_real = {f"eu-west-1/t-{i}" for i in range(4)}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / JOURNAL_NAME).write_bytes(_damaged(steps))
        try:
            journal = Journal.open(
                Path(folder), manifest="m.csv", manifest_sha256="a" * 64, resume=True, force=True
            )
        except ReportDirError:
            return
        with journal.earlier_results() as results:
            earlier = dict(results)  # what the report will say of them
        journal.close()
    assert set(earlier) == set(journal.past.finished)
    assert set(journal.past.finished) <= done_for_real
    assert not set(journal.past.finished) & journal.past.intended
