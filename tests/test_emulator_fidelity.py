"""The emulator held against real Lightsail answers: the examples the AWS CLI ships
(``awscli/examples/lightsail/*.rst``), pasted in as seeds and asked for over the wire."""

from __future__ import annotations

import importlib.util
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from batchcopy.emulator import Emulator, running_emulator
from tests.conftest import raw_call

_SPEC = importlib.util.find_spec("awscli")  # a test dependency
assert _SPEC is not None
assert _SPEC.origin is not None
EXAMPLES = Path(_SPEC.origin).parent / "examples" / "lightsail"


def outputs(name: str) -> list[dict[str, Any]]:
    """Every JSON answer an example file shows after ``Output::``."""
    text = (EXAMPLES / f"{name}.rst").read_text()
    blocks = re.findall(r"Output::\n\n((?:    .*\n|\n)+)", text + "\n")
    answers = [json.loads(textwrap.dedent(block)) for block in blocks]
    assert answers, f"{name}.rst shows no output"
    return answers


@pytest.mark.parametrize(
    ("example", "action", "key"),
    [
        ("get-instance-snapshots", "GetInstanceSnapshots", "instanceSnapshots"),
        ("get-disk-snapshots", "GetDiskSnapshots", "diskSnapshots"),
    ],
)
async def test_a_pasted_listing_reads_back_as_pasted(example: str, action: str, key: str) -> None:
    """A real get-*-snapshots answer, pasted as a seed, comes back field for field, in the
    same order (newest first), with the same support codes and no field the real one lacks."""
    (pasted,) = outputs(example)
    region = pasted[key][0]["location"]["regionName"]
    emulator = Emulator(seed={"regions": {region: {key: pasted}}})
    async with running_emulator(emulator) as url:
        status, _, body = await raw_call(url, action, {}, region=region)
    assert status == 200
    assert body == pasted


async def test_a_copy_answers_with_the_real_operations_fields() -> None:
    """copy-snapshot's answer has exactly the keys of the real ones, with their values for
    the parts that do not depend on time (kind, type, status, location, details)."""
    real = [answer["operations"][0] for answer in outputs("copy-snapshot")]
    seed = {
        "regions": {
            "us-west-2": {
                "instanceSnapshots": [{"name": "MEAN-1-1571075291", "fromInstanceName": "MEAN-1"}],
                "autoSnapshots": {"WordPress-1": ["2019-10-14"]},
            }
        }
    }
    requests = [
        {"sourceSnapshotName": "MEAN-1-1571075291", "targetSnapshotName": "MEAN-1-Copy"},
        {"sourceSnapshotName": "MEAN-1-1571075291", "targetSnapshotName": "MEAN-1-1571075291-Copy"},
        {
            "sourceResourceName": "WordPress-1",
            "restoreDate": "2019-10-14",
            "targetSnapshotName": "WordPress-1-10142019",
        },
        {
            "sourceResourceName": "WordPress-1",
            "restoreDate": "2019-10-14",
            "targetSnapshotName": "WordPress-1-10142019",
        },
    ]
    async with running_emulator(Emulator(seed=seed)) as url:
        for want, request in zip(real, requests, strict=False):
            region = want["location"]["regionName"]
            params = {"sourceRegion": "us-west-2", **request}
            status, _, body = await raw_call(url, "CopySnapshot", params, region=region)
            assert status == 200, body
            (got,) = body["operations"]
            assert set(got) == set(want)
            timeless = ("resourceName", "resourceType", "location", "isTerminal")
            timeless += ("operationDetails", "operationType", "status")
            assert {k: got[k] for k in timeless} == {k: want[k] for k in timeless}
            assert got["createdAt"] == got["statusChangedAt"]


@pytest.mark.parametrize(
    ("example", "action", "param", "key"),
    [
        (
            "delete-instance-snapshot",
            "DeleteInstanceSnapshot",
            "instanceSnapshotName",
            "instanceSnapshots",
        ),
        ("delete-disk-snapshot", "DeleteDiskSnapshot", "diskSnapshotName", "diskSnapshots"),
    ],
)
async def test_a_delete_answers_with_the_real_operations_fields(
    example: str, action: str, param: str, key: str
) -> None:
    """delete-instance-snapshot's and delete-disk-snapshot's answers have exactly the keys
    of the real ones (no operationDetails), with their values for the parts that do not
    depend on time (name, kind, type, a terminal Succeeded, location)."""
    (answer,) = outputs(example)
    (want,) = answer["operations"]
    region = want["location"]["regionName"]
    seed = {"regions": {region: {key: [{"name": want["resourceName"]}]}}}
    async with running_emulator(Emulator(seed=seed)) as url:
        status, _, body = await raw_call(url, action, {param: want["resourceName"]}, region=region)
    assert status == 200, body
    (got,) = body["operations"]
    assert set(got) == set(want)
    timeless = ("resourceName", "resourceType", "location", "isTerminal")
    timeless += ("operationType", "status")
    assert {k: got[k] for k in timeless} == {k: want[k] for k in timeless}
    assert got["createdAt"] == got["statusChangedAt"]
