"""The emulator over the wire: real aiobotocore clients and raw requests against 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.parsers import create_parser

from batchcopy.emulator import Emulator, FaultConfig
from tests.conftest import ClientFactory, control, raw_call

MODEL = botocore.session.get_session().get_service_model("lightsail")
COPY = {"sourceRegion": "us-east-1", "sourceSnapshotName": "web-1-snap"}


def assert_fits(value: Any, shape: Any, path: str = "") -> None:
    """``value`` has only keys of ``shape`` and the JSON types it declares, all the way down."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), path
        assert set(value) <= set(shape.members), (
            f"{path}: keys outside the shape: {set(value) - set(shape.members)}"
        )
        for key, item in value.items():
            assert_fits(item, shape.members[key], f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            assert_fits(item, shape.member, f"{path}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    elif kind in ("integer", "long"):
        assert isinstance(value, int), path
        assert not isinstance(value, bool), path
    elif kind == "timestamp":
        assert isinstance(value, int | float), path
    else:  # pragma: no cover - the Lightsail outputs use no other types
        raise AssertionError(f"{path}: unexpected shape type {kind}")


async def call_and_check(
    url: str, action: str, params: dict[str, Any], region: str = "us-east-1"
) -> dict:
    status, headers, body = await raw_call(url, action, params, region=region)
    assert status == 200, body
    assert headers["x-amzn-RequestId"]
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    output = MODEL.operation_model(action).output_shape
    assert_fits(body, output, action)
    parsed = create_parser("json").parse(
        {"body": json.dumps(body).encode(), "headers": headers, "status_code": 200}, output
    )
    assert "Error" not in parsed
    return body


async def test_every_operation_answers_in_its_botocore_output_shape(url: str) -> None:
    """Each supported operation's response parses with botocore and has no key outside its shape."""
    copied = await call_and_check(
        url, "CopySnapshot", {**COPY, "targetSnapshotName": "fid-copy"}, "eu-west-1"
    )
    operation_id = copied["operations"][0]["id"]
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("GetOperation", {"operationId": operation_id}, "eu-west-1"),
        ("GetOperations", {}, "eu-west-1"),
        ("GetInstanceSnapshot", {"instanceSnapshotName": "web-1-snap"}, "us-east-1"),
        ("GetInstanceSnapshots", {}, "eu-west-1"),
        ("GetDiskSnapshot", {"diskSnapshotName": "data-1-snap"}, "us-east-1"),
        ("GetDiskSnapshots", {}, "us-east-1"),
        ("GetAutoSnapshots", {"resourceName": "web-1"}, "us-east-1"),
        (
            "CreateInstanceSnapshot",
            {
                "instanceName": "web-1",
                "instanceSnapshotName": "fid-inst",
                "tags": [{"key": "team", "value": "ops"}],
            },
            "us-east-1",
        ),
        ("CreateDiskSnapshot", {"diskName": "data-1", "diskSnapshotName": "fid-disk"}, "us-east-1"),
        ("TagResource", {"resourceName": "fid-inst", "tags": [{"key": "k"}]}, "us-east-1"),
        (
            "TagResource",
            {"resourceName": "web-1", "tags": [{"key": "team", "value": "ops"}, {"key": "k"}]},
            "us-east-1",
        ),
        ("GetInstances", {}, "us-east-1"),
        ("GetDisks", {}, "us-east-1"),
        ("DeleteInstanceSnapshot", {"instanceSnapshotName": "fid-inst"}, "us-east-1"),
        ("DeleteDiskSnapshot", {"diskSnapshotName": "fid-disk"}, "us-east-1"),
        (
            "GetRegions",
            {"includeAvailabilityZones": True, "includeRelationalDatabaseAvailabilityZones": True},
            "us-east-1",
        ),
    ]
    for action, params, region in calls:
        await call_and_check(url, action, params, region)


async def test_failed_copy_operation_fits_the_shape(emulator: Emulator, url: str) -> None:
    """A failed copy shows Failed with errorCode and errorDetails, still in the output shape."""
    emulator.configure(
        FaultConfig.from_json({"operation_failure_rate": 1, "operation_seconds": 0.001})
    )
    copied = await call_and_check(
        url, "CopySnapshot", {**COPY, "targetSnapshotName": "doomed"}, "eu-west-1"
    )
    await asyncio.sleep(0.005)
    body = await call_and_check(
        url, "GetOperation", {"operationId": copied["operations"][0]["id"]}, "eu-west-1"
    )
    assert body["operation"]["status"] == "Failed"
    assert body["operation"]["errorCode"]
    snap = await call_and_check(
        url, "GetInstanceSnapshot", {"instanceSnapshotName": "doomed"}, "eu-west-1"
    )
    assert snap["instanceSnapshot"]["state"] == "error"


async def test_copy_lands_in_the_clients_region(client: ClientFactory) -> None:
    """The region of the client's signature is the copy's target region."""
    async with client("ap-south-1") as mumbai, client("eu-west-1") as ireland:
        response = await mumbai.copy_snapshot(**COPY, targetSnapshotName="to-mumbai")
        assert response["operations"][0]["location"]["regionName"] == "ap-south-1"
        found = await mumbai.get_instance_snapshot(instanceSnapshotName="to-mumbai")
        assert found["instanceSnapshot"]["fromInstanceName"] == "web-1"
        with pytest.raises(ireland.exceptions.NotFoundException):
            await ireland.get_instance_snapshot(instanceSnapshotName="to-mumbai")


async def test_modeled_errors_arrive_as_modeled_exception_classes(client: ClientFactory) -> None:
    """aiobotocore raises the modeled classes: NotFound (no source), InvalidInput (name taken)."""
    async with client("eu-west-1") as ls:
        with pytest.raises(ls.exceptions.NotFoundException) as missing:
            await ls.copy_snapshot(
                sourceRegion="us-east-1", sourceSnapshotName="nope", targetSnapshotName="t1"
            )
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        await ls.copy_snapshot(**COPY, targetSnapshotName="t2")
        with pytest.raises(ls.exceptions.InvalidInputException, match="already in use"):
            await ls.copy_snapshot(**COPY, targetSnapshotName="t2")


@pytest.mark.parametrize(
    ("action", "body", "region", "status", "code"),
    [
        ("CopySnapshot", b"{not json", "us-east-1", 400, "SerializationException"),
        ("CopySnapshot", b"[1, 2]", "us-east-1", 400, "SerializationException"),
        (
            "CopySnapshot",
            b'{"sourceRegion": "us-east-1"}',
            "us-east-1",
            400,
            "InvalidInputException",
        ),
        (
            "GetInstanceSnapshot",
            b'{"instanceSnapshotName": 7}',
            "us-east-1",
            400,
            "SerializationException",
        ),
        ("LaunchRocket", b"{}", "us-east-1", 400, "UnknownOperationException"),
        ("GetRegions", b"{}", None, 403, "MissingAuthenticationTokenException"),
        ("GetRegions", b"{}", "mars-1", 400, "InvalidInputException"),
    ],
)
async def test_bad_requests_get_the_services_error(
    url: str, action: str, body: bytes, region: str | None, status: int, code: str
) -> None:
    """Malformed JSON, missing parameters, unknown operations: a JSON error, never a traceback."""
    got_status, headers, payload = await raw_call(url, action, body=body, region=region)
    assert (got_status, payload["__type"]) == (status, code)
    assert payload["message"]
    assert headers["x-amzn-RequestId"]


async def test_missing_parameter_error_names_it(url: str) -> None:
    """A missing required parameter is named in the message."""
    _, _, payload = await raw_call(url, "CopySnapshot", {"sourceRegion": "us-east-1"})
    assert "targetSnapshotName" in payload["message"]


async def test_wrong_path_answers_json(url: str) -> None:
    """Even a wrong path or method answers in the protocol's JSON error form."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{url}/nowhere") as resp:
        payload = await resp.json(content_type=None)
    assert resp.status == 404
    assert payload["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ThrottlingException"), (429, "TooManyRequestsException")]
)
async def test_copy_rate_throttles_with_the_configured_status(
    emulator: Emulator, client: ClientFactory, status: int, code: str
) -> None:
    """Past its burst, a region's copy bucket answers with the configured throttling error."""
    emulator.configure(
        FaultConfig.from_json(
            {
                "regions": {
                    "eu-west-1": {"copy_rate": 0.01, "copy_burst": 2, "throttle_status": status}
                }
            }
        )
    )
    outcomes = []
    async with client("eu-west-1") as ls, client("us-west-2") as other:
        for i in range(4):
            try:
                await ls.copy_snapshot(**COPY, targetSnapshotName=f"c{i}")
                outcomes.append(("ok", 200))
            except ClientError as exc:
                error = exc.response
                outcomes.append(
                    (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"])
                )
        # Reads have their own bucket, and other regions are not limited.
        await ls.get_instance_snapshots()
        await other.copy_snapshot(**COPY, targetSnapshotName="free")
    assert outcomes == [("ok", 200), ("ok", 200), (code, status), (code, status)]
    assert emulator.stats.requests["eu-west-1", "CopySnapshot", "throttled"] == 2


async def test_server_errors_record_nothing(emulator: Emulator, client: ClientFactory) -> None:
    """A 500 ServiceException happens before the copy is recorded."""
    emulator.configure(FaultConfig.from_json({"error_rate": 1}))
    async with client("eu-west-1") as ls:
        with pytest.raises(ClientError) as info:
            await ls.copy_snapshot(**COPY, targetSnapshotName="never")
    assert info.value.response["Error"]["Code"] == "ServiceException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "never" not in emulator.sim.regions["eu-west-1"].snapshots
    assert emulator.stats.copies_accepted == {}


async def test_drop_before_loses_the_request(emulator: Emulator, client: ClientFactory) -> None:
    """A connection dropped before the copy is recorded leaves nothing behind."""
    emulator.configure(FaultConfig.from_json({"drop_before_rate": 1}))
    async with client("eu-west-1") as ls:
        with pytest.raises(ConnectionClosedError):
            await ls.copy_snapshot(**COPY, targetSnapshotName="lost")
    assert "lost" not in emulator.sim.regions["eu-west-1"].snapshots
    assert emulator.stats.requests["eu-west-1", "CopySnapshot", "dropped"] == 1


async def test_drop_after_records_the_copy_and_a_retry_sees_name_in_use(
    emulator: Emulator, client: ClientFactory
) -> None:
    """A response lost after commit: the copy exists once; a blind retry gets 'already in use'."""
    emulator.configure(FaultConfig.from_json({"drop_after_rate": 1}))
    async with client("eu-west-1") as ls:
        with pytest.raises(ConnectionClosedError):
            await ls.copy_snapshot(**COPY, targetSnapshotName="ghost")
        emulator.configure(FaultConfig())
        with pytest.raises(ls.exceptions.InvalidInputException, match="already in use"):
            await ls.copy_snapshot(**COPY, targetSnapshotName="ghost")
        found = await ls.get_instance_snapshot(instanceSnapshotName="ghost")
    assert found["instanceSnapshot"]["name"] == "ghost"
    _, stats = await control(str(ls.meta.endpoint_url), "GET", "stats")
    assert stats["copies_accepted"] == {"eu-west-1/ghost": 1}


async def test_hang_outlasts_the_read_timeout_after_commit(emulator: Emulator, url: str) -> None:
    """A hang answers late: the client times out though the copy was recorded."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    emulator.configure(FaultConfig.from_json({"hang_rate": 1, "hang_seconds": 1.0}))
    config = AioConfig(retries={"total_max_attempts": 1}, read_timeout=0.05)
    async with get_session().create_client(
        "lightsail", "eu-west-1", endpoint_url=url, config=config
    ) as ls:
        with pytest.raises(ReadTimeoutError):
            await ls.copy_snapshot(**COPY, targetSnapshotName="slow")
    # Under load the server may record the copy after the client gave up; it still does.
    for _ in range(200):
        if "slow" in emulator.sim.regions["eu-west-1"].snapshots:
            break
        await asyncio.sleep(0.01)
    assert "slow" in emulator.sim.regions["eu-west-1"].snapshots


async def test_latency_shows_as_concurrent_requests_in_flight(
    emulator: Emulator, client: ClientFactory
) -> None:
    """Requests that overlap are counted as in flight together; stats report the peak per region."""
    emulator.configure(FaultConfig.from_json({"latency_ms": 300}))
    async with client("eu-west-1") as ls:
        await asyncio.gather(*(ls.get_instance_snapshots() for _ in range(8)))
    assert emulator.stats.peak_in_flight["eu-west-1"] == 8
    assert emulator.stats.in_flight["eu-west-1"] == 0


async def test_control_api_configures_reports_and_resets(url: str, client: ClientFactory) -> None:
    """Config can be read and replaced, stats count by outcome, reset restores the seed."""
    status, config = await control(
        url, "POST", "config", {"regions": {"eu-west-1": {"error_rate": 1}}}
    )
    assert status == 200
    assert config["regions"]["eu-west-1"]["error_rate"] == 1
    _, shown = await control(url, "GET", "config")
    assert shown == config
    status, problem = await control(url, "POST", "config", {"error_rate": 7})
    assert status == 400
    assert "error_rate" in problem["message"]

    async with client("eu-west-1") as ls:
        with pytest.raises(ClientError):
            await ls.copy_snapshot(**COPY, targetSnapshotName="x1")
        await control(url, "POST", "config", {})
        await ls.copy_snapshot(**COPY, targetSnapshotName="x2")
        with pytest.raises(ClientError):
            await ls.copy_snapshot(**COPY, targetSnapshotName="x2")
    _, stats = await control(url, "GET", "stats")
    assert stats["requests"]["eu-west-1"]["CopySnapshot"] == {
        "client_error": 1,
        "error": 1,
        "ok": 1,
    }
    assert stats["copies_accepted"] == {"eu-west-1/x2": 1}
    assert stats["peak_in_flight"]["eu-west-1"] == 1

    status, _ = await control(
        url, "POST", "seed", {"regions": {"eu-west-1": {"instanceSnapshots": [{"name": "s9"}]}}}
    )
    assert status == 200
    status, problem = await control(url, "POST", "seed", {"regions": {"nowhere": {}}})
    assert (status, "nowhere" in problem["message"]) == (400, True)

    await control(url, "POST", "reset")
    _, stats = await control(url, "GET", "stats")
    assert (stats["requests_total"], stats["copies_accepted"]) == (0, {})
    async with client("eu-west-1") as ls:
        assert (await ls.get_instance_snapshots())["instanceSnapshots"] == []
    async with client("us-east-1") as ls:
        names = [s["name"] for s in (await ls.get_instance_snapshots())["instanceSnapshots"]]
    assert names == ["web-1-snap"]


async def test_absurd_bodies_are_client_errors_not_500s(url: str) -> None:
    """A deeply nested JSON body is a 400 SerializationException, never a retryable 500."""
    deep = b"[" * 100_000 + b"]" * 100_000
    status, _, payload = await raw_call(url, "GetRegions", body=deep)
    assert (status, payload["__type"]) == (400, "SerializationException")


async def test_faults_can_aim_at_chosen_operations(
    emulator: Emulator, client: ClientFactory
) -> None:
    """With "actions", errors hit only the named operations; others answer normally."""
    emulator.configure(FaultConfig.from_json({"error_rate": 1, "actions": ["CopySnapshot"]}))
    async with client("eu-west-1") as ls:
        with pytest.raises(ClientError):
            await ls.copy_snapshot(**COPY, targetSnapshotName="aimed")
        assert (await ls.get_instance_snapshots())["instanceSnapshots"] == []


async def test_instances_and_disks_list_through_a_real_client(client: ClientFactory) -> None:
    """GetInstances and GetDisks list the region's resources and their tags to a real client."""
    async with client("us-east-1") as ls:
        await ls.tag_resource(resourceName="web-1", tags=[{"key": "team", "value": "ops"}])
        instances = (await ls.get_instances())["instances"]
        disks = (await ls.get_disks())["disks"]
    async with client("eu-west-1") as empty:
        assert (await empty.get_instances())["instances"] == []
    assert [(i["name"], i["tags"], i["state"]["name"]) for i in instances] == [
        ("web-1", [{"key": "team", "value": "ops"}], "running")
    ]
    assert instances[0]["location"]["regionName"] == "us-east-1"
    assert [(d["name"], d["sizeInGb"], d["state"]) for d in disks] == [("data-1", 256, "available")]
