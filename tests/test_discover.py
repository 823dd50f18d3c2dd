"""Discovery: list snapshots in the source regions and write a manifest that copies them."""

from __future__ import annotations

import asyncio
import io
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from batchcopy import CopyJob, Settings, Status, copy_snapshots, load_manifest
from batchcopy.discover import DiscoverError, DiscoverOptions, discover, write_manifest
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.jobs import MANIFEST_FIELDS
from tests.helpers import settings_for

READS = ["GetInstanceSnapshots", "GetDiskSnapshots", "GetInstances", "GetDisks", "GetAutoSnapshots"]


def tags(**pairs: str) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


SEED: dict[str, Any] = {
    "regions": {
        "us-east-1": {
            "instances": [
                {"name": "web-1", "tags": tags(app="web", env="prod")},
                {"name": "web-2", "tags": tags(app="web", env="dev")},
                {"name": "db-1", "tags": tags(app="db", env="prod")},
            ],
            "disks": [
                {"name": "web-data", "tags": tags(app="web")},
                {"name": "db-data", "tags": tags(app="db", env="prod")},
            ],
            "instanceSnapshots": [
                {
                    "name": f"{vm}-nightly",
                    "fromInstanceName": vm,
                    "createdAt": "2026-11-20T03:00:00Z",
                    "tags": tags(app=app, env=env),
                }
                for vm, app, env in (("web-1", "web", "prod"), ("web-2", "web", "dev"))
            ]
            + [
                {"name": "db-1-nightly", "fromInstanceName": "db-1", "tags": tags(app="db")},
                {"name": "web-1-broken", "fromInstanceName": "web-1", "state": "error"},
            ],
            "diskSnapshots": [
                {"name": "web-data-nightly", "fromDiskName": "web-data", "tags": tags(app="web")},
                {
                    "name": "db-data-nightly",
                    "fromDiskName": "db-data",
                    "tags": tags(app="db", env="prod"),
                },
                {"name": "db-data-pending", "fromDiskName": "db-data", "state": "pending"},
            ],
            "autoSnapshots": {
                "web-1": ["2026-11-18", "2026-11-19", "2026-11-20"],
                "db-1": ["2026-11-19", {"date": "2026-11-20", "status": "Failed"}],
                "web-data": ["2026-11-20"],
            },
        },
        "eu-central-1": {"instanceSnapshots": [{"name": "fra-1-nightly"}]},
    }
}
READY_MANUAL = {
    "web-1-nightly",
    "web-2-nightly",
    "db-1-nightly",
    "web-data-nightly",
    "db-data-nightly",
}


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    """Settings for an emulator holding SEED that lists two items a page."""
    async with running_emulator(Emulator(seed=SEED, faults=FaultConfig(page_size=2))) as url:
        yield settings_for(url)


async def rows_for(settings: Settings, **given: Any) -> list[dict[str, str]]:
    given.setdefault("source_regions", ["us-east-1"])
    given.setdefault("target_regions", ["eu-west-1"])
    return await discover(DiscoverOptions(**given), settings)


def sources(rows: list[dict[str, str]]) -> set[str]:
    return {r["source_snapshot_name"] or r["source_resource_name"] for r in rows}


def targets(rows: list[dict[str, str]]) -> list[str]:
    return [f"{r['target_region']}/{r['target_snapshot_name']}" for r in rows]


def load_rows(rows: list[dict[str, str]]) -> list[CopyJob]:
    return [CopyJob.from_row({**row, "line": i + 2}) for i, row in enumerate(rows)]


async def test_manual_snapshots_make_one_row_per_target_region(settings: Settings) -> None:
    """Each ready manual snapshot becomes one row per target region, named source-region."""
    rows = await rows_for(settings, target_regions=["eu-west-1", "ap-south-1"])
    assert sources(rows) == READY_MANUAL
    assert len(rows) == 2 * len(READY_MANUAL)
    assert all(tuple(row) == MANIFEST_FIELDS[:-1] for row in rows)  # no account: the base's
    assert {
        "source_region": "us-east-1",
        "target_region": "ap-south-1",
        "source_snapshot_name": "web-1-nightly",
        "source_resource_name": "",
        "restore_date": "",
        "use_latest_restorable_auto_snapshot": "",
        "target_snapshot_name": "web-1-nightly-ap-south-1",
    } in rows
    # Sorted by source, then target region: one source's regions sit side by side.
    assert targets(rows)[:2] == [
        "ap-south-1/db-1-nightly-ap-south-1",
        "eu-west-1/db-1-nightly-eu-west-1",
    ]


async def test_several_source_regions_are_listed_in_order(settings: Settings) -> None:
    """Rows from several source regions come sorted by source region, then source."""
    rows = await rows_for(settings, source_regions=["us-east-1", "eu-central-1"])
    assert [r["source_region"] for r in rows] == ["eu-central-1"] + ["us-east-1"] * 5
    assert rows[0]["source_snapshot_name"] == "fra-1-nightly"


async def test_snapshots_not_ready_are_left_out_with_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Pending and failed snapshots cannot be copied: they are left out, and the log says so."""
    with caplog.at_level(logging.WARNING, logger="batchcopy.discover"):
        rows = await rows_for(settings)
    assert not {"db-data-pending", "web-1-broken"} & sources(rows)
    assert "db-data-pending is pending" in caplog.text
    assert "web-1-broken is error" in caplog.text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("disk", {"web-data-nightly", "db-data-nightly"}),
        ("instance", {"web-1-nightly", "web-2-nightly", "db-1-nightly"}),
        ("all", READY_MANUAL),
    ],
)
async def test_kind_selects_instance_or_disk_snapshots(
    settings: Settings, kind: str, expected: set[str]
) -> None:
    """--kind instance or disk lists only that kind of snapshot."""
    assert sources(await rows_for(settings, kind=kind)) == expected


async def test_include_and_exclude_globs_match_the_source_name(settings: Settings) -> None:
    """--include keeps matching names, --exclude drops them; automatic ones by resource name."""
    rows = await rows_for(settings, include=["web-*", "db-1-*"], exclude=["*-2-*", "db-*"])
    assert sources(rows) == {"web-1-nightly", "web-data-nightly"}
    auto = await rows_for(settings, manual=False, auto="latest", include=["web-*"])
    assert sources(auto) == {"web-1", "web-data"}


async def test_tags_must_all_match(settings: Settings) -> None:
    """Every --tag must match: KEY=VALUE that value, a bare KEY any value."""
    rows = await rows_for(settings, tags=["app=web", "env=prod"])
    assert sources(rows) == {"web-1-nightly"}
    rows = await rows_for(settings, tags=["env"])
    assert sources(rows) == {"web-1-nightly", "web-2-nightly", "db-data-nightly"}
    # Automatic snapshots are matched on their instance's or disk's tags.
    auto = await rows_for(settings, manual=False, auto="latest", tags=["env=prod"])
    assert sources(auto) == {"web-1", "db-1"}


async def test_auto_latest_makes_one_row_per_resource(settings: Settings) -> None:
    """--auto latest: one row per instance or disk with a restorable automatic snapshot, its
    date resolved now and put in the name."""
    rows = await rows_for(settings, manual=False, auto="latest")
    assert sources(rows) == {"web-1", "db-1", "web-data"}
    web = next(r for r in rows if r["source_resource_name"] == "web-1")
    assert web == {
        "source_region": "us-east-1",
        "target_region": "eu-west-1",
        "source_snapshot_name": "",
        "source_resource_name": "web-1",
        "restore_date": "2026-11-20",
        "use_latest_restorable_auto_snapshot": "",
        "target_snapshot_name": "web-1-auto-2026-11-20-eu-west-1",
    }
    db = next(r for r in rows if r["source_resource_name"] == "db-1")
    assert db["restore_date"] == "2026-11-19"  # its 2026-11-20 snapshot failed


async def test_nightly_discover_and_run_copies_each_new_latest_snapshot() -> None:
    """discover --auto latest, run; tomorrow's automatic snapshot appears; discover and run
    again: a second copy under a new name, not "already there"."""
    emulator = Emulator(seed=SEED)
    async with running_emulator(emulator) as url:
        settings = settings_for(url)
        options: dict[str, Any] = {"manual": False, "auto": "latest", "include": ["web-1"]}
        first = await rows_for(settings, **options)
        await copy_snapshots(load_rows(first), settings)
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": ["2026-11-21"]}}}})
        second = await rows_for(settings, **options)
        report = await copy_snapshots(load_rows(second), settings)
    assert targets(first) == ["eu-west-1/web-1-auto-2026-11-20-eu-west-1"]
    assert targets(second) == ["eu-west-1/web-1-auto-2026-11-21-eu-west-1"]
    assert [r.status for r in report.results] == [Status.STARTED]
    assert set(emulator.stats.copies_accepted) == {
        "eu-west-1/web-1-auto-2026-11-20-eu-west-1",
        "eu-west-1/web-1-auto-2026-11-21-eu-west-1",
    }


async def test_auto_all_makes_one_row_per_successful_date(settings: Settings) -> None:
    """--auto all: one row per automatic snapshot whose status is Success, named by date."""
    rows = await rows_for(settings, manual=False, auto="all")
    assert [(r["source_resource_name"], r["restore_date"]) for r in rows] == [
        ("db-1", "2026-11-19"),  # its 2026-11-20 snapshot failed
        ("web-1", "2026-11-18"),
        ("web-1", "2026-11-19"),
        ("web-1", "2026-11-20"),
        ("web-data", "2026-11-20"),
    ]
    assert rows[0]["target_snapshot_name"] == "db-1-auto-2026-11-19-eu-west-1"
    assert not any(r["use_latest_restorable_auto_snapshot"] for r in rows)


async def test_auto_date_picks_resources_with_a_snapshot_that_day(settings: Settings) -> None:
    """--auto YYYY-MM-DD: a row for each resource with a successful snapshot on that day."""
    rows = await rows_for(settings, manual=False, auto="2026-11-20")
    assert targets(rows) == [
        "eu-west-1/web-1-auto-2026-11-20-eu-west-1",
        "eu-west-1/web-data-auto-2026-11-20-eu-west-1",
    ]
    assert {r["restore_date"] for r in rows} == {"2026-11-20"}


async def test_auto_adds_to_manual_snapshots(settings: Settings) -> None:
    """With --auto and manual snapshots left on, both kinds of source are listed."""
    rows = await rows_for(settings, auto="latest")
    assert sources(rows) == READY_MANUAL | {"web-1", "db-1", "web-data"}


async def test_default_names_keep_automatic_and_manual_copies_apart() -> None:
    """Manual snapshots named instance-date do not clash with automatic ones of that date."""
    async with running_emulator(Emulator(seed=demo_seed())) as url:
        rows = await rows_for(settings_for(url), auto="all", include=["nyc-web-1*"])
    names = [r["target_snapshot_name"] for r in rows]
    assert "nyc-web-1-2026-11-20-eu-west-1" in names  # the manual snapshot nyc-web-1-2026-11-20
    assert "nyc-web-1-auto-2026-11-20-eu-west-1" in names  # nyc-web-1's automatic snapshot
    assert len(names) == len(set(names))


async def test_name_template_fills_every_placeholder(settings: Settings) -> None:
    """Placeholders: {source} {source_region} {target_region} {kind} {date}."""
    template = "{kind}-{source_region}-{source}-{date}-to-{target_region}"
    rows = await rows_for(settings, auto="latest", include=["web-1*"], name_template=template)
    assert sorted(targets(rows)) == [
        "eu-west-1/instance-us-east-1-web-1-2026-11-20-to-eu-west-1",
        # A manual snapshot's {date} is the day it was created (UTC).
        "eu-west-1/instance-us-east-1-web-1-nightly-2026-11-20-to-eu-west-1",
    ]


async def test_invalid_names_fail_before_anything_is_written(settings: Settings) -> None:
    """A template making an invalid name is an error naming the item and the rule."""
    out = io.StringIO()
    with pytest.raises(DiscoverError) as info:
        write_manifest(await rows_for(settings, name_template="-{source}"), out)
    message = str(info.value)
    assert "instance snapshot us-east-1/web-1-nightly -> eu-west-1" in message
    assert "'-web-1-nightly' is not a valid name" in message
    assert "2-255 characters" in message
    assert message.startswith("5 target name(s) made by --name-template '-{source}' break")
    assert out.getvalue() == ""


async def test_two_sources_with_one_target_name_are_an_error(settings: Settings) -> None:
    """Two items that would get the same name in a target region are an error naming both."""
    with pytest.raises(DiscoverError) as info:
        await rows_for(settings, auto="all", manual=False, name_template="{source}-copy")
    message = str(info.value)
    assert (
        "the automatic snapshot 2026-11-19 of instance us-east-1/web-1 and the automatic "
        "snapshot 2026-11-18 of instance us-east-1/web-1 -> eu-west-1/web-1-copy"
    ) in message
    assert message.startswith(
        "2 target name(s) made by --name-template '{source}-copy' are not unique in their "
        "target region; give a --name-template that tells them apart"
    )


async def test_nothing_matched_is_an_error(settings: Settings) -> None:
    """Filters that match nothing are an error rather than an empty manifest."""
    with pytest.raises(
        DiscoverError, match=r"found no manual snapshots .* matching --include nope"
    ):
        await rows_for(settings, include=["nope-*"])


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"source_regions": []}, "at least one --source-region"),
        ({"source_regions": ["mars-1"]}, "'mars-1' is not a Lightsail region"),
        ({"target_regions": ["eu-west-1", "eu-west-1"]}, "given twice"),
        ({"kind": "vm"}, "--kind must be instance, disk or all"),
        ({"auto": "yesterday"}, "--auto must be none, latest, all or a date"),
        ({"auto": "2026-02-30"}, "--auto must be"),
        ({"manual": False}, "nothing to list"),
        ({"tags": ["=web"]}, "--tag '=web'"),
        ({"name_template": "{name}-{target_region}"}, "unknown placeholder {name}"),
        ({"name_template": "{}"}, "unknown placeholder {}"),
        ({"name_template": "{source!r}"}, "no format spec or conversion"),
        ({"name_template": "{source"}, "--name-template '{source'"),
    ],
)
def test_unusable_options_are_refused_when_made(given: dict[str, Any], words: str) -> None:
    """Options that cannot work are refused before any call, naming the option."""
    given = {"source_regions": ["us-east-1"], "target_regions": ["eu-west-1"], **given}
    with pytest.raises(DiscoverError) as info:
        DiscoverOptions(**given)
    assert words in str(info.value)


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_written_manifests_load_with_the_same_jobs(
    settings: Settings, tmp_path: Path, fmt: str
) -> None:
    """The CSV or JSON written loads as a manifest with one job per row, per region."""
    regions = ["eu-west-1", "ap-south-1"]
    for auto in ("all", "latest"):
        rows = await rows_for(settings, auto=auto, target_regions=regions)
        path = tmp_path / f"{auto}.{fmt}"
        with path.open("w", newline="") as out:
            write_manifest(rows, out, fmt)
        manifest = load_manifest(path)
        assert manifest.format == fmt
        assert manifest.total == len(rows)
        assert dict(manifest.per_region) == dict(Counter(r["target_region"] for r in rows))
        assert [job.to_row() for job in manifest.jobs()] == rows


def test_json_leaves_out_empty_fields() -> None:
    """JSON objects hold only the fields a row uses; latest is a JSON boolean."""
    row = dict.fromkeys(MANIFEST_FIELDS, "") | {
        "source_region": "us-east-1",
        "target_region": "eu-west-1",
        "source_resource_name": "web-1",
        "use_latest_restorable_auto_snapshot": "true",
        "target_snapshot_name": "web-1-auto-latest-eu-west-1",
    }
    out = io.StringIO()
    write_manifest([row], out, "json")
    assert out.getvalue() == (
        '[\n  {"source_region": "us-east-1", "target_region": "eu-west-1", '
        '"source_resource_name": "web-1", "use_latest_restorable_auto_snapshot": true, '
        '"target_snapshot_name": "web-1-auto-latest-eu-west-1"}\n]\n'
    )
    with pytest.raises(DiscoverError, match="--format must be csv or json"):
        write_manifest([row], out, "yaml")


async def test_listing_survives_errors_and_throttling(settings: Settings) -> None:
    """Failed and throttled listing calls are retried; the manifest is the same."""
    clean = await rows_for(settings, auto="all")
    faults = {"error_rate": 0.4, "actions": READS, "read_rate": 40, "read_burst": 2}
    emulator = Emulator(seed=SEED, faults=FaultConfig.from_json({"page_size": 2, **faults}))
    async with running_emulator(emulator) as url:
        rows = await rows_for(settings_for(url), auto="all")
    assert rows == clean
    outcomes: Counter[str] = Counter()
    for (_, _, outcome), count in emulator.stats.requests.items():
        outcomes[outcome] += count
    assert outcomes["error"] > 0
    assert outcomes["throttled"] > 0


async def test_discover_then_copy_twice_sends_no_copy_the_second_time(tmp_path: Path) -> None:
    """discover -> copy -> copy again: the second run sends no CopySnapshot and skips all."""
    # Copies finish at once, so the second run finds them done (not still copying: started).
    emulator = Emulator(
        seed=demo_seed(), faults=FaultConfig.from_json({"page_size": 5, "operation_seconds": 0})
    )
    regions = ["eu-west-1", "ap-south-1"]
    async with running_emulator(emulator) as url:
        settings = settings_for(url)
        rows = await rows_for(settings, auto="latest", target_regions=regions)
        path = tmp_path / "discovered.csv"
        with path.open("w", newline="") as out:
            write_manifest(rows, out)
        manifest = load_manifest(path)

        first = await copy_snapshots(manifest, settings)
        assert first.exit_code == 0
        assert {r.status for r in first.results} == {Status.STARTED}
        sent = {r: emulator.stats.requests[r, "CopySnapshot", "ok"] for r in regions}
        assert sum(sent.values()) == manifest.total == len(rows)

        second = await copy_snapshots(manifest, settings)
        assert {r: emulator.stats.requests[r, "CopySnapshot", "ok"] for r in regions} == sent
        assert len(second.results) == manifest.total
        assert {r.status for r in second.results} == {Status.SKIPPED}


async def test_discovering_again_after_copies_in_the_same_region_is_stable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Copies made into a source region are not discovered as new sources next time: by
    their provenance tag, or (untagged) because another row targets them."""
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json({"operation_seconds": 0}))
    async with running_emulator(emulator) as url:
        settings = settings_for(url)
        given = {"target_regions": ["us-east-1", "eu-west-1"], "include": ["nyc-web-*"]}
        rows = await rows_for(settings, **given)
        assert (await copy_snapshots(load_rows(rows), settings)).exit_code == 0
        await asyncio.sleep(0.01)  # the copies are available now, so they could be sources
        with caplog.at_level(logging.INFO, logger="batchcopy.discover"):
            again = await rows_for(settings, **given)
        for snapshot in emulator.sim.regions["us-east-1"].snapshots.values():
            snapshot.tags.pop("batchcopy:source", None)
        with caplog.at_level(logging.INFO, logger="batchcopy.discover"):
            untagged = await rows_for(settings, **given)
    assert again == untagged == rows
    assert "us-east-1/nyc-web-1-2026-11-20-us-east-1 is a copy made by batchcopy" in caplog.text
    assert "us-east-1/nyc-web-1-2026-11-20-us-east-1 is the target of another row" in caplog.text
    assert "not ready" not in caplog.text
