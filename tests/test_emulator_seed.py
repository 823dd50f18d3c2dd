"""Seed data: the documented format, pasted AWS CLI output, defaults, clear errors."""

from __future__ import annotations

import datetime as dt

import pytest

from batchcopy.emulator import Lightsail, SeedError, demo_seed, load_seed

# Trimmed output of `aws lightsail get-instance-snapshots` from a real account.
PASTED = {
    "instanceSnapshots": [
        {
            "name": "WordPress-1-1700000000",
            "arn": "arn:aws:lightsail:us-east-2:111122223333:InstanceSnapshot/0b7e9d2c-1111-2222",
            "supportCode": "111122223333/ami-0123456789abcdef0",
            "createdAt": "2026-11-01T10:15:30.123000+00:00",
            "location": {"availabilityZone": "all", "regionName": "us-east-2"},
            "resourceType": "InstanceSnapshot",
            "tags": [{"key": "env", "value": "prod"}],
            "state": "available",
            "fromAttachedDisks": [],
            "fromInstanceName": "WordPress-1",
            "fromInstanceArn": "arn:aws:lightsail:us-east-2:111122223333:Instance/abc",
            "fromBlueprintId": "wordpress",
            "fromBundleId": "micro_3_0",
            "isFromAutoSnapshot": False,
            "sizeInGb": 40,
            "someFieldFromTheFuture": 1,
        }
    ]
}


def sim() -> Lightsail:
    return Lightsail(clock=lambda: 1_800_000_000.0)


def test_pasted_aws_cli_output_is_accepted_as_is() -> None:
    """The whole output of get-instance-snapshots can be pasted in; unknown fields are dropped."""
    lightsail = sim()
    load_seed(lightsail, {"regions": {"us-east-2": {"instanceSnapshots": PASTED}}})
    snap = lightsail.op_get_instance_snapshot(
        "us-east-2", {"instanceSnapshotName": "WordPress-1-1700000000"}
    )["instanceSnapshot"]
    assert snap["arn"] == PASTED["instanceSnapshots"][0]["arn"]
    expected = dt.datetime(2026, 11, 1, 10, 15, 30, 123000, tzinfo=dt.UTC).timestamp()
    assert snap["createdAt"] == pytest.approx(expected)
    assert (snap["fromBlueprintId"], snap["sizeInGb"], snap["tags"]) == (
        "wordpress",
        40,
        [{"key": "env", "value": "prod"}],
    )
    assert "someFieldFromTheFuture" not in snap


def test_missing_fields_get_defaults() -> None:
    """Only a name is needed; state, size and times get sensible defaults."""
    lightsail = sim()
    load_seed(lightsail, {"regions": {"eu-west-1": {"diskSnapshots": [{"name": "d1"}]}}})
    snap = lightsail.op_get_disk_snapshot("eu-west-1", {"diskSnapshotName": "d1"})["diskSnapshot"]
    assert snap["state"] == "completed"
    assert snap["sizeInGb"] > 0
    assert snap["createdAt"] < 1_800_000_000.0


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({}, '"regions"'),
        ({"regions": {"mars-1": {}}}, "regions.mars-1: not a Lightsail region"),
        (
            {"regions": {"us-east-1": {"snapshots": []}}},
            "regions.us-east-1.snapshots: unknown section",
        ),
        (
            {"regions": {"us-east-1": {"instanceSnapshots": [{"sizeInGb": 1}]}}},
            "regions.us-east-1.instanceSnapshots[0].name: required",
        ),
        (
            {"regions": {"us-east-1": {"disks": [{"name": "d", "sizeInGb": "big"}]}}},
            "regions.us-east-1.disks[0].sizeInGb",
        ),
        (
            {"regions": {"us-east-1": {"autoSnapshots": {"vm": ["2026-13-01"]}}}},
            "regions.us-east-1.autoSnapshots.vm[0]",
        ),
        (
            {"regions": {"us-east-1": {"instances": [{"name": "a1"}], "disks": [{"name": "a1"}]}}},
            "already in use",
        ),
        (
            {
                "regions": {
                    "us-east-1": {"diskSnapshots": [{"name": "s", "createdAt": "yesterday"}]}
                }
            },
            "createdAt",
        ),
    ],
)
def test_bad_seed_data_names_the_place(data: object, where: str) -> None:
    """A seed error says where in the file the problem is."""
    with pytest.raises(SeedError) as info:
        load_seed(sim(), data)
    assert where in str(info.value)


def test_demo_data_has_several_regions_dozens_of_snapshots_and_autos() -> None:
    """The demo account is big enough to show a real migration."""
    lightsail = sim()
    load_seed(lightsail, demo_seed())
    populated = [r for r in lightsail.regions.values() if r.snapshots]
    assert len(populated) >= 3
    assert sum(len(r.snapshots) for r in populated) >= 36
    autos = [res for r in populated for res in r.resources.values() if res.auto_snapshots]
    assert autos
    assert all(len(res.auto_snapshots) <= 7 for res in autos)
