"""The simulation core on its own: Lightsail's rules, with a clock moved by hand."""

from __future__ import annotations

import pytest

from batchcopy.emulator import ApiError, Lightsail, load_seed
from tests.conftest import SMALL_SEED


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Lightsail:
    lightsail = Lightsail(clock=clock, page_size=3)
    load_seed(lightsail, SMALL_SEED)
    return lightsail


def copy(sim: Lightsail, target: str, region: str = "eu-west-1", **params: object) -> dict:
    request = {"sourceRegion": "us-east-1", "targetSnapshotName": target, **params}
    return sim.op_copy_snapshot(region, request, seconds=60)


def test_manual_copy_is_pending_then_available(sim: Lightsail, clock: FakeClock) -> None:
    """A copy starts pending with a Started operation and is available once its time passes."""
    op = copy(sim, "web-copy", sourceSnapshotName="web-1-snap")["operations"][0]
    assert op["status"] == "Started"
    assert op["operationType"] == "CopySnapshot"
    assert op["operationDetails"] == "us-east-1:web-1-snap"
    assert op["location"]["regionName"] == "eu-west-1"
    snap = sim.op_get_instance_snapshot("eu-west-1", {"instanceSnapshotName": "web-copy"})
    assert snap["instanceSnapshot"]["state"] == "pending"
    assert snap["instanceSnapshot"]["fromInstanceName"] == "web-1"
    assert snap["instanceSnapshot"]["sizeInGb"] == 80

    clock.now += 61
    done = sim.op_get_operation("eu-west-1", {"operationId": op["id"]})["operation"]
    assert (done["status"], done["isTerminal"]) == ("Succeeded", True)
    snap = sim.op_get_instance_snapshot("eu-west-1", {"instanceSnapshotName": "web-copy"})
    assert snap["instanceSnapshot"]["state"] == "available"


def test_disk_copy_completes_as_disk_snapshot(sim: Lightsail, clock: FakeClock) -> None:
    """A disk snapshot copies to a disk snapshot that ends completed, keeping its origin."""
    copy(sim, "data-copy", sourceSnapshotName="data-1-snap")
    clock.now += 61
    snap = sim.op_get_disk_snapshot("eu-west-1", {"diskSnapshotName": "data-copy"})["diskSnapshot"]
    assert (snap["state"], snap["fromDiskName"], snap["sizeInGb"]) == ("completed", "data-1", 256)


def test_failed_copy_reports_error_code_and_error_state(sim: Lightsail, clock: FakeClock) -> None:
    """A copy made to fail ends Failed with an errorCode and leaves its snapshot in error."""
    request = {
        "sourceRegion": "us-east-1",
        "targetSnapshotName": "bad",
        "sourceSnapshotName": "web-1-snap",
    }
    op = sim.op_copy_snapshot("eu-west-1", request, seconds=5, error_code="SnapshotCopyFailed")
    clock.now += 6
    done = sim.op_get_operation("eu-west-1", {"operationId": op["operations"][0]["id"]})[
        "operation"
    ]
    assert (done["status"], done["errorCode"]) == ("Failed", "SnapshotCopyFailed")
    snap = sim.op_get_instance_snapshot("eu-west-1", {"instanceSnapshotName": "bad"})
    assert snap["instanceSnapshot"]["state"] == "error"


def test_copy_from_automatic_snapshot_by_date_and_latest(sim: Lightsail) -> None:
    """Automatic sources copy by restore date or latest, into the resource's snapshot kind."""
    op = copy(sim, "web-auto", sourceResourceName="web-1", restoreDate="2026-11-19")
    assert op["operations"][0]["operationDetails"] == "us-east-1:web-1"
    copy(sim, "data-auto", sourceResourceName="data-1", useLatestRestorableAutoSnapshot=True)
    assert sim.op_get_instance_snapshot("eu-west-1", {"instanceSnapshotName": "web-auto"})
    disk = sim.op_get_disk_snapshot("eu-west-1", {"diskSnapshotName": "data-auto"})["diskSnapshot"]
    assert disk["fromDiskName"] == "data-1"


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({"sourceSnapshotName": "missing"}, "NotFoundException", "does not exist"),
        (
            {"sourceResourceName": "missing", "restoreDate": "2026-11-19"},
            "NotFoundException",
            "does not exist",
        ),
        ({}, "InvalidInputException", "exactly one of sourceSnapshotName"),
        (
            {"sourceSnapshotName": "web-1-snap", "sourceResourceName": "web-1"},
            "InvalidInputException",
            "exactly one",
        ),
        ({"sourceResourceName": "web-1"}, "InvalidInputException", "exactly one of restoreDate"),
        (
            {
                "sourceResourceName": "web-1",
                "restoreDate": "2026-11-19",
                "useLatestRestorableAutoSnapshot": True,
            },
            "InvalidInputException",
            "exactly one of restoreDate",
        ),
        (
            {"sourceResourceName": "web-1", "restoreDate": "2026-11-01"},
            "InvalidInputException",
            "dated 2026-11-01",
        ),
        (
            {"sourceResourceName": "web-1", "restoreDate": "2026-02-30"},
            "InvalidInputException",
            "YYYY-MM-DD",
        ),
    ],
)
def test_copy_rejects_bad_sources(sim: Lightsail, params: dict, code: str, words: str) -> None:
    """Bad sources fail with the code Lightsail uses and a message saying what is wrong."""
    with pytest.raises(ApiError) as info:
        copy(sim, "target-ok", **params)
    assert info.value.code == code
    assert words in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize(
    "name", ["a", "-starts-with-hyphen", "ends-", "has space", "x" * 256, "naïve"]
)
def test_copy_rejects_invalid_target_names(sim: Lightsail, name: str) -> None:
    """Target names must be 2-255 characters of \\w and -, not starting or ending with -."""
    with pytest.raises(ApiError, match="not valid") as info:
        copy(sim, name, sourceSnapshotName="web-1-snap")
    assert info.value.code == "InvalidInputException"


def test_target_name_in_use_across_resource_types(sim: Lightsail) -> None:
    """A target name already used in the target region, by any resource type, is refused."""
    copy(sim, "taken", sourceSnapshotName="web-1-snap")
    for existing in ("taken", "web-1", "data-1-snap"):
        with pytest.raises(ApiError, match="already in use") as info:
            copy(
                sim,
                existing,
                region="us-east-1" if existing != "taken" else "eu-west-1",
                sourceSnapshotName="web-1-snap",
            )
        assert info.value.code == "InvalidInputException"
    # The same name in another region is fine: names are unique per region.
    copy(sim, "taken", region="ap-south-1", sourceSnapshotName="web-1-snap")


def test_pending_snapshot_cannot_be_copied(sim: Lightsail, clock: FakeClock) -> None:
    """A copy of a copy waits until the first one is available."""
    copy(sim, "first", sourceSnapshotName="web-1-snap")
    with pytest.raises(ApiError, match="not ready"):
        sim.op_copy_snapshot(
            "us-east-1",
            {
                "sourceRegion": "eu-west-1",
                "sourceSnapshotName": "first",
                "targetSnapshotName": "second",
            },
        )
    clock.now += 61
    sim.op_copy_snapshot(
        "us-east-1",
        {
            "sourceRegion": "eu-west-1",
            "sourceSnapshotName": "first",
            "targetSnapshotName": "second",
        },
    )


def test_listings_paginate_without_gaps_or_repeats(sim: Lightsail, clock: FakeClock) -> None:
    """Get*Snapshots and GetOperations page with pageToken and together list everything once,
    snapshots newest first as Lightsail lists them (a tie in time by name, descending)."""
    for i in range(8):
        clock.now += 0 if i in (3, 4) else 1  # copy-3 and copy-4 made in the same second
        copy(sim, f"copy-{i}", sourceSnapshotName="web-1-snap")

    def drain(method, key: str) -> list[str]:
        seen, token = [], None
        while True:
            page = method("eu-west-1", {"pageToken": token} if token else {})
            assert len(page[key]) <= 3
            seen += [item.get("name") or item["id"] for item in page[key]]
            token = page.get("nextPageToken")
            if not token:
                return seen

    assert drain(sim.op_get_instance_snapshots, "instanceSnapshots") == [
        f"copy-{i}" for i in range(7, -1, -1)
    ]
    operations = drain(sim.op_get_operations, "operations")
    assert len(operations) == len(set(operations)) == 8
    with pytest.raises(ApiError, match="pageToken"):
        sim.op_get_instance_snapshots("eu-west-1", {"pageToken": "%%%"})


def test_only_latest_seven_automatic_snapshots_are_kept(clock: FakeClock) -> None:
    """Lightsail keeps the newest seven automatic snapshots of a resource."""
    sim = Lightsail(clock=clock)
    days = [f"2026-11-{d:02d}" for d in range(1, 11)]
    load_seed(sim, {"regions": {"us-east-1": {"autoSnapshots": {"vm": days}}}})
    autos = sim.op_get_auto_snapshots("us-east-1", {"resourceName": "vm"})["autoSnapshots"]
    assert [a["date"] for a in autos] == days[::-1][:7]


def test_create_tag_and_delete_snapshots(sim: Lightsail, clock: FakeClock) -> None:
    """Snapshots can be created, tagged (tags show on them) and deleted."""
    sim.op_create_instance_snapshot(
        "us-east-1", {"instanceName": "web-1", "instanceSnapshotName": "manual-1"}, seconds=1
    )
    sim.op_create_disk_snapshot(
        "us-east-1", {"diskName": "data-1", "diskSnapshotName": "manual-2"}, seconds=1
    )
    clock.now += 2
    sim.op_tag_resource(
        "us-east-1", {"resourceName": "manual-1", "tags": [{"key": "team", "value": "ops"}]}
    )
    snap = sim.op_get_instance_snapshot("us-east-1", {"instanceSnapshotName": "manual-1"})[
        "instanceSnapshot"
    ]
    assert (snap["state"], snap["tags"]) == ("available", [{"key": "team", "value": "ops"}])
    sim.op_delete_disk_snapshot("us-east-1", {"diskSnapshotName": "manual-2"})
    with pytest.raises(ApiError) as info:
        sim.op_get_disk_snapshot("us-east-1", {"diskSnapshotName": "manual-2"})
    assert info.value.code == "NotFoundException"
    with pytest.raises(ApiError) as info:
        sim.op_delete_instance_snapshot("us-east-1", {"instanceSnapshotName": "manual-2"})
    assert info.value.code == "NotFoundException"


def test_regions_come_from_botocore(sim: Lightsail) -> None:
    """GetRegions lists botocore's Lightsail regions, with zones only when asked."""
    regions = sim.op_get_regions("us-east-1", {})["regions"]
    names = {r["name"] for r in regions}
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= names
    assert "availabilityZones" not in regions[0]
    with_zones = sim.op_get_regions("us-east-1", {"includeAvailabilityZones": True})["regions"]
    assert with_zones[0]["availabilityZones"][0]["state"] == "available"


def test_manual_source_refuses_automatic_only_fields(sim: Lightsail) -> None:
    """restoreDate / useLatestRestorableAutoSnapshot with a manual source is InvalidInput."""
    for extra in ({"restoreDate": "2026-11-19"}, {"useLatestRestorableAutoSnapshot": True}):
        with pytest.raises(ApiError, match="apply only when copying an automatic") as info:
            copy(sim, "t-manual", sourceSnapshotName="web-1-snap", **extra)
        assert info.value.code == "InvalidInputException"


def test_copies_of_automatic_snapshots_say_so(sim: Lightsail) -> None:
    """A copy of an automatic snapshot has isFromAutoSnapshot true; a manual copy false."""
    copy(sim, "from-auto", sourceResourceName="web-1", useLatestRestorableAutoSnapshot=True)
    copy(sim, "from-manual", sourceSnapshotName="web-1-snap")
    get = sim.op_get_instance_snapshot
    auto = get("eu-west-1", {"instanceSnapshotName": "from-auto"})["instanceSnapshot"]
    manual = get("eu-west-1", {"instanceSnapshotName": "from-manual"})["instanceSnapshot"]
    assert (auto["isFromAutoSnapshot"], manual["isFromAutoSnapshot"]) == (True, False)


def test_instances_and_disks_list_page_by_page(sim: Lightsail) -> None:
    """GetInstances and GetDisks page with pageToken, each resource once, with its tags."""
    load_seed(
        sim,
        {
            "regions": {
                "us-east-1": {
                    "instances": [
                        {"name": f"vm-{i}", "tags": [{"key": "app", "value": f"a{i}"}]}
                        for i in range(6)
                    ],
                    "disks": [{"name": "data-2", "sizeInGb": 64, "tags": [{"key": "bare"}]}],
                }
            }
        },
    )

    def drain(method, key: str) -> list[dict]:
        seen, token = [], None
        while True:
            page = method("us-east-1", {"pageToken": token} if token else {})
            assert len(page[key]) <= 3
            seen += page[key]
            token = page.get("nextPageToken")
            if not token:
                return seen

    instances = drain(sim.op_get_instances, "instances")
    assert [i["name"] for i in instances] == sorted(["web-1", *(f"vm-{i}" for i in range(6))])
    assert instances[0]["tags"] == [{"key": "app", "value": "a0"}]
    assert {i["resourceType"] for i in instances} == {"Instance"}
    disks = drain(sim.op_get_disks, "disks")
    assert [(d["name"], d["sizeInGb"], d["tags"]) for d in disks] == [
        ("data-1", 256, []),
        ("data-2", 64, [{"key": "bare"}]),
    ]
    token = sim.op_get_instances("us-east-1", {})["nextPageToken"]
    with pytest.raises(ApiError, match="pageToken"):
        sim.op_get_disks("us-east-1", {"pageToken": token})  # another listing's token
    assert sim.op_get_instances("eu-west-1", {}) == {"instances": []}
