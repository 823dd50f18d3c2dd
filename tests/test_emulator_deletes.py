"""Deletes in the emulator: DeleteInstanceSnapshot and DeleteDiskSnapshot with Lightsail's
answers and errors, the cautious refusal to delete a pending copy's source, per-account
state, faults and the ``deletes_accepted`` counter; and seeded histories of many nights."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batchcopy.emulator import (
    ApiError,
    Emulator,
    FaultConfig,
    Lightsail,
    load_seed,
    running_emulator,
)
from batchcopy.jobs import CopyJob
from batchcopy.lightsail import LightsailClients
from batchcopy.provenance import RUN_TAG, SOURCE_TAG, source_label
from tests.conftest import SMALL_SEED, raw_call
from tests.helpers import settings_for
from tests.test_emulator_accounts import SEED, SHOP, WEB, assume, aws
from tests.test_emulator_sim import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Lightsail:
    lightsail = Lightsail(clock=clock)
    load_seed(lightsail, SMALL_SEED)
    return lightsail


def _copy(sim: Lightsail, source: str, target: str, seconds: float = 60, **how: Any) -> str:
    """A copy of ``source`` (us-east-1) into eu-west-1; its operation id."""
    request = {"sourceRegion": "us-east-1", "sourceSnapshotName": source}
    answer = sim.op_copy_snapshot(
        "eu-west-1", {**request, "targetSnapshotName": target}, seconds=seconds, **how
    )
    return str(answer["operations"][0]["id"])


def _code(call: Any) -> str:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.code


def test_a_missing_name_or_one_of_the_other_kind_is_not_found(sim: Lightsail) -> None:
    """Deleting a name that does not exist, or that names a snapshot of the other kind (or
    an instance), answers NotFoundException and deletes nothing."""
    delete_instance = sim.op_delete_instance_snapshot
    delete_disk = sim.op_delete_disk_snapshot
    for call in (
        lambda: delete_instance("us-east-1", {"instanceSnapshotName": "no-such"}),
        lambda: delete_disk("us-east-1", {"diskSnapshotName": "no-such"}),
        lambda: delete_instance("us-east-1", {"instanceSnapshotName": "data-1-snap"}),
        lambda: delete_disk("us-east-1", {"diskSnapshotName": "web-1-snap"}),
        lambda: delete_instance("us-east-1", {"instanceSnapshotName": "web-1"}),
        lambda: delete_instance("eu-west-1", {"instanceSnapshotName": "web-1-snap"}),
    ):
        assert _code(call) == "NotFoundException"
    assert set(sim.regions["us-east-1"].snapshots) == {"web-1-snap", "data-1-snap"}


def test_a_delete_answers_a_terminal_operation_and_the_snapshot_is_gone(sim: Lightsail) -> None:
    """A delete answers one Succeeded, terminal operation without operationDetails (as the
    real service does); the snapshot no longer lists, and GetOperation finds the delete."""
    answer = sim.op_delete_disk_snapshot("us-east-1", {"diskSnapshotName": "data-1-snap"})
    (operation,) = answer["operations"]
    assert (operation["status"], operation["isTerminal"]) == ("Succeeded", True)
    assert (operation["operationType"], operation["resourceType"]) == (
        "DeleteDiskSnapshot",
        "DiskSnapshot",
    )
    assert "operationDetails" not in operation
    listed = sim.op_get_disk_snapshots("us-east-1", {})["diskSnapshots"]
    assert listed == []
    found = sim.op_get_operation("us-east-1", {"operationId": operation["id"]})["operation"]
    assert found == operation


def test_the_source_of_a_pending_copy_cannot_be_deleted(sim: Lightsail, clock: FakeClock) -> None:
    """While a copy of a snapshot is still running, deleting that snapshot is refused with
    InvalidInputException and it stays; once the copy has ended, the delete goes through."""
    _copy(sim, "web-1-snap", "web-1-dr")
    with pytest.raises(ApiError) as info:
        sim.op_delete_instance_snapshot("us-east-1", {"instanceSnapshotName": "web-1-snap"})
    assert info.value.code == "InvalidInputException"
    assert "web-1-dr" in info.value.message
    assert "web-1-snap" in sim.regions["us-east-1"].snapshots
    clock.now += 61
    sim.op_delete_instance_snapshot("us-east-1", {"instanceSnapshotName": "web-1-snap"})
    assert "web-1-snap" not in sim.regions["us-east-1"].snapshots
    # The copy made from it is a snapshot of its own and stays.
    copy = sim.op_get_instance_snapshot("eu-west-1", {"instanceSnapshotName": "web-1-dr"})
    assert copy["instanceSnapshot"]["state"] == "available"


def test_a_copy_that_failed_no_longer_holds_its_source(sim: Lightsail, clock: FakeClock) -> None:
    """A copy whose operation ended Failed holds nothing: its source may be deleted, and so
    may its own snapshot in state error."""
    _copy(sim, "data-1-snap", "data-1-dr", error_code="SnapshotCopyFailed")
    assert (
        _code(lambda: sim.op_delete_disk_snapshot("us-east-1", {"diskSnapshotName": "data-1-snap"}))
        == "InvalidInputException"
    )
    clock.now += 61
    sim.op_delete_disk_snapshot("us-east-1", {"diskSnapshotName": "data-1-snap"})
    failed = sim.op_get_disk_snapshot("eu-west-1", {"diskSnapshotName": "data-1-dr"})
    assert failed["diskSnapshot"]["state"] == "error"
    sim.op_delete_disk_snapshot("eu-west-1", {"diskSnapshotName": "data-1-dr"})
    assert not sim.regions["eu-west-1"].snapshots


def test_a_pending_copy_holds_only_its_own_source(sim: Lightsail) -> None:
    """A running copy holds the snapshot it copies, in its source region, and nothing else:
    a snapshot of the same name in another region, or another snapshot, may go."""
    load_seed(sim, {"regions": {"eu-west-1": {"instanceSnapshots": [{"name": "web-1-snap"}]}}})
    _copy(sim, "web-1-snap", "web-1-dr")
    sim.op_delete_instance_snapshot("eu-west-1", {"instanceSnapshotName": "web-1-snap"})
    sim.op_delete_disk_snapshot("us-east-1", {"diskSnapshotName": "data-1-snap"})
    assert set(sim.regions["us-east-1"].snapshots) == {"web-1-snap"}


# -- over the wire: accounts, faults, counters -----------------------------------------------


def _instance_snapshot(name: str) -> dict[str, Any]:
    return {"name": name, "fromInstanceName": "web-1", "sizeInGb": 80}


async def test_deletes_are_counted_per_target_once_they_take_effect() -> None:
    """deletes_accepted counts, per region and name, the deletes that took effect: a delete
    of a missing name, a refused one and one failed before it was recorded count nothing;
    one whose answer was lost after it took effect counts."""
    snaps = [_instance_snapshot(f"old-{i}") for i in range(4)]
    emulator = Emulator(seed={"regions": {"us-east-1": {"instanceSnapshots": snaps}}})
    async with running_emulator(emulator) as url:

        async def delete(name: str) -> int:
            params = {"instanceSnapshotName": name}
            try:
                status, _, _ = await raw_call(url, "DeleteInstanceSnapshot", params)
            except Exception:  # a dropped connection: no answer at all
                return 0
            return status

        assert await delete("old-0") == 200
        assert await delete("old-0") == 400  # gone by now: NotFoundException
        emulator.configure(FaultConfig.from_json({"error_rate": 1}))
        assert await delete("old-1") == 500
        emulator.configure(FaultConfig.from_json({"drop_before_rate": 1}))
        assert await delete("old-2") == 0
        emulator.configure(
            FaultConfig.from_json({"drop_after_rate": 1, "actions": ["DeleteInstanceSnapshot"]})
        )
        assert await delete("old-3") == 0
    assert emulator.stats.deletes_accepted == {"us-east-1/old-0": 1, "us-east-1/old-3": 1}
    assert set(emulator.sim.regions["us-east-1"].snapshots) == {"old-1", "old-2"}
    stats = emulator.stats.to_json()
    assert stats["deletes_accepted"] == {"us-east-1/old-0": 1, "us-east-1/old-3": 1}
    requests = stats["requests"]["us-east-1"]["DeleteInstanceSnapshot"]
    assert requests == {"ok": 1, "client_error": 1, "error": 1, "dropped": 2}


async def test_every_delete_request_is_counted_per_target_whatever_its_answer() -> None:
    """delete_requests counts, per region and name, every delete that reached the emulator:
    a second delete of a snapshot already gone shows as a second request, and so do a
    throttled, a failed and a dropped one."""
    snaps = [_instance_snapshot(f"old-{i}") for i in range(3)]
    emulator = Emulator(seed={"regions": {"us-east-1": {"instanceSnapshots": snaps}}})
    async with running_emulator(emulator) as url:

        async def delete(name: str) -> None:
            with contextlib.suppress(Exception):  # a dropped connection: no answer at all
                await raw_call(url, "DeleteInstanceSnapshot", {"instanceSnapshotName": name})

        await delete("old-0")
        await delete("old-0")
        emulator.configure(FaultConfig.from_json({"error_rate": 1}))
        await delete("old-1")
        emulator.configure(FaultConfig.from_json({"drop_after_rate": 1}))
        await delete("old-1")
        emulator.configure(FaultConfig.from_json({"copy_rate": 0.001, "copy_burst": 1}))
        await delete("old-2")
        await delete("old-2")  # throttled
        await raw_call(url, "GetInstanceSnapshots", {})
    assert emulator.stats.to_json()["delete_requests"] == {
        "us-east-1/old-0": 2,
        "us-east-1/old-1": 2,
        "us-east-1/old-2": 2,
    }
    assert emulator.stats.deletes_accepted == {
        "us-east-1/old-0": 1,
        "us-east-1/old-1": 1,
        "us-east-1/old-2": 1,
    }


async def test_deletes_spend_the_mutating_bucket_not_the_reads() -> None:
    """A delete is a write: it takes a token of the copy bucket (copy_rate), so a delete
    after a copy used the last token is throttled, while reads still answer."""
    seed = {"regions": {"us-east-1": {"instanceSnapshots": [_instance_snapshot("first")]}}}
    faults = FaultConfig.from_json({"copy_rate": 0.001, "copy_burst": 1})
    emulator = Emulator(seed=seed, faults=faults, monotonic=lambda: 0.0)
    copy = {
        "sourceRegion": "us-east-1",
        "sourceSnapshotName": "first",
        "targetSnapshotName": "second",
    }
    async with running_emulator(emulator) as url:
        status, _, _ = await raw_call(url, "CopySnapshot", copy)
        assert status == 200
        status, _, body = await raw_call(
            url, "DeleteInstanceSnapshot", {"instanceSnapshotName": "first"}
        )
        assert (status, body["__type"]) == (400, "ThrottlingException")
        status, _, _ = await raw_call(url, "GetInstanceSnapshots", {})
        assert status == 200
    assert not emulator.stats.deletes_accepted


async def test_deletes_belong_to_their_account() -> None:
    """A delete with one account's keys removes that account's snapshot only; another
    account's snapshot of the same name stays, and the counter names the account."""
    emulator = Emulator(seed=SEED)
    async with running_emulator(emulator) as url:
        web = await assume(url, WEB, "OrganizationAccountAccessRole")
        async with aws(url, "lightsail", **web) as ls:
            answer = await ls.delete_instance_snapshot(instanceSnapshotName="web-1-snap")
            assert answer["operations"][0]["operationType"] == "DeleteInstanceSnapshot"
            with pytest.raises(ClientError) as info:
                await ls.delete_instance_snapshot(instanceSnapshotName="web-1-snap")
            assert info.value.response["Error"]["Code"] == "NotFoundException"
    assert "web-1-snap" not in emulator.accounts[WEB].sim.regions["us-east-1"].snapshots
    assert "web-1-snap" in emulator.accounts[SHOP].sim.regions["us-east-1"].snapshots
    assert emulator.stats.deletes_accepted == {f"{WEB}/us-east-1/web-1-snap": 1}


async def test_a_pending_copy_in_one_account_holds_nothing_in_another() -> None:
    """Only a copy in the same account holds its source: a copy running in one account
    does not stop a delete of the same-named snapshot in another."""
    emulator = Emulator(seed=SEED)
    copy = {
        "sourceRegion": "us-east-1",
        "sourceSnapshotName": "web-1-snap",
        "targetSnapshotName": "web-1-dr",
    }
    emulator.accounts[WEB].sim.op_copy_snapshot("eu-west-1", copy, seconds=3600)
    async with running_emulator(emulator) as url:
        shop = await assume(url, SHOP, "Batchcopy", ExternalId="shop-1")
        async with aws(url, "lightsail", **shop) as ls:
            await ls.delete_instance_snapshot(instanceSnapshotName="web-1-snap")
        web = await assume(url, WEB, "OrganizationAccountAccessRole")
        async with aws(url, "lightsail", **web) as ls:
            with pytest.raises(ClientError) as info:
                await ls.delete_instance_snapshot(instanceSnapshotName="web-1-snap")
            assert info.value.response["Error"]["Code"] == "InvalidInputException"
    assert "web-1-snap" in emulator.accounts[WEB].sim.regions["us-east-1"].snapshots
    assert emulator.stats.deletes_accepted == {f"{SHOP}/us-east-1/web-1-snap": 1}


# -- histories of many nights ----------------------------------------------------------------

_NIGHTS = 60
_FIRST = dt.datetime(2026, 9, 1, 2, 30, tzinfo=dt.UTC)


def _history() -> dict[str, Any]:
    """Sixty nightly copies of web-1's automatic snapshot and of data-1's manual one into
    eu-central-1, tagged as batchcopy tags them; some nights failed, the last still pending."""
    instance, disk = [], []
    for night in range(_NIGHTS):
        made = _FIRST + dt.timedelta(days=night)
        day = (made - dt.timedelta(days=1)).date().isoformat()
        state = "error" if night % 9 == 4 else "pending" if night == _NIGHTS - 1 else ""
        run = [{"key": RUN_TAG, "value": f"nightly-{day}"}]
        where = {"line": night + 2, "source_region": "us-east-1", "target_region": "eu-central-1"}
        auto = CopyJob(
            **where,
            source_resource_name="web-1",
            restore_date=day,
            target_snapshot_name=f"web-1-{day}",
        )
        manual = CopyJob(
            **where, source_snapshot_name=f"data-1-{day}", target_snapshot_name=f"data-1-{day}-dr"
        )
        instance.append(
            {
                "name": f"web-1-{day}",
                "fromInstanceName": "web-1",
                "createdAt": made.isoformat(),
                "tags": [{"key": SOURCE_TAG, "value": source_label(auto)}, *run],
                "isFromAutoSnapshot": True,
                **({"state": state} if state else {}),
            }
        )
        disk.append(
            {
                "name": f"data-1-{day}-dr",
                "fromDiskName": "data-1",
                "createdAt": made.timestamp() + 60,
                "tags": [{"key": SOURCE_TAG, "value": source_label(manual)}, *run],
                **({"state": state} if state else {}),
            }
        )
    return {"regions": {"eu-central-1": {"instanceSnapshots": instance, "diskSnapshots": disk}}}


async def test_a_seeded_history_of_sixty_nights_reads_back() -> None:
    """A seed of 60 nights of tagged copies (some in error, the newest pending) lists back
    page by page newest first, each with its createdAt, state and batchcopy's tags."""
    history = _history()
    emulator = Emulator(seed=history, faults=FaultConfig(page_size=25))
    async with running_emulator(emulator) as url:
        for key, action in (
            ("instanceSnapshots", "GetInstanceSnapshots"),
            ("diskSnapshots", "GetDiskSnapshots"),
        ):
            seeded = history["regions"]["eu-central-1"][key]
            listed: list[dict[str, Any]] = []
            token: str | None = None
            while True:
                params = {"pageToken": token} if token else {}
                status, _, body = await raw_call(url, action, params, region="eu-central-1")
                assert status == 200
                listed += body[key]
                token = body.get("nextPageToken")
                if not token:
                    break
            assert [s["name"] for s in listed] == [s["name"] for s in reversed(seeded)]
            for got, want in zip(listed, reversed(seeded), strict=True):
                created = want["createdAt"]
                if isinstance(created, str):
                    created = dt.datetime.fromisoformat(created).timestamp()
                assert got["createdAt"] == pytest.approx(created)
                assert got["tags"] == want["tags"]
                ready = "available" if key == "instanceSnapshots" else "completed"
                assert got["state"] == want.get("state", ready)
            states = [s["state"] for s in listed]
            assert states[0] == "pending"
            assert states.count("error") == len([n for n in range(_NIGHTS) if n % 9 == 4])


async def test_batchcopy_reads_a_seeded_history_as_it_was_seeded() -> None:
    """batchcopy's own listing of the 60-night history gives every copy once, with its
    origin, creation time, state and provenance label as seeded."""
    history = _history()["regions"]["eu-central-1"]
    emulator = Emulator(
        seed={"regions": {"eu-central-1": history}}, faults=FaultConfig(page_size=7)
    )

    async def once(call: Any) -> Any:
        return await call()

    async with running_emulator(emulator) as url, LightsailClients(settings_for(url)) as api:
        read = [info async for info, _ in api.list_snapshot_items("eu-central-1", once)]
    seeded = history["instanceSnapshots"] + history["diskSnapshots"]
    assert len(read) == len(seeded) == 2 * _NIGHTS
    by_name = {info.name: info for info in read}
    for want in seeded:
        info = by_name[want["name"]]
        assert dict(info.tags)[SOURCE_TAG] == want["tags"][0]["value"]
        assert info.origin == want.get("fromInstanceName", want.get("fromDiskName"))
        assert info.state == want.get(
            "state", "available" if info.kind == "instance" else "completed"
        )
    labels = {dict(info.tags)[SOURCE_TAG] for info in read}
    assert "us-east-1/web-1@2026-08-31" in labels
    assert "us-east-1/data-1-2026-10-29" in labels
