"""The journal holds only what batchcopy writes: anything else is refused with its line,
or, for an outcome batchcopy never records as final, taken as not done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchcopy.errors import ReportDirError
from batchcopy.journal import JOURNAL_NAME, Journal

SHA = "a" * 64
ROW = {
    "line": 2,
    "source_region": "us-east-1",
    "target_region": "eu-west-1",
    "source_snapshot_name": "web-1-nightly",
    "target_snapshot_name": "web-1-dr",
    "status": "failed",
    "attempts": 1,
}
T = "eu-west-1/web-1-dr"


def write(folder: Path, *records: object) -> None:
    header = {"type": "run", "version": 1, "manifest": "m.csv", "manifest_sha256": SHA}
    lines = [json.dumps(r) for r in (header, *records)]
    (folder / JOURNAL_NAME).write_text("".join(line + "\n" for line in lines))


def resume(folder: Path) -> Journal:
    return Journal.open(folder, manifest="m.csv", manifest_sha256=SHA, resume=True)


@pytest.mark.parametrize("defaults", ["eu-west-1", ["eu-west-1"], {"target_region": 3}])
def test_run_record_defaults_that_are_not_regions_are_damage(
    tmp_path: Path, defaults: object
) -> None:
    """A run record whose defaults are a string, a list or hold a number is "journal
    damaged at line 1" (exit 2), not an AttributeError traceback."""
    write(tmp_path)
    (tmp_path / JOURNAL_NAME).write_text(
        json.dumps({"type": "run", "version": 1, "manifest_sha256": SHA, "defaults": defaults})
        + "\n"
    )
    with pytest.raises(ReportDirError, match=r"journal.jsonl:1: journal damaged"):
        resume(tmp_path)


def test_a_journal_of_a_newer_version_is_refused_plainly(tmp_path: Path) -> None:
    """A journal written by a newer batchcopy (version 99) is refused, saying so, not read
    as if this version understood it."""
    (tmp_path / JOURNAL_NAME).write_text(
        json.dumps({"type": "run", "version": 99, "manifest_sha256": SHA}) + "\n"
    )
    with pytest.raises(ReportDirError, match="newer batchcopy"):
        resume(tmp_path)


def test_an_outcome_batchcopy_never_writes_as_final_is_not_final(tmp_path: Path) -> None:
    """An outcome not_started is not done (the job runs); one failed as Interrupted is not
    done either and its target is looked up first, as for an intent with no outcome."""
    other = ROW | {"target_snapshot_name": "web-2-dr", "status": "not_started"}
    interrupted = ROW | {"error_code": "Interrupted"}
    write(
        tmp_path,
        {"type": "outcome", "target": "eu-west-1/web-2-dr", "row": other},
        {"type": "outcome", "target": T, "row": interrupted},
    )
    journal = resume(tmp_path)
    journal.close()
    assert journal.past.finished == {}
    assert journal.past.intended == {T}


def test_default_target_regions_in_another_order_are_the_same(tmp_path: Path) -> None:
    """A resume given the journal's default target regions in another order (b then a for
    a;b) makes the same jobs, so it is not refused."""
    Journal.open(
        tmp_path,
        manifest="m.csv",
        manifest_sha256=SHA,
        resume=False,
        defaults={"target_region": "eu-west-1;ap-south-1"},
    ).close()
    again = Journal.open(
        tmp_path,
        manifest="m.csv",
        manifest_sha256=SHA,
        resume=True,
        defaults={"target_region": "ap-south-1;eu-west-1"},
    )
    again.close()
