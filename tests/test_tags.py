"""Tags on copies: the user's, the source's, and provenance; a tagging failure keeps the copy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from batchcopy import Status, copy_snapshots
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from tests.helpers import manual, settings_for


def tags_of(emulator: Emulator, region: str, name: str) -> dict[str, str]:
    return dict(emulator.sim.regions[region].snapshots[name].tags)


async def test_copies_get_user_source_and_provenance_tags() -> None:
    """--tag and --copy-tags put the given and the source's tags on each copy, plus
    batchcopy:source and batchcopy:run-id."""
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        settings = settings_for(url, tags=(("team", "ops"),), copy_tags=True)
        report = await copy_snapshots([manual(1, "eu-west-1", "tagged")], settings)
    (result,) = report.results
    assert (result.status, result.tag_error) == (Status.STARTED, "")
    tags = tags_of(emulator, "eu-west-1", "tagged")
    assert tags["team"] == "ops"
    assert tags["app"] == "web"  # the source snapshot's own tag
    assert tags["batchcopy:source"] == "us-east-1/nyc-web-1-2026-11-20"
    assert tags["batchcopy:run-id"]


async def test_without_tags_asked_a_copy_gets_only_provenance() -> None:
    """Without --tag or --copy-tags each copy still gets its provenance (one TagResource),
    and nothing else."""
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        await copy_snapshots([manual(1, "eu-west-1", "plain")], settings_for(url))
    assert emulator.stats.requests["eu-west-1", "TagResource", "ok"] == 1
    assert set(tags_of(emulator, "eu-west-1", "plain")) == {"batchcopy:source", "batchcopy:run-id"}


async def test_tagging_failure_is_reported_but_the_copy_stands() -> None:
    """If tagging fails the row says so and the run exits 1, but the copy is not undone."""
    faults = {"regions": {"eu-west-1": {"error_rate": 1, "actions": ["TagResource"]}}}
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(
            [manual(1, "eu-west-1", "untagged")], settings_for(url, tags=(("k", "v"),))
        )
    (result,) = report.results
    assert result.status is Status.STARTED
    assert result.tag_error.startswith("ServiceException")
    assert report.summary.tag_failures == 1
    assert report.exit_code == 1
    assert "untagged" in emulator.sim.regions["eu-west-1"].snapshots


async def test_a_re_run_finishes_tagging_that_failed() -> None:
    """A copy whose tagging failed is listed for retry; running again tags it (skipped, exit 0)."""
    faults = {
        "operation_seconds": 0,  # done before the re-run, which so finds it complete
        "regions": {"eu-west-1": {"error_rate": 1, "actions": ["TagResource"]}},
    }
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    job = manual(1, "eu-west-1", "tag-later")
    async with running_emulator(emulator) as url:
        settings = settings_for(url, tags=(("team", "ops"),))
        first = await copy_snapshots([job], settings)
        emulator.configure(FaultConfig())
        again = await copy_snapshots([job], settings)
    assert first.results[0].tag_error
    (result,) = again.results
    assert (result.status, result.tag_error, again.exit_code) == (Status.SKIPPED, "", 0)
    tags = tags_of(emulator, "eu-west-1", "tag-later")
    assert tags["team"] == "ops"
    assert tags["batchcopy:source"] == "us-east-1/nyc-web-1-2026-11-20"
    assert tags["batchcopy:run-id"]  # the run that finished tagging it, as none was there
    assert emulator.stats.copies_accepted == {"eu-west-1/tag-later": 1}


async def test_a_copied_sources_own_provenance_never_becomes_the_copys() -> None:
    """--copy-tags from a source that is itself a copy (tagged batchcopy:...) gives the new
    copy its own provenance, not the source's."""
    seed = demo_seed()
    seed["regions"]["us-east-1"]["instanceSnapshots"].append(
        {
            "name": "was-a-copy",
            "fromInstanceName": "nyc-web-1",
            "sizeInGb": 40,
            "createdAt": "2026-11-20T05:00:00Z",
            "tags": [
                {"key": "batchcopy:source", "value": "eu-west-1/elsewhere"},
                {"key": "batchcopy:run-id", "value": "an-old-run"},
                {"key": "app", "value": "web"},
            ],
        }
    )
    emulator = Emulator(seed=seed)
    async with running_emulator(emulator) as url:
        job = manual(1, "eu-west-1", "copy-of-copy", source="was-a-copy")
        report = await copy_snapshots([job], settings_for(url, copy_tags=True))
    assert report.exit_code == 0
    tags = tags_of(emulator, "eu-west-1", "copy-of-copy")
    assert tags["batchcopy:source"] == "us-east-1/was-a-copy"
    assert tags["batchcopy:run-id"] != "an-old-run"
    assert tags["app"] == "web"


async def test_resuming_a_copy_that_was_not_tagged_is_not_a_lost_answer(tmp_path: Path) -> None:
    """A run whose copy was accepted but could not be tagged, resumed: the copy is tagged,
    not sent again, and not counted as reconciled after a lost answer (its answer came)."""
    faults = {
        "operation_seconds": 0,
        "regions": {"eu-west-1": {"error_rate": 1, "actions": ["TagResource"]}},
    }
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    job = manual(1, "eu-west-1", "tag-on-resume")
    async with running_emulator(emulator) as url:
        first = await copy_snapshots([job], settings_for(url), report_dir=tmp_path / "r")
        emulator.configure(FaultConfig())
        again = await copy_snapshots(
            [job], settings_for(url), report_dir=tmp_path / "r", resume=True
        )
    assert first.results[0].tag_error
    (result,) = again.results
    assert (result.status, result.reconciled, result.tag_error) == (Status.STARTED, False, "")
    assert again.summary.reconciled == 0
    assert tags_of(emulator, "eu-west-1", "tag-on-resume")["batchcopy:source"]
    assert emulator.stats.copies_accepted == {"eu-west-1/tag-on-resume": 1}


async def test_a_throttled_tag_is_logged_with_the_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """-vv shows retries, and a tag's are among them: a bucket of one that the copy has
    just spent throttles the tag sent 50 ms after it, and the log says so."""
    faults = FaultConfig.from_json({"regions": {"eu-west-1": {"copy_rate": 0.5, "copy_burst": 1}}})
    emulator = Emulator(seed=demo_seed(), faults=faults)
    async with running_emulator(emulator) as url:
        settings = settings_for(url, rate=20, burst=1, adaptive=False)
        with caplog.at_level(logging.DEBUG, logger="batchcopy.engine"):
            report = await copy_snapshots([manual(1, "eu-west-1", "tagged")], settings)
    (result,) = report.results
    assert (result.status, result.tag_error) == (Status.STARTED, "")
    assert report.summary.throttled_by_action.get("TagResource", 0) >= 1
    assert "eu-west-1/tagged: tagging throttled" in caplog.text
